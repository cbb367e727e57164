//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pocketkube/pocketkube/test/framework"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// sleeperPod prints its name to stdout and a line to stderr, then sleeps.
func sleeperPod(name string) string {
	return podYAML(name, 2, `  containers:
  - name: main
    image: busybox
    command: ["sh", "-c", "echo hello from $(POD_NAME); sleep 0.2; echo to stderr >&2; exec sleep 3600"]
    env:
    - name: POD_NAME
      valueFrom:
        fieldRef:
          fieldPath: metadata.name
`)
}

func TestRestartPolicies(t *testing.T) {
	t.Parallel()
	c := shared.Client(t)
	manifest := func(name, policy string, code int) string {
		return podYAML(name, 1, fmt.Sprintf(`  restartPolicy: %s
  containers:
  - name: main
    image: busybox
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "echo done; exit %d"]
`, policy, code))
	}
	// finished runs pod name until it is in phase and checks how its
	// container terminated.
	finished := func(t *testing.T, name, policy string, code int32, phase corev1.PodPhase, reason string) *corev1.Pod {
		t.Helper()
		shared.ApplyPod(t, name, manifest(name, policy, int(code)))
		pod := framework.WaitPod(t, c, "default", name, string(phase), framework.PhaseIs(phase))
		term := pod.Status.ContainerStatuses[0].State.Terminated
		if term == nil || term.ExitCode != code || term.Reason != reason {
			t.Errorf("terminated = %+v", term)
		}
		return pod
	}
	t.Run("Never-fails", func(t *testing.T) {
		finished(t, "never-fails", "Never", 3, corev1.PodFailed, "Error")
	})
	t.Run("termination-messages", func(t *testing.T) {
		shared.ApplyPod(t, "term-msg", `apiVersion: v1
kind: Pod
metadata:
  name: term-msg
spec:
  restartPolicy: Never
  containers:
  - name: file
    image: busybox
    command: ["sh", "-c", "printf 'written by the app' > /dev/termination-log; exit 0"]
  - name: logs
    image: busybox
    terminationMessagePolicy: FallbackToLogsOnError
    command: ["sh", "-c", "echo first; echo last words; exit 2"]
`)
		pod := framework.WaitPod(t, c, "default", "term-msg", "Failed", framework.PhaseIs(corev1.PodFailed))
		for _, cs := range pod.Status.ContainerStatuses {
			want := map[string]string{"file": "written by the app", "logs": "first\nlast words\n"}[cs.Name]
			if got := cs.State.Terminated; got == nil || got.Message != want {
				t.Errorf("%s: terminated %+v, want message %q", cs.Name, got, want)
			}
		}
	})
	t.Run("OnFailure-succeeds", func(t *testing.T) {
		pod := finished(t, "onfailure-ok", "OnFailure", 0, corev1.PodSucceeded, "Completed")
		for _, cond := range pod.Status.Conditions {
			if cond.Type == corev1.PodReady && cond.Reason != "PodCompleted" {
				t.Errorf("Ready condition %+v, want reason PodCompleted", cond)
			}
		}
	})
	t.Run("Always-crashloops", func(t *testing.T) {
		shared.ApplyPod(t, "crashloop", manifest("crashloop", "Always", 1))
		pod := framework.WaitPod(t, c, "default", "crashloop", "in CrashLoopBackOff", func(p *corev1.Pod) bool {
			if len(p.Status.ContainerStatuses) == 0 {
				return false
			}
			cs := p.Status.ContainerStatuses[0]
			return cs.RestartCount >= 1 && cs.State.Waiting != nil && cs.State.Waiting.Reason == "CrashLoopBackOff"
		})
		cs := pod.Status.ContainerStatuses[0]
		if !strings.HasPrefix(cs.State.Waiting.Message, "back-off 10s restarting failed container=main pod=crashloop_default(") &&
			!strings.HasPrefix(cs.State.Waiting.Message, "back-off 20s restarting failed container=main pod=crashloop_default(") {
			t.Errorf("waiting message %q", cs.State.Waiting.Message)
		}
		if last := cs.LastTerminationState.Terminated; last == nil || last.ExitCode != 1 {
			t.Errorf("lastState = %+v", cs.LastTerminationState)
		}
		if pod.Status.Phase != corev1.PodRunning {
			t.Errorf("phase %s, want Running (kubelet's getPhase for restartPolicy Always)", pod.Status.Phase)
		}
		out, err := shared.Kubectl(t.Context(), framework.Newest(), "logs", "crashloop", "--previous")
		if err != nil || out != "done\n" {
			t.Errorf("logs --previous = %q, %v", out, err)
		}
	})
}

