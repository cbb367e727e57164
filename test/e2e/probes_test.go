//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pocketkube/pocketkube/test/framework"
)

func condition(p *corev1.Pod, t corev1.PodConditionType) corev1.ConditionStatus {
	for _, c := range p.Status.Conditions {
		if c.Type == t {
			return c.Status
		}
	}
	return ""
}

// Readiness follows an exec probe; a failing httpGet liveness probe
// restarts the container; a preStop hook runs before the stop.
func TestProbesAndHooks(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	c := shared.Client(t)
	hostDir := t.TempDir()
	shared.ApplyPod(t, "probed", podYAML("probed", 5, fmt.Sprintf(`  containers:
  - name: web
    image: busybox
    command: ["sh", "-c", "mkdir -p /www && echo ok > /www/healthz && exec httpd -f -p 8080 -h /www"]
    readinessProbe:
      exec: {command: ["cat", "/tmp/ready"]}
      periodSeconds: 1
    livenessProbe:
      httpGet: {path: /healthz, port: 8080}
      periodSeconds: 1
      failureThreshold: 2
    lifecycle:
      postStart:
        exec: {command: ["sh", "-c", "echo started > /host/poststart"]}
      preStop:
        exec: {command: ["sh", "-c", "echo stopping > /host/prestop"]}
    volumeMounts: [{name: host, mountPath: /host}]
  volumes:
  - name: host
    hostPath: {path: %s}
`, hostDir)))
	pod := framework.WaitPod(t, c, "default", "probed", "Running, not Ready", func(p *corev1.Pod) bool {
		return p.Status.Phase == corev1.PodRunning && condition(p, corev1.ContainersReady) == corev1.ConditionFalse
	})
	if pod.Status.ContainerStatuses[0].Ready {
		t.Error("ready before the readiness probe passed")
	}
	if _, err := shared.Kubectl(ctx, framework.Newest(), "exec", "probed", "--", "touch", "/tmp/ready"); err != nil {
		t.Fatal(err)
	}
	framework.WaitPod(t, c, "default", "probed", "Ready", framework.Running)
	if b, err := os.ReadFile(filepath.Join(hostDir, "poststart")); err != nil || string(b) != "started\n" {
		t.Errorf("postStart hook: %q, %v", b, err)
	}

	if _, err := shared.Kubectl(ctx, framework.Newest(), "exec", "probed", "--", "rm", "/www/healthz"); err != nil {
		t.Fatal(err)
	}
	pod = framework.WaitPod(t, c, "default", "probed", "restarted by its liveness probe", func(p *corev1.Pod) bool {
		return len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].RestartCount >= 1
	})
	// Events are written asynchronously: poll until both are there.
	// The failure is the 404 on an idle machine; on this suite's runs the
	// probe has also been seen timing out (an open question, see the
	// closing note of 2026-12-04), so the Unhealthy event is matched up
	// to its cause and the Killing event exactly.
	probeEvents := []string{"Unhealthy: Liveness probe failed: ", "Killing: Container web failed liveness probe, will be restarted"}
	var all string
	_, err := framework.PollEvents(ctx, c, "default", "involvedObject.name=probed", 15*time.Second, func(events []corev1.Event) bool {
		var seen []string
		for _, e := range events {
			seen = append(seen, e.Reason+": "+e.Message)
		}
		all = strings.Join(seen, "\n")
		for _, want := range probeEvents {
			if !strings.Contains(all, want) {
				return false
			}
		}
		return true
	})
	if err != nil {
		t.Errorf("events %q not all in:\n%s", probeEvents, all)
	}
	// The liveness kill ran preStop too.
	if b, err := os.ReadFile(filepath.Join(hostDir, "prestop")); err != nil || string(b) != "stopping\n" {
		t.Errorf("preStop hook: %q, %v", b, err)
	}
	_, err = framework.WaitPodIn(ctx, c, "default", "probed", framework.PodTimeout, func(p *corev1.Pod) (bool, error) {
		return p.Status.ContainerStatuses[0].State.Running != nil, nil
	})
	if err != nil {
		t.Errorf("restarted container never ran: %v", err)
	}
}

