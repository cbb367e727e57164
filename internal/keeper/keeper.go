// Package keeper runs the loop of the small controllers a server keeps
// next to the upstream ones (the kube-dns endpoints of several servers,
// the metrics-server EndpointSlices): one pass over informer caches
// whenever one of them sees a change, on a resync tick, and after a pass
// that failed. Passes never overlap and events that arrive during a pass
// fold into one more pass, as a workqueue of one key would.
package keeper

import (
	"context"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/cache"
	nodeutil "k8s.io/component-helpers/node/util"
	"k8s.io/klog/v2"
)

// Loop says how Run calls its pass.
type Loop struct {
	// What names the loop in its log lines.
	What string
	// Resync is how often a pass runs without an event.
	Resync time.Duration
	// Retry is how long after a failed pass the next one runs, if no
	// event comes first.
	Retry time.Duration
}

// Factory is an informer factory (informers.SharedInformerFactory) whose
// informers Run starts and stops.
type Factory interface {
	Start(stopCh <-chan struct{})
	Shutdown()
}

// Run starts the factories, whose informers the caller has asked for,
// adds an event handler to each of the informers, waits for their caches
// to sync, then calls pass as Loop says until ctx is done. It returns nil
// when ctx is done, or the error of adding a handler, once the factories'
// informers have stopped.
func Run(ctx context.Context, l Loop, factories []Factory, informers []cache.SharedIndexInformer, pass func(context.Context) error) error {
	ctx, cancel := context.WithCancel(ctx)
	for _, f := range factories {
		f.Start(ctx.Done())
		defer f.Shutdown()
	}
	defer cancel() // first: Shutdown waits for the informers to end
	kick := make(chan struct{}, 1)
	wake := func() {
		select {
		case kick <- struct{}{}:
		default: // a pass is already due
		}
	}
	handler := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { wake() },
		UpdateFunc: func(any, any) { wake() },
		DeleteFunc: func(any) { wake() },
	}
	synced := make([]cache.InformerSynced, 0, len(informers))
	for _, inf := range informers {
		reg, err := inf.AddEventHandler(handler)
		if err != nil {
			return err
		}
		defer func() { _ = inf.RemoveEventHandler(reg) }()
		synced = append(synced, inf.HasSynced)
	}
	if !cache.WaitForCacheSync(ctx.Done(), synced...) {
		return nil // ctx done
	}
	resync := time.NewTicker(l.Resync)
	defer resync.Stop()
	retry := time.NewTimer(0)
	retry.Stop()
	defer retry.Stop()
	for {
		if err := pass(ctx); err != nil && ctx.Err() == nil {
			klog.FromContext(ctx).V(2).Info(l.What+", will retry", "err", err)
			retry.Reset(l.Retry)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-kick:
		case <-resync.C:
		case <-retry.C:
		}
	}
}

// NodeReady is false while node's Ready condition is False or Unknown, as
// the node lifecycle controller treats the pods of a failed node; a node
// that reports no Ready condition yet counts as ready.
func NodeReady(node *corev1.Node) bool {
	_, c := nodeutil.GetNodeCondition(&node.Status, corev1.NodeReady)
	return c == nil || c.Status == corev1.ConditionTrue
}
