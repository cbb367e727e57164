package node

import (
	"context"
	"fmt"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/pocketkube/pocketkube/internal/node/hostgw"
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

// runHostGW keeps the routes to the other nodes' pods until ctx is done,
// with the Service proxy's credentials: system:node-proxier may list and
// watch Nodes, which the node authorizer does not let a node do (a node
// reads its own Node only).
func runHostGW(ctx context.Context, cfg Config) error {
	restCfg, err := clientcmd.BuildConfigFromFlags("", cfg.ProxyKubeconfig)
	if err != nil {
		return fmt.Errorf("load kubeconfig: %w", err)
	}
	restCfg.UserAgent = "pocketkube-hostgw"
	client, err := kubernetes.NewForConfig(restCfg)
	if err != nil {
		return err
	}
	return hostgw.Run(ctx, hostgw.Config{Client: client, NodeName: cfg.NodeName, ClusterCIDR: cfg.ClusterCIDR})
}
