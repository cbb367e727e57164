package keeper

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/cache"
)

// TestRun drives Run with a Node informer on a fake API: a pass after the
// caches sync, one after a change, one after a failed pass (Retry) without
// any event, none while nothing happens, and Run's return when ctx ends.
func TestRun(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client := fake.NewClientset(&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}})
	factory := informers.NewSharedInformerFactory(client, 0)
	nodes := factory.Core().V1().Nodes()
	inf := nodes.Informer()

	type passInfo struct{ nodes int }
	passes := make(chan passInfo, 100)
	var fail atomic.Bool
	pass := func(context.Context) error {
		all, err := nodes.Lister().List(labels.Everything())
		if err != nil {
			return err
		}
		passes <- passInfo{len(all)}
		if fail.Swap(false) {
			return errors.New("refused")
		}
		return nil
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- Run(runCtx, Loop{What: "test", Resync: time.Hour, Retry: 50 * time.Millisecond},
			[]Factory{factory}, []cache.SharedIndexInformer{inf}, pass)
	}()
	next := func(why string) passInfo {
		t.Helper()
		select {
		case p := <-passes:
			return p
		case <-ctx.Done():
			t.Fatalf("no pass %s", why)
			return passInfo{}
		}
	}
	// quiet lets the passes that events already queued run (the informer
	// may deliver one event in several notifications), then wants none.
	quiet := func(why string) {
		t.Helper()
		for n := 0; ; n++ {
			select {
			case <-passes:
				if n == 3 {
					t.Fatalf("passes keep coming %s without events", why)
				}
			case <-time.After(300 * time.Millisecond):
				return
			}
		}
	}

	if p := next("after the caches synced"); p.nodes != 1 {
		t.Fatalf("first pass saw %d nodes, want 1 (caches not synced)", p.nodes)
	}
	quiet("at start")

	if _, err := client.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n2"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for p := next("after a Node was added"); p.nodes != 2; p = next("after a Node was added") {
	}
	quiet("after the add")

	// A failed pass is followed by another without any event.
	fail.Store(true)
	if err := client.CoreV1().Nodes().Delete(ctx, "n2", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	next("after a Node was deleted")
	if fail.Load() {
		t.Fatal("the failing pass did not run")
	}
	next("after a failed pass (Retry)")

	stop()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("Run did not return when its context ended")
	}
}

func TestNodeReady(t *testing.T) {
	cond := func(s corev1.ConditionStatus) *corev1.Node {
		return &corev1.Node{Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{
			{Type: corev1.NodeMemoryPressure, Status: corev1.ConditionTrue},
			{Type: corev1.NodeReady, Status: s},
		}}}
	}
	for _, tc := range []struct {
		node *corev1.Node
		want bool
	}{
		{&corev1.Node{}, true},
		{cond(corev1.ConditionTrue), true},
		{cond(corev1.ConditionFalse), false},
		{cond(corev1.ConditionUnknown), false},
	} {
		if got := NodeReady(tc.node); got != tc.want {
			t.Errorf("NodeReady(%v) = %v, want %v", tc.node.Status.Conditions, got, tc.want)
		}
	}
}
