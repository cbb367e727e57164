package agent

import (
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2/ktesting"
)

func debugContainer(name, target string) v1.EphemeralContainer {
	return v1.EphemeralContainer{EphemeralContainerCommon: v1.EphemeralContainerCommon(testContainer(name)), TargetContainerName: target}
}

// An ephemeral container added to a running pod starts once, in its
// target's PID namespace, shows in ephemeralContainerStatuses (never
// ready, started unset) and is not restarted after it exits, even with
// restartPolicy Always.
func TestSyncPodEphemeralContainer(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	f := newFixture(t)
	f.pods = append(f.pods, newPod("web", "app"))
	f.newAgent()
	f.mustSync(ctx, "web")
	f.runtime.takeCalls()
	f.expectEvents(
		`Normal Pulled Container image "busybox" already present on machine`,
		"Normal Created Container created",
		"Normal Started Container started",
	)

	f.update(ctx, "web", func(p *v1.Pod) {
		p.Spec.EphemeralContainers = append(p.Spec.EphemeralContainers, debugContainer("debugger", "app"))
	})
	f.mustSync(ctx, "web")
	f.expectCalls("CreateContainer web-uid/debugger attempt 0", "StartContainer web-uid/debugger")
	if got := f.runtime.configs["debugger"].TargetContainerID; got != "c1" {
		t.Errorf("target container ID %q, want c1 (app's)", got)
	}
	s := f.expectStatus(ctx, "web", v1.PodRunning, "app running restarts=0 ready")
	if len(s.EphemeralContainerStatuses) != 1 {
		t.Fatalf("ephemeral container statuses %v", s.EphemeralContainerStatuses)
	}
	ecs := s.EphemeralContainerStatuses[0]
	if got := describe(ecs); got != "debugger running restarts=0" || ecs.Started != nil {
		t.Errorf("ephemeral status %s, started %v", got, ecs.Started)
	}
	if got := condition(s, v1.PodReady); got != "True" {
		t.Errorf("Ready %q: an ephemeral container does not count for readiness", got)
	}

	f.runtime.exit("web-uid", "debugger", 3)
	f.mustSync(ctx, "web")
	f.mustSync(ctx, "web")
	f.expectCalls()
	s = f.status(ctx, "web")
	if got := describe(s.EphemeralContainerStatuses[0]); got != "debugger terminated 3 Error restarts=0" {
		t.Errorf("ephemeral status %s", got)
	}
	if s.Phase != v1.PodRunning {
		t.Errorf("phase %s", s.Phase)
	}
}

// A target that never ran is kubelet's CreateContainerConfigError
// "unable to find target container", retried later; a debug container
// without a target gets no target ID.
func TestSyncPodEphemeralTarget(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	f := newFixture(t)
	pod := newPod("web", "app")
	pod.Spec.EphemeralContainers = []v1.EphemeralContainer{debugContainer("bad", "nope"), debugContainer("plain", "")}
	f.pods = append(f.pods, pod)
	f.newAgent()
	if requeue := f.mustSync(ctx, "web"); requeue <= 0 {
		t.Errorf("requeue %s, want a retry of the failed ephemeral container", requeue)
	}
	s := f.status(ctx, "web")
	var got []string
	for _, cs := range s.EphemeralContainerStatuses {
		got = append(got, describe(cs))
	}
	want := []string{`bad waiting CreateContainerConfigError "unable to find target container nope" restarts=0`, "plain running restarts=0"}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("ephemeral statuses %q, want %q", got, want)
	}
	if id := f.runtime.configs["plain"].TargetContainerID; id != "" {
		t.Errorf("target ID %q without a target", id)
	}
}

// An ephemeral container the runtime no longer has (its pod is being
// killed) keeps its terminated status, and a running one ends as
// ContainerStatusUnknown: the API refuses an ephemeral container that
// goes back to waiting. One that never ran stays waiting.
func TestEphemeralStatusWithoutContainer(t *testing.T) {
	f := newFixture(t)
	pod := newPod("web", "app")
	pod.Spec.EphemeralContainers = []v1.EphemeralContainer{debugContainer("done", ""), debugContainer("running", ""), debugContainer("new", "")}
	pod.Status.EphemeralContainerStatuses = []v1.ContainerStatus{
		{Name: "done", ContainerID: "runc://d", State: v1.ContainerState{Terminated: &v1.ContainerStateTerminated{ExitCode: 3, Reason: "Error"}}},
		{Name: "running", ContainerID: "runc://r", State: v1.ContainerState{Running: &v1.ContainerStateRunning{}}},
	}
	a := f.newAgent()
	s := a.podStatus(pod, a.state(pod), nil)
	var got []string
	for _, cs := range s.EphemeralContainerStatuses {
		got = append(got, describe(cs)+" "+cs.ContainerID)
	}
	want := []string{"done terminated 3 Error restarts=0 runc://d", "running terminated 137 ContainerStatusUnknown restarts=0 runc://r", "new waiting ContainerCreating restarts=0 "}
	if len(got) != len(want) {
		t.Fatalf("statuses %q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("status %q, want %q", got[i], want[i])
		}
	}
}
