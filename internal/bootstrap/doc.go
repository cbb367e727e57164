// Package bootstrap creates the cluster's own objects, as kubeadm's
// phases/addons do: what a cluster needs besides what the API server and the
// controller-manager create themselves. They are
//
//   - the labels of the node that runs the control plane (ServerNodeLabels),
//     which NodeRestriction forbids the node to set on itself;
//   - the ClusterRole and ClusterRoleBinding system:coredns, which let the
//     cluster DNS server read what it serves;
//   - the ClusterRole and ClusterRoleBinding system:kube-network-policies,
//     which let the node's NetworkPolicy enforcer read pods, namespaces
//     and NetworkPolicies (and pocketkube:node-networkpolicy, the same for
//     the enforcers of joined nodes);
//   - the Service kube-system/kube-dns (ClusterIP DNSServiceIP) and the
//     EndpointSlice that sends it to the node's DNS server (with several
//     servers, to each server's: KeepDNSEndpoints);
//   - what other machines join with ([Join]): a bootstrap token, the RBAC
//     of kubelet's TLS bootstrap and kube-public/cluster-info, as `kubeadm
//     init` sets them up;
//   - the default StorageClass local-path (DefaultStorageClassName), whose
//     provisioner every node runs for itself (internal/node/localpath):
//     volumeBindingMode WaitForFirstConsumer, reclaimPolicy Delete; and
//     what those provisioners run with: a ClusterRole bound to group
//     system:nodes (NodesLocalPathRoleName: claims, classes, PVs) and a
//     ValidatingAdmissionPolicy (NodesLocalPathPolicyName) that lets a
//     node create and delete only PVs with a node affinity to itself.
//
// [Run] creates what is missing and restores what was changed, with the
// client it is given (internal/cluster gives it the admin's), and returns
// once everything is in place. It makes no write when everything already is,
// so it runs on every start. The StorageClass is the exception to
// restoring: Run creates it when missing and otherwise leaves it as it is
// (a user may take the default annotation off), and deletes it, if it
// carries Run's label, when the cluster runs without its provisioner,
// and the nodes' grant and its policy with it.
//
// It does not run the DNS server (internal/node/coredns does) or create
// anything a node creates for itself (its Node object, its Lease).
//
// # Caveats
//
// The objects carry kubeadm's names and labels, which clients and tests
// look for (k8s-app=kube-dns); the golden files in testdata/ pin them. A kube-dns
// Service with another ClusterIP is left alone (ErrClusterIPMismatch).
package bootstrap
