// Package netpol enforces NetworkPolicies (networking.k8s.io/v1) for the
// pods of one node with nftables: ingress and egress, podSelector,
// namespaceSelector and ipBlock peers (with except), ports by number or
// name, port ranges (endPort), and the isolation ("default deny") a policy
// that selects a pod gives it.
//
// # Design
//
// The design is sigs.k8s.io/kube-network-policies' (the implementation kind
// uses), with the verdict taken in the kernel instead of in user space.
// kube-network-policies sends the first packet of each new connection of a
// pod that a policy selects to an NFQUEUE and decides there; that needs
// the nftables "queue" expression (CONFIG_NFT_QUEUE, the nft_queue module),
// which kernels built without modules lack (`nft add rule ... queue`
// fails with "No such file or directory"). Here the same decision is
// compiled into one nftables table, rewritten whole in one atomic
// transaction whenever a policy, a pod or a namespace changes:
//
//   - base chains on the forward hook (traffic between pods, and between
//     pods and other hosts; after kube-proxy's DNAT, so a Service's
//     traffic is checked against the endpoint it goes to) and on the input
//     hook (a pod's traffic to the node itself, such as cluster DNS, which
//     pocketkube serves on the node address);
//   - "ct state established,related accept" first, so that, as in
//     kube-network-policies, only the first packet of a connection is
//     checked and replies always pass;
//   - verdict maps from the address of each pod of this node that a policy
//     isolates to the pod's chain: its ingress chain by destination, its
//     egress chain by source. A pod's chain returns for what one of its
//     policies' rules allows and drops the rest. A packet between two pods
//     of the node goes through the egress chain of one and the ingress
//     chain of the other.
//
// Traffic the node itself sends to a pod (probes, the API server's
// proxying, hostNetwork pods) is not checked, as kube-network-policies
// accepts traffic of the node's root user: policies only see pods and
// other hosts.
//
// # Caveats
//
// A policy change applies to new connections; an established one goes on
// until it ends (conntrack), as with kube-network-policies. Pods are known
// by the addresses in their status: a new pod is unprotected, and a new
// peer not yet allowed, until the node has posted its status (the race
// kube-network-policies closes with NRI, issue kubernetes#85966). A named
// port in an egress rule is resolved on the pods it leads to, so it never
// matches a destination that is not a pod. When Run stops, it deletes the
// table: a node that is not running enforces nothing.
//
// The nft command must be installed and the process must be root. The
// table is "inet pocketkube-netpol" in the node's network namespace.
package netpol