func TestBadInputsGetUpstreamReasons(t *testing.T) {
	t.Parallel()
	c := shared.Client(t)
	manifest := func(name, spec string) string {
		return podYAML(name, 1, "  containers:\n  - name: main\n"+spec+"\n")
	}
	for _, tc := range []struct {
		name, spec string
		reasons    []string
		message    string
	}{
		{"missing-image", "    image: nope.invalid/missing:1.0", []string{"ErrImagePull", "ImagePullBackOff"}, `"nope.invalid/missing:1.0"`},
		{"never-pull", "    image: not-imported:1.0\n    imagePullPolicy: Never", []string{"ErrImageNeverPull"}, `Container image "not-imported:1.0" is not present with pull policy of Never`},
		{"bad-command", "    image: busybox\n    command: [\"/no/such/binary\"]", []string{"RunContainerError", "CrashLoopBackOff", "CreateContainerError", "StartError"}, "/no/such/binary"},
		{"non-root", "    image: busybox\n    command: [\"true\"]\n    securityContext: {runAsNonRoot: true}", []string{"CreateContainerConfigError"}, "runAsNonRoot"},
		{"missing-configmap", "    image: busybox\n    envFrom: [{configMapRef: {name: no-such-cm}}]", []string{"CreateContainerConfigError"}, `configmap "no-such-cm" not found`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			shared.ApplyPod(t, tc.name, manifest(tc.name, tc.spec))
			pod := framework.WaitPod(t, c, "default", tc.name, "waiting with an upstream reason", func(p *corev1.Pod) bool {
				if len(p.Status.ContainerStatuses) == 0 {
					return false
				}
				cs := p.Status.ContainerStatuses[0]
				for _, r := range tc.reasons {
					if w := cs.State.Waiting; w != nil && w.Reason == r && strings.Contains(w.Message, tc.message) {
						return true
					}
					if x := cs.LastTerminationState.Terminated; x != nil && x.Reason == r && strings.Contains(x.Message, tc.message) {
						return true
					}
				}
				return false
			})
			if pod.Status.Phase != corev1.PodPending && pod.Status.Phase != corev1.PodRunning {
				t.Errorf("phase %s", pod.Status.Phase)
			}
		})
	}
	// The agent is still healthy: a good pod runs.
	shared.ApplyPod(t, "after-bad", sleeperPod("after-bad"))
	framework.WaitPod(t, c, "default", "after-bad", "Running", framework.Running)
}

func TestOOMKilled(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	c := shared.Client(t)
	// dd allocates its 64 MiB block and fills it from /dev/zero; the
	// container's memory cgroup allows 16 MiB, so the kernel's OOM killer
	// kills it (SIGKILL: exit code 137).
	shared.ApplyPod(t, "oom", podYAML("oom", 1, `  restartPolicy: Never
  containers:
  - name: main
    image: busybox
    command: ["dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"]
    resources:
      limits: {memory: 16Mi}
`))
	pod := framework.WaitPod(t, c, "default", "oom", "Failed", framework.PhaseIs(corev1.PodFailed))
	term := pod.Status.ContainerStatuses[0].State.Terminated
	if term == nil || term.Reason != "OOMKilled" || term.ExitCode != 137 {
		t.Errorf("terminated %+v, want reason OOMKilled, exit code 137", term)
	}
	for _, v := range framework.KubectlVersions {
		t.Run("kubectl-"+v, func(t *testing.T) {
			out, err := shared.Kubectl(ctx, v, "get", "pod", "oom", "--no-headers")
			if f := strings.Fields(out); err != nil || len(f) < 3 || f[1] != "0/1" || f[2] != "OOMKilled" {
				t.Errorf("kubectl get pod oom: %q, %v", out, err)
			}
			out, err = shared.Kubectl(ctx, v, "get", "pod", "oom", "-o", "jsonpath={.status.containerStatuses[0].state.terminated.reason}/{.status.containerStatuses[0].state.terminated.exitCode}")
			if err != nil || out != "OOMKilled/137" {
				t.Errorf("reason/exitCode = %q, %v", out, err)
			}
		})
	}
}

