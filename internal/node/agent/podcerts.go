package agent

import (
	"context"
	"fmt"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
	"k8s.io/kubernetes/pkg/kubelet/podcertificate"
	"k8s.io/utils/clock"
)

// podUIDIndex indexes the pod informer by UID, for the pod certificate
// manager's GetPodByUID.
const podUIDIndex = "uid"

func podUIDIndexFunc(obj any) ([]string, error) {
	pod, ok := obj.(*v1.Pod)
	if !ok {
		return nil, nil
	}
	return []string{string(pod.UID)}, nil
}

// podManager is kubelet's pod manager as upstream's podcertificate manager
// sees it (its PodManager interface): the pods bound to this node, from
// the agent's informer.
type podManager struct {
	lister  corelisters.PodLister
	indexer cache.Indexer
}

var _ podcertificate.PodManager = podManager{}

// GetPodByUID returns the pod with uid if it is bound to this node.
func (m podManager) GetPodByUID(uid types.UID) (*v1.Pod, bool) {
	objs, err := m.indexer.ByIndex(podUIDIndex, string(uid))
	if err != nil || len(objs) == 0 {
		return nil, false
	}
	return objs[0].(*v1.Pod), true
}

// GetPods returns the pods bound to this node.
func (m podManager) GetPods() []*v1.Pod {
	pods, _ := m.lister.List(labels.Everything())
	return pods
}

// pcrSettle is how long after a PodCertificateRequest event the agent
// syncs the request's pod: the manager handles the event on its own queue
// first, and the sync then finds the issued certificate. A sync that
// comes too early fails its volume setup and is retried with the pod's
// back-off (at most maxSyncRetryDelay), as kubelet's volume manager
// retries.
const pcrSettle = 200 * time.Millisecond

// podCertificateResync is how often a running pod with podCertificate
// sources is synced, its volumes re-written, without an event: kubelet's
// sync frequency (1 min), at which it remounts projected volumes.
const podCertificateResync = time.Minute

// hasPodCertificates reports whether a projected volume of pod has a
// podCertificate source.
func hasPodCertificates(pod *v1.Pod) bool {
	for _, vol := range pod.Spec.Volumes {
		if vol.Projected == nil {
			continue
		}
		for _, src := range vol.Projected.Sources {
			if src.PodCertificate != nil {
				return true
			}
		}
	}
	return false
}

// startPodCertificates starts kubelet's podcertificate.IssuingManager on
// the agent's informer factory (PodCertificateRequests with
// spec.nodeName=<node>) and a Node informer limited to this node, as
// kubelet wires it, and makes it the pods' PodCertificateSource. Kubelet
// uses a no-op manager when its PodCertificateRequest feature gate is
// off; the agent, which does not share the control plane's feature gates,
// asks the API server whether it serves podcertificaterequests in
// certificates.k8s.io/v1. It must run before a.informers starts; the Node
// informer lives as long as ctx.
func (a *Agent) startPodCertificates(ctx context.Context) {
	logger := klog.FromContext(ctx)
	served, err := servesPodCertificateRequests(a.cfg.Client.Discovery().ServerResourcesForGroupVersion)
	if err != nil {
		logger.Error(err, "Asking the API server for PodCertificateRequests; pod certificates are disabled")
		return
	}
	if !served {
		logger.Info("Not starting PodCertificateRequest manager because the API server does not serve certificates.k8s.io/v1 podcertificaterequests")
		return
	}
	nodes := informers.NewSharedInformerFactoryWithOptions(a.cfg.Client, 0,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("metadata.name", a.cfg.NodeName).String()
		}))
	clk, ok := a.cfg.Clock.(clock.WithTicker)
	if !ok {
		clk = clock.RealClock{}
	}
	pcrs := a.informers.Certificates().V1().PodCertificateRequests()
	m := podcertificate.NewIssuingManager(a.cfg.Client,
		podManager{lister: a.podLister, indexer: a.informers.Core().V1().Pods().Informer().GetIndexer()},
		a.recorder, pcrs, nodes.Core().V1().Nodes(), types.NodeName(a.cfg.NodeName), clk)
	// The manager re-reads a request on its events; the pod's volume is
	// written by its sync, so the sync follows: the first issuance and
	// every refresh reach the pod's files without waiting for a back-off.
	if _, err := pcrs.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    a.enqueuePCRPod,
		UpdateFunc: func(_, cur any) { a.enqueuePCRPod(cur) },
	}); err != nil {
		logger.Error(err, "Watching PodCertificateRequests; pod certificates are disabled")
		return
	}
	a.objects.podCerts = m
	nodes.Start(ctx.Done())
	go m.Run(ctx)
	logger.V(2).Info("Started PodCertificateRequest manager")
}

func (a *Agent) enqueuePCRPod(obj any) {
	pcr, ok := obj.(*certificatesv1.PodCertificateRequest)
	if !ok {
		return
	}
	a.queue.AddAfter(cache.ObjectName{Namespace: pcr.Namespace, Name: pcr.Spec.PodName}, pcrSettle)
}

// servesPodCertificateRequests reports whether the API server serves
// podcertificaterequests in certificates.k8s.io/v1, from discovery.
func servesPodCertificateRequests(resources func(groupVersion string) (*metav1.APIResourceList, error)) (bool, error) {
	list, err := resources(certificatesv1.SchemeGroupVersion.String())
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("discover %s: %w", certificatesv1.SchemeGroupVersion, err)
	}
	for _, r := range list.APIResources {
		if r.Name == "podcertificaterequests" {
			return true, nil
		}
	}
	return false, nil
}