// TestExecProbeLimits (issue 13): an exec probe that writes without end
// (`cat /dev/zero`) or never returns (`sleep 1000`) runs inside the
// control-plane process's node agent. Each must time out after its
// timeoutSeconds with kubelet's message, have its processes killed in
// the container, and leave pocketkube's memory alone: what is read of
// its output is capped (containerd keeps 16 MiB, the prober 10 KiB).
// Before the fix the first grew pocketkube by up to gigabytes per probe
// and the second left a `sleep 1000` running every period.
func TestExecProbeLimits(t *testing.T) {
	ctx := t.Context()
	c, ns := busyboxNamespace(t, "probe-limits-")
	pid := shared.Pid()
	base := vmRSS(t, pid)

	probed := func(name string, cmd ...string) *corev1.Pod {
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec: corev1.PodSpec{
				TerminationGracePeriodSeconds: new(int64),
				Containers: []corev1.Container{{
					Name: "c", Image: "busybox", Command: []string{"sleep", "3600"},
					LivenessProbe: &corev1.Probe{
						ProbeHandler:   corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: cmd}},
						TimeoutSeconds: 1, PeriodSeconds: 2,
						// Never restarted while the test watches: a
						// restart would kill what the probe left behind.
						FailureThreshold: 1000,
					},
				}},
			},
		}
	}
	pods := []*corev1.Pod{probed("zero", "cat", "/dev/zero"), probed("sleeper", "sleep", "1000")}
	// Delete them as soon as the memory check fails: the old product
	// grows by gigabytes a second while they run.
	stop := func() {
		for _, p := range pods {
			c.CoreV1().Pods(ns).Delete(context.Background(), p.Name, metav1.DeleteOptions{GracePeriodSeconds: new(int64)})
		}
	}
	defer stop()
	for _, p := range pods {
		if _, err := c.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create pod %s: %v", p.Name, err)
		}
	}

	// Watch pocketkube's RSS from now on, and how long each probe
	// process lives (one seen over more than timeoutSeconds plus slack
	// was left behind), for 20 s once both pods run.
	firstSeen := map[int]time.Time{}
	var maxRSS int64
	var deadline, lastGet time.Time
	for start := time.Now(); deadline.IsZero() || time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		rss := vmRSS(t, pid)
		maxRSS = max(maxRSS, rss)
		if rss-base > 64<<20 {
			stop()
			t.Fatalf("pocketkube's RSS grew from %d MiB to %d MiB while exec probes ran", base>>20, rss>>20)
		}
		now := time.Now()
		for p, what := range probeProcesses(t) {
			if _, ok := firstSeen[p]; !ok {
				firstSeen[p] = now
			}
			if age := now.Sub(firstSeen[p]); age > 4*time.Second {
				stop()
				t.Fatalf("probe process %d (%s) still runs %s after its 1 s timeout", p, what, age.Round(time.Second))
			}
		}
		if deadline.IsZero() && now.Sub(lastGet) > 500*time.Millisecond {
			lastGet = now
			running := 0
			for _, p := range pods {
				if q, err := c.CoreV1().Pods(ns).Get(ctx, p.Name, metav1.GetOptions{}); err == nil && q.Status.Phase == corev1.PodRunning {
					running++
				}
			}
			if running == len(pods) {
				deadline = now.Add(20 * time.Second)
			} else if now.Sub(start) > framework.PodTimeout {
				t.Fatalf("pods not running after %s", framework.PodTimeout)
			}
		}
	}
	t.Logf("pocketkube RSS %d MiB before, at most %d MiB while the probes ran; %d probe processes seen", base>>20, maxRSS>>20, len(firstSeen))

	// kubelet's message for a timed-out exec probe (k8s.io/cri-client
	// ExecSync), on both pods, more than once: the workers go on.
	for _, want := range []struct{ pod, msg string }{
		{"zero", `Liveness probe failed: command timed out: "cat /dev/zero" timed out after 1s`},
		{"sleeper", `Liveness probe failed: command timed out: "sleep 1000" timed out after 1s`},
	} {
		var got []string
		_, err := framework.PollEvents(ctx, c, ns, "involvedObject.name="+want.pod+",reason=Unhealthy", 15*time.Second, func(events []corev1.Event) bool {
			got = got[:0]
			n := int32(0)
			for _, e := range events {
				got = append(got, fmt.Sprintf("%s (x%d)", e.Message, e.Count))
				if e.Message == want.msg {
					n += max(e.Count, 1)
				}
			}
			return n >= 2
		})
		if err != nil {
			t.Errorf("pod %s: no event %q at least twice; Unhealthy events: %q", want.pod, want.msg, got)
		}
	}
}

// vmRSS is the resident set size of process pid, in bytes.
func vmRSS(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("pocketkube's status: %v", err)
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				t.Fatalf("parse VmRSS %q: %v", line, err)
			}
			return kb << 10
		}
	}
	t.Fatalf("no VmRSS in /proc/%d/status", pid)
	return 0
}

// probeProcesses returns the processes of the machine running this
// test's probe commands, by pid.
func probeProcesses(t *testing.T) map[int]string {
	t.Helper()
	out := map[int]string{}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		for _, cmd := range []string{"cat\x00/dev/zero\x00", "sleep\x001000\x00"} {
			if bytes.Equal(b, []byte(cmd)) {
				out[p] = strings.ReplaceAll(strings.TrimSuffix(cmd, "\x00"), "\x00", " ")
			}
		}
	}
	return out
}
