package dns_test

import (
	"context"
	"net"

	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"

	"github.com/pocketkube/pocketkube/internal/node/dns"
)

// Example wires the server to shared informers and publishes it as
// kube-system/kube-dns, as the node does: pods get 10.96.0.10 as their
// nameserver, and the node's service VIPs carry their queries to the bridge
// address where the server listens.
func Example() {
	ctx := context.Background()
	var client kubernetes.Interface // the node's clientset

	factory := informers.NewSharedInformerFactory(client, 0)
	srv, err := dns.New(dns.Config{
		Addr:           "10.244.0.1:53",
		Services:       factory.Core().V1().Services().Lister(),
		EndpointSlices: factory.Discovery().V1().EndpointSlices().Lister(),
	})
	if err != nil {
		panic(err)
	}
	factory.Start(ctx.Done())
	factory.WaitForCacheSync(ctx.Done())
	go func() {
		if err := srv.Run(ctx); err != nil {
			panic(err)
		}
	}()
	<-srv.Ready()
	if err := dns.EnsureService(ctx, client, net.ParseIP("10.96.0.10"), net.ParseIP("10.244.0.1")); err != nil {
		panic(err)
	}
}
