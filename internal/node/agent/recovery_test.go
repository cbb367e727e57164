package agent

import (
	"slices"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2/ktesting"
)

const sandboxChanged = "Normal SandboxChanged Pod sandbox changed, it will be killed and re-created."

// startEvents are the events of n container starts.
func startEvents(n int) []string {
	var out []string
	for range n {
		out = append(out, `Normal Pulled Container image "busybox" already present on machine`, "Normal Created Container created", "Normal Started Container started")
	}
	return out
}

// A container whose shim died with it is reported by the runtime as
// containerd reports it (255, Unknown): it is restarted per the pod's
// restartPolicy, with its restart count and last state showing it.
func TestSyncPodRestartsContainerOfDeadShim(t *testing.T) {
	for _, tc := range []struct {
		policy v1.RestartPolicy
		calls  []string
		phase  v1.PodPhase
		status string
	}{
		{v1.RestartPolicyAlways, []string{"CreateContainer web-uid/c attempt 1", "StartContainer web-uid/c"}, v1.PodRunning, "c running restarts=1 last=255 ready"},
		{v1.RestartPolicyOnFailure, []string{"CreateContainer web-uid/c attempt 1", "StartContainer web-uid/c"}, v1.PodRunning, "c running restarts=1 last=255 ready"},
		{v1.RestartPolicyNever, nil, v1.PodFailed, "c terminated 255 Unknown restarts=0"},
	} {
		t.Run(string(tc.policy), func(t *testing.T) {
			_, ctx := ktesting.NewTestContext(t)
			f := newFixture(t)
			pod := newPod("web", "c")
			pod.Spec.RestartPolicy = tc.policy
			f.pods = append(f.pods, pod)
			f.newAgent()
			f.mustSync(ctx, "web")
			f.expectCalls("RunPod web-uid", "CreateContainer web-uid/c attempt 0", "StartContainer web-uid/c")
			f.expectEvents(startEvents(1)...)

			f.runtime.loseShim("web-uid", "c")
			f.mustSync(ctx, "web")
			f.expectCalls(tc.calls...)
			s := f.expectStatus(ctx, "web", tc.phase, tc.status)
			if tc.policy != v1.RestartPolicyNever {
				last := s.ContainerStatuses[0].LastTerminationState.Terminated
				if last == nil || last.ExitCode != 255 || last.Reason != "Unknown" {
					t.Errorf("lastState.terminated = %+v, want exit code 255, reason Unknown", last)
				}
				f.expectEvents(startEvents(1)...)
			}
		})
	}
}

// After a reboot the pod's sandbox is gone and its containers exited
// (255, Unknown): the next agent records SandboxChanged, releases the old
// network, makes a new sandbox (a new IP) and runs the init containers
// and then the app containers again, counting the restarts on.
func TestSyncPodRecreatesSandboxLostInReboot(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	f := newFixture(t)
	pod := newPod("web", "c")
	pod.Spec.InitContainers = []v1.Container{testContainer("i")}
	f.pods = append(f.pods, pod)
	f.newAgent()
	f.mustSync(ctx, "web")
	f.runtime.exit("web-uid", "i", 0)
	f.mustSync(ctx, "web")
	f.expectCalls("RunPod web-uid", "CreateContainer web-uid/i attempt 0", "StartContainer web-uid/i",
		"CreateContainer web-uid/c attempt 0", "StartContainer web-uid/c")
	f.expectEvents(startEvents(2)...)
	ipBefore := f.status(ctx, "web").PodIP

	f.runtime.reboot("web-uid")
	f.clock.Step(time.Minute)
	f.newAgent() // `up` again
	f.mustSync(ctx, "web")
	f.expectCalls("RunPod web-uid", "CreateContainer web-uid/i attempt 1", "StartContainer web-uid/i")
	f.expectEvents(append([]string{sandboxChanged}, startEvents(1)...)...)
	if !slices.Contains(f.network.torndown, "web-uid") {
		t.Errorf("the old network was not torn down: %v", f.network.torndown)
	}
	f.expectStatus(ctx, "web", v1.PodPending, "i running restarts=1 last=0", "c terminated 255 Unknown restarts=0")

	f.runtime.exit("web-uid", "i", 0)
	f.mustSync(ctx, "web")
	f.expectCalls("CreateContainer web-uid/c attempt 1", "StartContainer web-uid/c")
	s := f.expectStatus(ctx, "web", v1.PodRunning, "i terminated 0 Completed restarts=1 last=0 ready", "c running restarts=1 last=255 ready")
	if s.PodIP == ipBefore {
		t.Errorf("pod IP %s kept: the new sandbox has a new network", s.PodIP)
	}
	f.expectEvents(startEvents(1)...)

	// The new sandbox is whole: the next sync changes nothing.
	f.mustSync(ctx, "web")
	f.expectCalls()
	f.expectEvents()
}

// A sandbox that breaks under running containers (its pause died, a
// namespace was removed) has them killed and started again in a new one;
// a pod that must not restart only has them killed, and fails.
func TestSyncPodKillsContainersOfChangedSandbox(t *testing.T) {
	for _, tc := range []struct {
		policy v1.RestartPolicy
		calls  []string
		events []string
		phase  v1.PodPhase
		status string
	}{
		{v1.RestartPolicyAlways,
			[]string{"StopContainer web-uid/c grace 30s", "RunPod web-uid", "CreateContainer web-uid/c attempt 1", "StartContainer web-uid/c"},
			append([]string{sandboxChanged, "Normal Killing Stopping container c"}, startEvents(1)...),
			v1.PodRunning, "c running restarts=1 last=137 ready"},
		{v1.RestartPolicyNever,
			[]string{"StopContainer web-uid/c grace 30s"},
			[]string{"Normal Killing Stopping container c"},
			v1.PodFailed, "c terminated 137 Error restarts=0"},
	} {
		t.Run(string(tc.policy), func(t *testing.T) {
			_, ctx := ktesting.NewTestContext(t)
			f := newFixture(t)
			pod := newPod("web", "c")
			pod.Spec.RestartPolicy = tc.policy
			f.pods = append(f.pods, pod)
			f.newAgent()
			f.mustSync(ctx, "web")
			f.expectCalls("RunPod web-uid", "CreateContainer web-uid/c attempt 0", "StartContainer web-uid/c")
			f.expectEvents(startEvents(1)...)

			f.runtime.mu.Lock()
			f.runtime.notReady["web-uid"] = true
			f.runtime.mu.Unlock()
			f.mustSync(ctx, "web")
			f.expectCalls(tc.calls...)
			f.expectStatus(ctx, "web", tc.phase, tc.status)
			f.expectEvents(tc.events...)
		})
	}
}
