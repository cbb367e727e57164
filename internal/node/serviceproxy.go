package node

import (
	"context"
	"time"

	"github.com/pocketkube/pocketkube/internal/node/serviceproxy"
)

// proxyMinSyncPeriod is the Service proxy's shortest time between two
// nftables syncs. kube-proxy's default for nftables is 1 s, chosen for
// large clusters, where a sync rewrites thousands of Services' rules and
// a change arrives every few milliseconds. Here one node proxies the
// Services of a small cluster: a sync is one `nft -f` of a small rule set
// (BenchmarkServiceChurn in bench/ measures its CPU per Service change),
// and 1 s was most of a LoadBalancer Service's time to its first answer
// (its ingress address comes just after the sync for its ClusterIP, and
// waited for the next one; docs/BENCHMARKS.md).
const proxyMinSyncPeriod = 100 * time.Millisecond

// runServiceProxy runs the node's Service proxy until ctx is done.
func runServiceProxy(ctx context.Context, cfg Config) error {
	return serviceproxy.Run(ctx, serviceproxy.Config{
		Kubeconfig:    cfg.ProxyKubeconfig,
		NodeName:      cfg.NodeName,
		NodeIPs:       cfg.NodeIPs,
		ClusterCIDR:   cfg.ClusterCIDR,
		MinSyncPeriod: proxyMinSyncPeriod,
	})
}
