// Package serviceproxy runs a node's Service proxy: upstream kube-proxy's
// nftables proxier (k8s.io/kubernetes/pkg/proxy/nftables), in this
// process, as the API client system:kube-proxy. It makes ClusterIPs and
// NodePorts of every Service reach the Service's endpoints, with the same
// rules, the same EndpointSlice handling and the same reject rule for
// Services without endpoints as kube-proxy --proxy-mode=nftables.
//
// What is upstream's and what is ours: the proxier, its configuration type
// and validation, and the watchers that feed it (pkg/proxy/config) are
// upstream's. This package only does what kube-proxy's command
// (cmd/kube-proxy/app) does around them, bound to a context: it builds the
// KubeProxyConfiguration, starts the informers and stops them, and deletes
// the proxier's nftables table when it stops. It does not use the command
// itself because upstream's ProxyServer.Run never returns and starts its
// informers and sync loop with wait.NeverStop: it could not be stopped, and
// its table could not be cleaned up without it being written again.
//
// Left out, on purpose: the healthz and metrics servers (nothing scrapes
// them on a single node), conntrack sysctls (they fail in a container and
// pocketkube does not tune the host), the OOM score adjustment, the
// NodeManager (it exits the process when the node's addresses change; the
// node's addresses come from Config instead), and topology hints (one node
// has one zone).
//
// Caveats: the nft command (Debian's nftables package) must be installed
// and the process must be root. The proxier's sync loop is upstream's and
// cannot be stopped; Run stops everything that can make it sync again,
// waits for a sync already asked for, and only then deletes the table. The
// loop's hourly resync would write the table again in a process that keeps
// running an hour after Run returned; pocketkube exits instead.
package serviceproxy
