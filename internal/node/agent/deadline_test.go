package agent

import (
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2/ktesting"
)

// activeDeadlineSeconds set on a running pod takes effect: at the
// deadline its containers are stopped and it fails with kubelet's reason
// and message.
func TestSyncPodActiveDeadline(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	f := newFixture(t)
	f.pods = append(f.pods, newPod("web", "c"))
	f.newAgent()
	f.mustSync(ctx, "web")
	f.runtime.takeCalls()
	f.expectEvents(`Normal Pulled Container image "busybox" already present on machine`, "Normal Created Container created", "Normal Started Container started")

	f.update(ctx, "web", func(p *v1.Pod) {
		p.Spec.ActiveDeadlineSeconds = new(int64(5))
		p.ResourceVersion = "2"
	})
	if requeue := f.mustSync(ctx, "web"); requeue != 5*time.Second {
		t.Errorf("requeue %v, want the 5 s left to the deadline", requeue)
	}
	f.expectCalls()
	f.clock.Step(5 * time.Second)
	f.mustSync(ctx, "web")
	f.expectCalls("StopContainer web-uid/c grace 30s")
	f.expectEvents("Normal DeadlineExceeded Pod was active on the node longer than the specified deadline")
	s := f.expectStatus(ctx, "web", v1.PodFailed, "c terminated 137 Error restarts=0")
	if s.Reason != "DeadlineExceeded" || s.Message != "Pod was active on the node longer than the specified deadline" {
		t.Errorf("reason %q, message %q", s.Reason, s.Message)
	}
	if got := condition(s, v1.PodReady); got != "False PodFailed" {
		t.Errorf("Ready = %q", got)
	}
	// The failed pod gives its sandbox back.
	f.mustSync(ctx, "web")
	if f.network.has("web-uid") {
		t.Error("network still set up")
	}
}

// The status says which generation of the pod it answers, as do the
// conditions kubelet writes, PodScheduled included.
func TestSyncPodObservedGeneration(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	f := newFixture(t)
	pod := newPod("web", "c")
	pod.Generation = 3
	pod.Status.Conditions = []v1.PodCondition{{Type: v1.PodScheduled, Status: v1.ConditionTrue, ObservedGeneration: 1}}
	f.pods = append(f.pods, pod)
	f.newAgent()
	f.mustSync(ctx, "web")
	s := f.status(ctx, "web")
	if s.ObservedGeneration != 3 {
		t.Errorf("observedGeneration %d, want 3", s.ObservedGeneration)
	}
	want := []v1.PodConditionType{v1.PodReadyToStartContainers, v1.PodInitialized, v1.PodReady, v1.ContainersReady, v1.PodScheduled}
	got := map[v1.PodConditionType]int64{}
	for _, c := range s.Conditions {
		got[c.Type] = c.ObservedGeneration
	}
	for _, typ := range want {
		if g, ok := got[typ]; !ok || g != 3 {
			t.Errorf("condition %s observedGeneration %d (present %v), want 3", typ, g, ok)
		}
	}
	if len(s.Conditions) != len(want) {
		t.Errorf("conditions %v, want one of each of %v", s.Conditions, want)
	}
}
