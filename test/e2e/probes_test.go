//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

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
