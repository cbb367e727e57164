package runtime

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestExecTimeout checks that an exec whose context ends is killed with
// every process it started, and that Exec returns at once: killing runc
// alone left them running in the container (issue 13: an exec probe
// `sleep 1000` with timeoutSeconds 1 left one more `sleep 1000` behind
// every period).
func TestExecTimeout(t *testing.T) {
	e := newTestEnv(t)
	pod := e.pod(t, "exec-timeout", func(p *PodConfig) { p.NetNS = "" })
	id := e.run(t, e.container(pod, "sleeper", "sleep", "1000"))
	e.waitState(t, id, StateRunning)
	tests := []struct {
		name    string
		cmd     []string
		timeout time.Duration
	}{
		{name: "sleep", cmd: []string{"sleep", "991"}, timeout: time.Second},
		{name: "tree", cmd: []string{"sh", "-c", "sleep 992 & sleep 993 & cat /dev/zero"}, timeout: time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(e.ctx, tt.timeout)
			defer cancel()
			start := time.Now()
			_, err := e.r.Exec(ctx, id, tt.cmd, Streams{Stdout: io.Discard, Stderr: io.Discard})
			took := time.Since(start)
			if limit := min(tt.timeout, 10*time.Second) + execWaitDelay + 3*time.Second; took > limit {
				t.Errorf("Exec returned after %s, want within %s", took.Round(time.Millisecond), limit)
			}
			t.Logf("Exec: %v after %s", err, took.Round(time.Millisecond))
			// SIGKILL takes effect asynchronously: allow a moment.
			var left []string
			for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
				if left = containerProcesses(t); len(left) == 0 {
					break
				}
			}
			for _, p := range left {
				t.Errorf("process %q still runs", p)
			}
		})
	}
}

// containerProcesses returns the command lines of the machine's
// processes that this test's commands could have started.
func containerProcesses(t *testing.T) []string {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || len(b) == 0 {
			continue
		}
		cmd := strings.ReplaceAll(strings.TrimSuffix(string(b), "\x00"), "\x00", " ")
		if strings.HasPrefix(cmd, "sleep 99") || cmd == "cat /dev/zero" || strings.HasPrefix(cmd, "sh -c sleep 99") {
			out = append(out, cmd)
		}
	}
	return out
}
