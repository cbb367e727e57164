package node

import (
	"context"
	"fmt"
	"net"

	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"

	"github.com/pocketkube/pocketkube/internal/node/dns"
)

// runClusterDNS serves cluster DNS on cfg.DNSListen:53 until ctx is done,
// from Service and EndpointSlice informers with the Service proxy's
// credentials (system:kube-proxy may list and watch both; the node's own
// identity may not list EndpointSlices). The kube-dns Service that sends
// 10.96.0.10 here is the control plane's to publish.
func runClusterDNS(ctx context.Context, cfg Config) error {
	restCfg, err := clientcmd.BuildConfigFromFlags("", cfg.ProxyKubeconfig)
	if err != nil {
		return fmt.Errorf("load kubeconfig: %w", err)
	}
	restCfg.UserAgent = "pocketkube-dns"
	client, err := kubernetes.NewForConfig(restCfg)
	if err != nil {
		return err
	}
	factory := informers.NewSharedInformerFactory(client, 0)
	services := factory.Core().V1().Services()
	slices := factory.Discovery().V1().EndpointSlices()
	srv, err := dns.New(dns.Config{
		Addr:           net.JoinHostPort(cfg.DNSListen.String(), "53"),
		Services:       services.Lister(),
		EndpointSlices: slices.Lister(),
	})
	if err != nil {
		return err
	}
	factory.Start(ctx.Done())
	defer factory.Shutdown()
	for typ, ok := range factory.WaitForCacheSync(ctx.Done()) {
		if !ok && ctx.Err() == nil {
			return fmt.Errorf("sync %v informer", typ)
		}
	}
	klog.FromContext(ctx).Info("Serving cluster DNS", "addr", net.JoinHostPort(cfg.DNSListen.String(), "53"), "upstreams", srv.Upstreams())
	return srv.Run(ctx)
}
