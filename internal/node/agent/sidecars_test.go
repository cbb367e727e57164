package agent

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2/ktesting"

	"github.com/pocketkube/pocketkube/internal/node/runtime"
)

func sidecarContainer(name string) v1.Container {
	c := testContainer(name)
	c.RestartPolicy = new(v1.ContainerRestartPolicyAlways)
	return c
}

// A sidecar starts before the next init container, runs beside the app
// container, is restarted when it exits even under restartPolicy Never,
// and is stopped once the app container finished: the pod then succeeds
// by its app container alone.
func TestSyncPodSidecar(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	f := newFixture(t)
	pod := newPod("web", "c")
	pod.Spec.RestartPolicy = v1.RestartPolicyNever
	pod.Spec.InitContainers = []v1.Container{sidecarContainer("sc"), testContainer("i1")}
	f.pods = append(f.pods, pod)
	f.newAgent()

	if requeue := f.mustSync(ctx, "web"); requeue <= 0 {
		t.Errorf("requeue %v after starting a sidecar, want a sync soon", requeue)
	}
	f.expectCalls("RunPod web-uid", "CreateContainer web-uid/sc attempt 0", "StartContainer web-uid/sc")
	s := f.expectStatus(ctx, "web", v1.PodPending, "sc running restarts=0 ready", "i1 waiting PodInitializing restarts=0", "c waiting PodInitializing restarts=0")
	if got := condition(s, v1.PodInitialized); got != "False ContainersNotInitialized containers with incomplete status: [i1]" {
		t.Errorf("Initialized = %q", got)
	}

	f.mustSync(ctx, "web")
	f.expectCalls("CreateContainer web-uid/i1 attempt 0", "StartContainer web-uid/i1")
	f.expectStatus(ctx, "web", v1.PodPending, "sc running restarts=0 ready", "i1 running restarts=0", "c waiting PodInitializing restarts=0")

	f.runtime.exit("web-uid", "i1", 0)
	f.mustSync(ctx, "web")
	f.expectCalls("CreateContainer web-uid/c attempt 0", "StartContainer web-uid/c")
	s = f.expectStatus(ctx, "web", v1.PodRunning, "sc running restarts=0 ready", "i1 terminated 0 Completed restarts=0 ready", "c running restarts=0 ready")
	if got := condition(s, v1.PodReady); got != "True" {
		t.Errorf("Ready = %q", got)
	}

	f.runtime.exit("web-uid", "sc", 1)
	f.mustSync(ctx, "web")
	f.expectCalls("CreateContainer web-uid/sc attempt 1", "StartContainer web-uid/sc")
	f.expectStatus(ctx, "web", v1.PodRunning, "sc running restarts=1 last=1 ready", "i1 terminated 0 Completed restarts=0 ready", "c running restarts=0 ready")

	f.expectEvents(
		`Normal Pulled Container image "busybox" already present on machine`, "Normal Created Container created", "Normal Started Container started",
		`Normal Pulled Container image "busybox" already present on machine`, "Normal Created Container created", "Normal Started Container started",
		`Normal Pulled Container image "busybox" already present on machine`, "Normal Created Container created", "Normal Started Container started",
		`Normal Pulled Container image "busybox" already present on machine`, "Normal Created Container created", "Normal Started Container started",
	)
	f.runtime.exit("web-uid", "c", 0)
	f.mustSync(ctx, "web")
	f.expectCalls("StopContainer web-uid/sc grace 30s")
	f.expectEvents("Normal Killing Stopping container sc")
	s = f.expectStatus(ctx, "web", v1.PodSucceeded, "sc terminated 137 Error restarts=1 last=1", "i1 terminated 0 Completed restarts=0 ready", "c terminated 0 Completed restarts=0")
	if got := condition(s, v1.PodReady); got != "False PodCompleted" {
		t.Errorf("Ready = %q", got)
	}
}

// A failing app container of a pod with restartPolicy Never fails the pod
// once its sidecar is stopped; the sidecar's own exit code does not count.
func TestSyncPodSidecarAppFails(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	f := newFixture(t)
	pod := newPod("web", "c")
	pod.Spec.RestartPolicy = v1.RestartPolicyNever
	pod.Spec.InitContainers = []v1.Container{sidecarContainer("sc")}
	f.pods = append(f.pods, pod)
	f.newAgent()
	f.mustSync(ctx, "web")
	f.mustSync(ctx, "web")
	f.expectStatus(ctx, "web", v1.PodRunning, "sc running restarts=0 ready", "c running restarts=0 ready")
	f.runtime.exit("web-uid", "c", 2)
	f.mustSync(ctx, "web")
	s := f.expectStatus(ctx, "web", v1.PodFailed, "sc terminated 137 Error restarts=0", "c terminated 2 Error restarts=0")
	if got := condition(s, v1.PodReady); got != "False PodFailed" {
		t.Errorf("Ready = %q", got)
	}
}

