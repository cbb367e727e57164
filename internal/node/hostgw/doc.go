// Package hostgw connects the pod networks of a cluster's nodes: on every
// node it keeps a route to each other node's pod CIDRs (Node.spec.podCIDRs)
// via that node's InternalIP, in sync with the Node objects, as kind's
// kindnet and flannel's host-gw backend do. It also keeps the source
// address of pod traffic that stays in the cluster: pod to pod across
// nodes, and pod to a node's address (the cluster DNS endpoint is one),
// as every CNI does for the first and ip-masq-agent for the second (for
// the nodes it routes to).
// Traffic from pods to anywhere else is still masqueraded by the pod
// network (internal/node/network).
//
// # Routes
//
// [Run] watches the Nodes with the Service proxy's credentials (a node's
// own may read only its own Node, under the node authorizer) and, on every
// change of a Node's podCIDRs or addresses and every [ResyncPeriod], makes
// the main routing table hold exactly one route per other node's pod
// CIDR, with the node's InternalIP of that family as the
// gateway. Its routes carry the protocol [RouteProtocol] (`ip route show
// proto 112`): a route of ours whose Node went away or changed is
// deleted, leftovers of an earlier run are corrected by the first sync,
// and Run deletes all of them when it stops.
//
// # Masquerade
//
// The pod network masquerades what pods send out of the node (an iptables
// rule per pod CIDR, appended to nat POSTROUTING). Before it, Run inserts
// a jump, for sources in the cluster CIDR leaving by any interface but the
// pod bridge, to the nat chain [Chain], which
// accepts (does not masquerade) destinations in the cluster CIDR and the
// InternalIPs of the Nodes this node routes to: those route back to its
// pods. Pod traffic to a node it has no route to (one behind a router)
// is still masqueraded, or the answer would go to a pod IP that node
// cannot route. The chain is rewritten atomically
// (iptables-restore --noflush) when the Nodes' addresses change, and
// removed with its jump when Run stops. kube-proxy's own masquerading of
// Service traffic from outside the cluster (its nftables table) is not
// affected.
//
// # Caveats
//
// Host-gw routes need the nodes on one L2 segment: a node's InternalIP
// must be directly reachable (no gateway on the way) from every other
// node, since the packets to its pods are sent to it as the next hop. A
// Node whose address this node reaches through a gateway gets no route
// (logged), as in kindnet: its pods are then reachable only if the
// network's routers know the pod CIDRs. Nodes on different segments need
// an overlay instead: VXLAN, through flannel's library
// (github.com/flannel-io/flannel/pkg/backend/vxlan, as k3s embeds it), is
// the later option. IPv4 only, like the cluster CIDR: the masquerade
// exceptions are iptables (not ip6tables) rules.
package hostgw
