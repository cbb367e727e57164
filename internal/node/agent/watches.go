package agent

import (
	"context"
	"sync"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// objectRef names a ConfigMap or Secret a pod references.
type objectRef struct {
	resource, namespace, name string
}

// objectWatches keeps one single-object watch per ConfigMap and Secret the
// node's pods reference, as kubelet's watch-based configmap and secret
// managers do (the Node authorizer lets a node watch exactly those). A
// change syncs the pods that reference the object, so their volumes follow
// it within moments instead of at a sync period.
type objectWatches struct {
	client  kubernetes.Interface
	enqueue func(cache.ObjectName)

	mu      sync.Mutex
	watches map[objectRef]*objectWatch
	byPod   map[cache.ObjectName][]objectRef
}

type objectWatch struct {
	stop     context.CancelFunc
	pods     map[cache.ObjectName]bool
	informer cache.SharedIndexInformer
}

func newObjectWatches(client kubernetes.Interface, enqueue func(cache.ObjectName)) *objectWatches {
	return &objectWatches{client: client, enqueue: enqueue, watches: map[objectRef]*objectWatch{}, byPod: map[cache.ObjectName][]objectRef{}}
}

// podRefs lists the ConfigMaps and Secrets a pod uses: volumes, projected
// sources, env and envFrom.
func podRefs(pod *v1.Pod) []objectRef {
	seen := map[objectRef]bool{}
	var refs []objectRef
	add := func(resource, name string) {
		r := objectRef{resource, pod.Namespace, name}
		if name != "" && !seen[r] {
			seen[r] = true
			refs = append(refs, r)
		}
	}
	for _, vol := range pod.Spec.Volumes {
		switch s := vol.VolumeSource; {
		case s.ConfigMap != nil:
			add("configmaps", s.ConfigMap.Name)
		case s.Secret != nil:
			add("secrets", s.Secret.SecretName)
		case s.Projected != nil:
			for _, p := range s.Projected.Sources {
				if p.ConfigMap != nil {
					add("configmaps", p.ConfigMap.Name)
				}
				if p.Secret != nil {
					add("secrets", p.Secret.Name)
				}
			}
		}
	}
	for _, c := range allContainers(pod) {
		for _, e := range c.EnvFrom {
			if e.ConfigMapRef != nil {
				add("configmaps", e.ConfigMapRef.Name)
			}
			if e.SecretRef != nil {
				add("secrets", e.SecretRef.Name)
			}
		}
		for _, e := range c.Env {
			if e.ValueFrom != nil && e.ValueFrom.ConfigMapKeyRef != nil {
				add("configmaps", e.ValueFrom.ConfigMapKeyRef.Name)
			}
			if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
				add("secrets", e.ValueFrom.SecretKeyRef.Name)
			}
		}
	}
	return refs
}

// set makes the watches match pod's references.
func (w *objectWatches) set(ctx context.Context, key cache.ObjectName, refs []objectRef) {
	w.mu.Lock()
	defer w.mu.Unlock()
	// Only the difference: restarting a watch would replay its Add event
	// and sync the pod again, forever.
	keep := map[objectRef]bool{}
	for _, r := range refs {
		keep[r] = true
	}
	for _, r := range w.byPod[key] {
		if ow := w.watches[r]; ow != nil && !keep[r] {
			delete(ow.pods, key)
			if len(ow.pods) == 0 {
				ow.stop()
				delete(w.watches, r)
			}
		}
	}
	w.byPod[key] = refs
	for _, r := range refs {
		ow, ok := w.watches[r]
		if !ok {
			ow = &objectWatch{pods: map[cache.ObjectName]bool{}}
			ow.stop, ow.informer = w.start(ctx, r)
			w.watches[r] = ow
		}
		ow.pods[key] = true
	}
}

// remove drops pod's references and stops watches nobody needs.
func (w *objectWatches) remove(key cache.ObjectName) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.dropLocked(key)
	delete(w.byPod, key)
}

func (w *objectWatches) dropLocked(key cache.ObjectName) {
	for _, r := range w.byPod[key] {
		ow := w.watches[r]
		if ow == nil {
			continue
		}
		delete(ow.pods, key)
		if len(ow.pods) == 0 {
			ow.stop()
			delete(w.watches, r)
		}
	}
}

// cached returns the object as the pod's watch last saw it: ok is false when
// no watch has synced yet (the caller asks the API server), exists false when
// the object does not exist. Callers must not modify it.
func (w *objectWatches) cached(resource, namespace, name string) (obj any, exists, ok bool) {
	w.mu.Lock()
	ow := w.watches[objectRef{resource, namespace, name}]
	w.mu.Unlock()
	if ow == nil || !ow.informer.HasSynced() {
		return nil, false, false
	}
	obj, exists, err := ow.informer.GetStore().GetByKey(namespace + "/" + name)
	if err != nil {
		return nil, false, false
	}
	return obj, exists, true
}

func (w *objectWatches) start(ctx context.Context, r objectRef) (context.CancelFunc, cache.SharedIndexInformer) {
	// ctx is the workers': the watch ends when the agent stops, so no
	// watch holds the API server's graceful shutdown open.
	ctx, cancel := context.WithCancel(ctx)
	var obj k8sruntime.Object = &v1.ConfigMap{}
	if r.resource == "secrets" {
		obj = &v1.Secret{}
	}
	selector := fields.OneTermEqualSelector("metadata.name", r.name).String()
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (k8sruntime.Object, error) {
			o.FieldSelector = selector
			if r.resource == "secrets" {
				return w.client.CoreV1().Secrets(r.namespace).List(ctx, o)
			}
			return w.client.CoreV1().ConfigMaps(r.namespace).List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.FieldSelector = selector
			if r.resource == "secrets" {
				return w.client.CoreV1().Secrets(r.namespace).Watch(ctx, o)
			}
			return w.client.CoreV1().ConfigMaps(r.namespace).Watch(ctx, o)
		},
	}
	// The typed client tells the informer whether it can stream the
	// initial list (a fake clientset cannot).
	informer := cache.NewSharedIndexInformer(cache.ToListWatcherWithWatchListSemantics(lw, w.client), obj, 0, cache.Indexers{})
	notify := func() {
		w.mu.Lock()
		var pods []cache.ObjectName
		if ow := w.watches[r]; ow != nil {
			for p := range ow.pods {
				pods = append(pods, p)
			}
		}
		w.mu.Unlock()
		for _, p := range pods {
			w.enqueue(p)
		}
	}
	informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		UpdateFunc: func(old, cur any) {
			if old.(interface{ GetResourceVersion() string }).GetResourceVersion() != cur.(interface{ GetResourceVersion() string }).GetResourceVersion() {
				notify()
			}
		},
		// An object created after the pod (an optional or late one) or
		// deleted also changes what the pod's volumes hold.
		AddFunc:    func(any) { notify() },
		DeleteFunc: func(any) { notify() },
	})
	go informer.RunWithContext(ctx)
	return cancel, informer
}
