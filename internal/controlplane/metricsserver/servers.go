package metricsserver

import (
	"context"
	"fmt"
	"time"

	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	discoverylisters "k8s.io/client-go/listers/discovery/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"

	"github.com/pocketkube/pocketkube/internal/keeper"
)

// orphanGrace is how long a server's slice may name a Node that does not
// exist before another server deletes it: a server writes its slice before
// its node registers, seconds later.
var orphanGrace = time.Minute

// slicesResync is how often keepServerSlices looks again without an event.
const slicesResync = 30 * time.Second

// keepServerSlices keeps, with several servers, the metrics-server
// EndpointSlices until ctx is done, as kube-dns's endpoints are kept
// (bootstrap.KeepDNSEndpoints). Each server writes its own slice
// (sliceName), and every server's keeper marks a slice's endpoint not
// ready while the Node it names is NotReady or Unknown, so that the
// aggregator, which picks a random ready endpoint among the Service's
// slices, routes around a server that stopped (as it would around a
// metrics-server pod on a failed node). A slice whose Node has not existed
// for orphanGrace is deleted, and so is the single server's slice
// (ServiceName) of a cluster that became one of several. Its own slice,
// deleted by anyone, is written again.
func keepServerSlices(ctx context.Context, client kubernetes.Interface, cfg Config) {
	sliceFactory := informers.NewSharedInformerFactoryWithOptions(client, 0,
		informers.WithNamespace(Namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.LabelSelector = discoveryv1.LabelServiceName + "=" + ServiceName
		}))
	nodeFactory := informers.NewSharedInformerFactory(client, 0)
	slices := sliceFactory.Discovery().V1().EndpointSlices()
	nodes := nodeFactory.Core().V1().Nodes()
	infs := []cache.SharedIndexInformer{slices.Informer(), nodes.Informer()}
	loop := keeper.Loop{What: "Keeping the metrics-server EndpointSlices", Resync: slicesResync, Retry: ensureRetry}
	err := keeper.Run(ctx, loop, []keeper.Factory{sliceFactory, nodeFactory}, infs, func(ctx context.Context) error {
		return syncServerSlices(ctx, client, cfg, slices.Lister(), nodes.Lister())
	})
	if err != nil {
		klog.FromContext(ctx).Error(err, "Keeping the metrics-server EndpointSlices")
	}
}

// syncServerSlices makes one pass of keepServerSlices over the slices and
// Nodes in the informers' caches.
func syncServerSlices(ctx context.Context, client kubernetes.Interface, cfg Config, sliceLister discoverylisters.EndpointSliceLister, nodeLister corelisters.NodeLister) error {
	all, err := sliceLister.EndpointSlices(Namespace).List(labels.Everything())
	if err != nil {
		return err
	}
	api := client.DiscoveryV1().EndpointSlices(Namespace)
	own := sliceName(cfg)
	ownFound := false
	var errs []error
	for _, slice := range all {
		if slice.Labels[discoveryv1.LabelManagedBy] != managedBy {
			continue
		}
		if slice.Name == ServiceName {
			errs = append(errs, deleteSlice(ctx, api, slice, "the single server's"))
			continue
		}
		if slice.Name == own {
			ownFound = true
		}
		if len(slice.Endpoints) != 1 || slice.Endpoints[0].NodeName == nil {
			continue
		}
		node, err := nodeLister.Get(*slice.Endpoints[0].NodeName)
		switch {
		case apierrors.IsNotFound(err) && slice.Name != own:
			if time.Since(slice.CreationTimestamp.Time) > orphanGrace {
				errs = append(errs, deleteSlice(ctx, api, slice, "its Node is gone"))
			}
			continue
		case apierrors.IsNotFound(err):
			continue // its own, before its node registered
		case err != nil:
			return err
		}
		ready := keeper.NodeReady(node)
		if r := slice.Endpoints[0].Conditions.Ready; r != nil && *r == ready {
			continue
		}
		upd := slice.DeepCopy()
		upd.Endpoints[0].Conditions.Ready = ptr.To(ready)
		if _, err := api.Update(ctx, upd, metav1.UpdateOptions{}); err != nil {
			errs = append(errs, fmt.Errorf("update EndpointSlice %s: %w", klog.KObj(slice), err))
			continue
		}
		klog.FromContext(ctx).Info("Updated metrics-server EndpointSlice", "endpointSlice", klog.KObj(slice), "node", klog.KObj(node), "ready", ready)
	}
	if !ownFound {
		if _, err := api.Create(ctx, desiredSlice(cfg, true), metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			errs = append(errs, fmt.Errorf("create EndpointSlice %s/%s: %w", Namespace, own, err))
		}
	}
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func deleteSlice(ctx context.Context, api interface {
	Delete(context.Context, string, metav1.DeleteOptions) error
}, slice *discoveryv1.EndpointSlice, why string) error {
	err := api.Delete(ctx, slice.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &slice.UID}})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return fmt.Errorf("delete EndpointSlice %s: %w", klog.KObj(slice), err)
	}
	klog.FromContext(ctx).Info("Deleted metrics-server EndpointSlice", "endpointSlice", klog.KObj(slice), "reason", why)
	return nil
}