// A sidecar's readiness counts for the pod's: a sidecar that exited and
// waits to restart leaves the pod not ready, but Running.
func TestSyncPodSidecarReadiness(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	f := newFixture(t)
	pod := newPod("web", "c")
	pod.Spec.InitContainers = []v1.Container{sidecarContainer("sc")}
	f.pods = append(f.pods, pod)
	f.newAgent()
	f.mustSync(ctx, "web")
	f.mustSync(ctx, "web")
	f.runtime.exit("web-uid", "sc", 1)
	f.mustSync(ctx, "web") // restarts at once
	f.runtime.exit("web-uid", "sc", 1)
	// Backing off: the next sync is when the back-off ends, not at once.
	if requeue := f.mustSync(ctx, "web"); requeue < time.Second {
		t.Errorf("requeue %v while the sidecar backs off", requeue)
	}
	s := f.expectStatus(ctx, "web", v1.PodRunning,
		`sc waiting CrashLoopBackOff "back-off 10s restarting failed container=sc pod=web_ns(web-uid)" restarts=1 last=1`, "c running restarts=0 ready")
	if got := condition(s, v1.ContainersReady); got != "False ContainersNotReady containers with unready status: [sc]" {
		t.Errorf("ContainersReady = %q", got)
	}
	if got := condition(s, v1.PodInitialized); got != "True" {
		t.Errorf("Initialized = %q", got)
	}
}

// A pod with sidecars stops its app containers first, then its sidecars
// from the last to the first, as kubelet's termination ordering does.
func TestSyncPodSidecarTerminationOrder(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	f := newFixture(t)
	pod := newPod("web", "c")
	pod.Spec.InitContainers = []v1.Container{sidecarContainer("s1"), testContainer("i1"), sidecarContainer("s2")}
	f.pods = append(f.pods, pod)
	f.newAgent()
	for range 3 {
		f.mustSync(ctx, "web")
	}
	f.runtime.exit("web-uid", "i1", 0)
	f.mustSync(ctx, "web")
	f.mustSync(ctx, "web")
	f.expectStatus(ctx, "web", v1.PodRunning, "s1 running restarts=0 ready", "i1 terminated 0 Completed restarts=0 ready", "s2 running restarts=0 ready", "c running restarts=0 ready")
	f.runtime.takeCalls()

	f.update(ctx, "web", func(p *v1.Pod) {
		p.DeletionTimestamp = &metav1.Time{Time: f.clock.Now()}
		p.DeletionGracePeriodSeconds = new(int64(5))
		p.ResourceVersion = "2"
	})
	f.mustSync(ctx, "web")
	var stops []string
	for _, c := range f.runtime.takeCalls() {
		if strings.HasPrefix(c, "Stop") {
			stops = append(stops, c)
		}
	}
	// Each waits for those before it, so the runtime sees them in order;
	// the sidecars get what is left of the grace period after the wait,
	// in whole seconds.
	want := []string{"StopContainer web-uid/c grace 5s", "StopContainer web-uid/s2 grace 5s", "StopContainer web-uid/s1 grace 5s"}
	if diff := cmp.Diff(want, stops); diff != "" {
		t.Errorf("stops (-want +got):\n%s", diff)
	}
}

func TestInitActions(t *testing.T) {
	for _, tc := range []struct {
		name  string
		inits []v1.Container
		// state of each init container's latest attempt: "" none, "running",
		// "ok" (exited 0), "failed" (exited 1)
		states          []string
		app             string
		wantStart       []int
		wantInitialized bool
	}{
		{"first", []v1.Container{testContainer("a"), sidecarContainer("b")}, []string{"", ""}, "", []int{0}, false},
		{"sidecar started: next", []v1.Container{sidecarContainer("a"), testContainer("b")}, []string{"running", ""}, "", []int{1}, false},
		{"last sidecar started", []v1.Container{testContainer("a"), sidecarContainer("b")}, []string{"ok", "running"}, "", nil, true},
		{"sidecar exited: restart", []v1.Container{sidecarContainer("a"), testContainer("b")}, []string{"failed", "running"}, "", []int{0}, false},
		{"initialized: only sidecars restart", []v1.Container{sidecarContainer("a"), testContainer("b")}, []string{"ok", ""}, "running", []int{0}, true},
		{"initialized: missing sidecar starts", []v1.Container{sidecarContainer("a"), testContainer("b")}, []string{"", ""}, "running", []int{0}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			pod := newPod("web", "c")
			pod.Spec.InitContainers = tc.inits
			a := f.newAgent()
			var statuses []*runtime.ContainerStatus
			for i, s := range tc.states {
				if s != "" {
					statuses = append(statuses, fakeStatus(tc.inits[i].Name, s))
				}
			}
			if tc.app != "" {
				statuses = append(statuses, fakeStatus("c", tc.app))
			}
			start, initialized, failed := a.initActions(pod, latestByName(statuses))
			if diff := cmp.Diff(tc.wantStart, start); diff != "" || initialized != tc.wantInitialized || failed {
				t.Errorf("start %v (-want +got %s), initialized %v, failed %v", start, diff, initialized, failed)
			}
		})
	}
}

// fakeStatus is a container's latest attempt in state running, ok (exited
// 0) or failed (exited 1).
func fakeStatus(name, state string) *runtime.ContainerStatus {
	cs := &runtime.ContainerStatus{ID: name + "-id", Name: name, State: runtime.StateExited}
	switch state {
	case "running":
		cs.State = runtime.StateRunning
	case "failed":
		cs.ExitCode = 1
	}
	return cs
}
