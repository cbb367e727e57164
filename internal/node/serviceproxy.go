package node

import (
	"context"

	"github.com/pocketkube/pocketkube/internal/node/proxy"
)

// runServiceProxy runs the node's Service proxy until ctx is done.
func runServiceProxy(ctx context.Context, cfg Config) error {
	return proxy.Run(ctx, proxy.Config{
		Kubeconfig:  cfg.ProxyKubeconfig,
		NodeName:    cfg.NodeName,
		NodeIPs:     cfg.NodeIPs,
		ClusterCIDR: cfg.ClusterCIDR,
	})
}
