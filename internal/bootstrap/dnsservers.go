package bootstrap

import (
	"context"
	"fmt"
	"reflect"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	discoverylisters "k8s.io/client-go/listers/discovery/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/pocketkube/pocketkube/internal/keeper"
)

// dnsResync is how often KeepDNSEndpoints looks again without an event.
const dnsResync = 30 * time.Second

// KeepDNSEndpoints keeps the kube-dns EndpointSlice's endpoints as
// endpointsFor says for several servers, from watches of the cluster's
// Nodes and of that slice, until ctx is done; it returns nil then. With one
// server (d.Several unset) it returns at once: Run published its endpoint.
// Every server runs it; they compute the same endpoints from the same
// Nodes, and a write that meets another server's gets a Conflict and is
// made again from what is there.
func KeepDNSEndpoints(ctx context.Context, client kubernetes.Interface, d DNS) error {
	if !d.Several {
		return nil
	}
	if d.NodeName == "" || d.Endpoint == nil {
		return fmt.Errorf("bootstrap: DNS of several servers needs NodeName and Endpoint")
	}
	nodeFactory := informers.NewSharedInformerFactory(client, 0)
	sliceFactory := informers.NewSharedInformerFactoryWithOptions(client, 0,
		informers.WithNamespace(metaSystemNamespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.FieldSelector = "metadata.name=" + endpointSliceName }))
	nodes := nodeFactory.Core().V1().Nodes()
	slices := sliceFactory.Discovery().V1().EndpointSlices()
	infs := []cache.SharedIndexInformer{nodes.Informer(), slices.Informer()}
	// A Conflict is another server's write: the next pass, soon, starts
	// from it.
	loop := keeper.Loop{What: "Publishing this server's kube-dns endpoint", Resync: dnsResync, Retry: retryInterval}
	return keeper.Run(ctx, loop, []keeper.Factory{nodeFactory, sliceFactory}, infs, func(ctx context.Context) error {
		return syncDNSEndpoints(ctx, client, d, nodes.Lister(), slices.Lister())
	})
}

// syncDNSEndpoints writes the endpoints endpointsFor gives for the Nodes
// and the slice in the informers' caches, when they differ from the
// slice's; the write reads the slice again and carries its
// resourceVersion.
func syncDNSEndpoints(ctx context.Context, client kubernetes.Interface, d DNS, nodeLister corelisters.NodeLister, sliceLister discoverylisters.EndpointSliceLister) error {
	list, err := nodeLister.List(labels.Everything())
	if err != nil {
		return err
	}
	nodes := make(map[string]*corev1.Node, len(list))
	for _, n := range list {
		nodes[n.Name] = n
	}
	cached, err := sliceLister.EndpointSlices(metaSystemNamespace).Get(endpointSliceName)
	if apierrors.IsNotFound(err) {
		cached = nil
	} else if err != nil {
		return err
	}
	want := endpointsFor(d, cached, nodes)
	if len(want) == 0 || (cached != nil && reflect.DeepEqual(cached.Endpoints, want)) {
		return nil
	}
	svc, err := client.CoreV1().Services(metaSystemNamespace).Get(ctx, kubeDNSName, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("get Service %s/%s: %w", metaSystemNamespace, kubeDNSName, err)
	}
	return ensureEndpointSlice(ctx, client, svc, func(got *discoveryv1.EndpointSlice) []discoveryv1.Endpoint {
		return endpointsFor(d, got, nodes)
	})
}
