package agent

import (
	"slices"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2/ktesting"
)

// Evict ends the pod in its next sync as kubelet's eviction manager
// does: an Evicted event, the containers stopped with 1 s grace, phase
// Failed with reason Evicted and the message, volumes released. Syncs
// that still see the pod running restart nothing.
func TestEvictPod(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	f := newFixture(t)
	f.pods = append(f.pods, newPod("web", "c"))
	a := f.newAgent()
	f.mustSync(ctx, "web")
	f.runtime.takeCalls()
	for len(f.recorder.Events) > 0 {
		<-f.recorder.Events
	}
	active, err := a.ActivePods()
	if err != nil || len(active) != 1 {
		t.Fatalf("ActivePods = %d pods, %v; want web", len(active), err)
	}
	running := active[0]

	const msg = `Usage of EmptyDir volume "data" exceeds the limit "1Mi". `
	a.Evict(ctx, running, msg)
	if a.queue.Len() != 1 {
		t.Errorf("queue holds %d keys after Evict, want web's", a.queue.Len())
	}
	f.mustSync(ctx, "web")
	f.expectCalls("StopContainer web-uid/c grace 1s")
	f.expectEvents("Warning Evicted "+msg, "Normal Killing Stopping container c")
	s := f.expectStatus(ctx, "web", v1.PodFailed, "c terminated 137 Error restarts=0")
	if s.Reason != "Evicted" || s.Message != msg {
		t.Errorf("reason %q message %q, want Evicted, %q", s.Reason, s.Message, msg)
	}
	// Kubelet's condition for a pod in a terminal phase.
	if got := condition(s, v1.PodReady); got != "False PodFailed" {
		t.Errorf("Ready = %q", got)
	}
	if !slices.Contains(f.volumes.torndown, "web-uid") {
		t.Errorf("volumes of the evicted pod not torn down: %v", f.volumes.torndown)
	}
	if active, _ := a.ActivePods(); len(active) != 0 {
		t.Errorf("ActivePods after the eviction = %d pods, want none", len(active))
	}

	// A sync that still reads the running pod from a lagging informer.
	indexer := a.informers.Core().V1().Pods().Informer().GetIndexer()
	if err := indexer.Update(running); err != nil {
		t.Fatal(err)
	}
	if _, err := a.syncPod(ctx, cache.ObjectName{Namespace: "ns", Name: "web"}); err != nil {
		t.Fatal(err)
	}
	f.expectCalls()
	f.expectEvents()
	f.expectStatus(ctx, "web", v1.PodFailed, "c terminated 137 Error restarts=0")
}