// A pod that ignores SIGTERM is SIGKILLed when its grace period is over,
// not before, and its deletion leaves nothing behind.
func TestDeleteLeavesNothing(t *testing.T) {
	t.Parallel()
	c := shared.Client(t)
	const grace = 3 * time.Second
	shared.ApplyPod(t, "ephemeral", podYAML("ephemeral", 3, `  containers:
  - name: main
    image: busybox
    command: ["sh", "-c", "trap '' TERM; while true; do sleep 1; done"]
`))
	pod := framework.WaitPod(t, c, "default", "ephemeral", "Running", framework.Running)
	uid := string(pod.UID)
	start := time.Now()
	if _, err := shared.Kubectl(t.Context(), framework.Newest(), "delete", "pod", "ephemeral", "--wait=true", "--timeout=60s"); err != nil {
		t.Fatalf("delete of a pod that ignores SIGTERM, after %s: %v", time.Since(start).Round(time.Millisecond), err)
	}
	took := time.Since(start)
	t.Logf("deleted in %s (grace %s, SIGTERM ignored)", took.Round(time.Millisecond), grace)
	// The lower bound is exact (the grace period starts after the delete
	// call); the upper one leaves room for a busy machine.
	if took < grace {
		t.Errorf("deleted in %s: the container was killed before its %s grace period ended", took, grace)
	}
	if took > grace+15*time.Second {
		t.Errorf("deleted in %s: no SIGKILL when the %s grace period ended", took, grace)
	}
	leftovers := checkNoPodLeftovers(shared.DataDir, uid)
	for _, l := range leftovers {
		t.Error(l)
	}
}

// A deleted pod that a finalizer keeps in the API (a Job's pods carry
// one) ends with kubelet's final status: a terminal phase and its
// container's exit code, not a status rebuilt from removed containers.
// Before the fix it stayed Pending/ContainerCreating and the conformance
// spec of Job's pod failure policy (DisruptionTarget) never finished.
func TestDeletedPodHeldByFinalizerIsTerminal(t *testing.T) {
	t.Parallel()
	c, ns := busyboxNamespace(t, "finalizer")
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "held", Finalizers: []string{"example.com/hold"}},
		Spec: corev1.PodSpec{
			TerminationGracePeriodSeconds: new(int64(1)),
			Containers:                    []corev1.Container{{Name: "main", Image: "busybox", Command: []string{"sleep", "1000"}}},
		},
	}
	if _, err := c.CoreV1().Pods(ns).Create(t.Context(), pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	running := framework.WaitPod(t, c, ns, "held", "Running", framework.Running)
	t.Cleanup(func() {
		c.CoreV1().Pods(ns).Patch(context.Background(), "held", types.JSONPatchType, []byte(`[{"op":"remove","path":"/metadata/finalizers"}]`), metav1.PatchOptions{})
	})
	if err := c.CoreV1().Pods(ns).Delete(t.Context(), "held", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	// sleep as PID 1 ignores SIGTERM: SIGKILL after the grace period.
	final := framework.WaitPod(t, c, ns, "held", "Failed with its container's exit code", func(p *corev1.Pod) bool {
		return p.Status.Phase == corev1.PodFailed && len(p.Status.ContainerStatuses) == 1 &&
			p.Status.ContainerStatuses[0].State.Terminated != nil
	})
	if term := final.Status.ContainerStatuses[0].State.Terminated; term.ExitCode != 137 || term.Reason != "Error" {
		t.Errorf("final state %+v, want exit code 137, reason Error", term)
	}
	if _, err := c.CoreV1().Pods(ns).Patch(t.Context(), "held", types.JSONPatchType, []byte(`[{"op":"remove","path":"/metadata/finalizers"}]`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	framework.WaitGone(t, c, ns, "held")
	for _, l := range checkNoPodLeftovers(shared.DataDir, string(running.UID)) {
		t.Error(l)
	}
}

// checkNoPodLeftovers lists what of pod uid is still on the host.
func checkNoPodLeftovers(dataDir, uid string) []string {
	var out []string
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	for _, line := range strings.Split(string(mounts), "\n") {
		if strings.Contains(line, uid) {
			out = append(out, "mount left: "+line)
		}
	}
	filepath.WalkDir(filepath.Join(dataDir, "node"), func(path string, d os.DirEntry, err error) error {
		if err == nil && strings.Contains(d.Name(), uid) {
			out = append(out, "file left: "+path)
		}
		return nil
	})
	for _, root := range []string{"/sys/fs/cgroup/memory/kubepods", "/sys/fs/cgroup/cpu/kubepods", "/sys/fs/cgroup/kubepods", "/sys/fs/cgroup/pids/kubepods"} {
		filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
			if err == nil && strings.Contains(d.Name(), uid) {
				out = append(out, "cgroup left: "+path)
			}
			return nil
		})
	}
	return out
}
