package node

import (
	"context"
	"net"

	"github.com/pocketkube/pocketkube/internal/node/coredns"
)

// runClusterDNS serves cluster DNS with CoreDNS on cfg.DNSListen:53 until
// ctx is done, with the Service proxy's credentials (system:kube-proxy,
// which the control plane binds to the system:coredns ClusterRole; the
// node's own identity may not list EndpointSlices). The kube-dns Service
// that sends 10.96.0.10 here is the control plane's to publish.
func runClusterDNS(ctx context.Context, cfg Config) error {
	return coredns.Run(ctx, coredns.Config{
		Addr:       net.JoinHostPort(cfg.DNSListen.String(), "53"),
		Kubeconfig: cfg.ProxyKubeconfig,
	})
}
