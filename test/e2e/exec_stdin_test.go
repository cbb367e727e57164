//go:build e2e

package e2e

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pocketkube/pocketkube/test/framework"
)

// TestExecStdinReturnsWhenCommandExits runs `kubectl exec -i` with a stdin
// that never closes: as with containerd, the session ends when the command
// exits, with its exit code, not when stdin ends (issue 13).
func TestExecStdinReturnsWhenCommandExits(t *testing.T) {
	c, ns := busyboxNamespace(t, "exec-stdin-")
	framework.RunPods(t, c, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "sleeper", Namespace: ns},
		Spec: corev1.PodSpec{
			TerminationGracePeriodSeconds: new(int64),
			Containers:                    []corev1.Container{{Name: "main", Image: "busybox", Command: []string{"sleep", "3600"}}},
		},
	})
	forEachKubectl(t, func(t *testing.T, v string) {
		for _, tc := range []struct {
			name string
			cmd  []string
			code int
		}{
			{name: "true", cmd: []string{"true"}, code: 0},
			{name: "exit 3", cmd: []string{"sh", "-c", "exit 3"}, code: 3},
		} {
			t.Run(tc.name, func(t *testing.T) {
				// The write end stays open until the test ends, so kubectl
				// never sees the end of its stdin.
				r, w, err := os.Pipe()
				if err != nil {
					t.Fatal(err)
				}
				defer w.Close()
				// A bound on returning at all, not on speed.
				ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
				defer cancel()
				args := append([]string{"--kubeconfig", shared.Kubeconfig, "-n", ns, "exec", "-i", "sleeper", "-c", "main", "--"}, tc.cmd...)
				cmd := exec.CommandContext(ctx, framework.Kubectl(v), args...)
				cmd.Stdin = r
				out, err := cmd.CombinedOutput()
				r.Close()
				if ctx.Err() != nil {
					t.Fatalf("kubectl exec -i %v did not return within 20s of a stdin that stays open; output: %s", tc.cmd, out)
				}
				code := 0
				if err != nil {
					var exitErr *exec.ExitError
					if !errors.As(err, &exitErr) {
						t.Fatalf("kubectl exec -i %v: %v; output: %s", tc.cmd, err, out)
					}
					code = exitErr.ExitCode()
				}
				if code != tc.code {
					t.Fatalf("kubectl exec -i %v exited %d, want %d; output: %s", tc.cmd, code, tc.code, out)
				}
			})
		}
	})
}
