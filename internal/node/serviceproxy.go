package node

import (
	"context"

	"github.com/pocketkube/pocketkube/internal/node/serviceproxy"
)

// runServiceProxy runs the node's Service proxy until ctx is done.
func runServiceProxy(ctx context.Context, cfg Config) error {
	return serviceproxy.Run(ctx, serviceproxy.Config{
		Kubeconfig:  cfg.ProxyKubeconfig,
		NodeName:    cfg.NodeName,
		NodeIPs:     cfg.NodeIPs,
		ClusterCIDR: cfg.ClusterCIDR,
	})
}
