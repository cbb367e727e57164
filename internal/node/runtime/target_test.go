package runtime

import (
	"errors"
	"os"
	"strings"
	"testing"
)

// TestTargetPIDNamespace runs a container with TargetContainerID (an
// ephemeral container with targetContainerName): it sees the target's
// processes, and the target's PID 1; one without sees neither. A target
// that does not run is refused.
func TestTargetPIDNamespace(t *testing.T) {
	e := newTestEnv(t)
	pod := e.pod(t, "target")
	target := e.run(t, e.container(pod, "app", "sleep", "3600"))
	look := `tr '\0' ' ' < /proc/1/cmdline; echo; pidof sleep >/dev/null && echo sees-sleep || echo no-sleep`
	for _, tt := range []struct {
		name, target, want string
	}{
		{"debugger", target, "sleep 3600 |sees-sleep"},
		{"alone", "", "sh -c " + look + " |no-sleep"},
	} {
		cfg := e.container(pod, tt.name, "sh", "-c", look)
		cfg.TargetContainerID = tt.target
		id := e.run(t, cfg)
		e.waitState(t, id, StateExited)
		b, _ := os.ReadFile(cfg.LogPath)
		var got []string
		for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			if _, text, ok := strings.Cut(l, " stdout F "); ok {
				got = append(got, text)
			}
		}
		if strings.Join(got, "|") != tt.want {
			t.Errorf("%s: %q, want %q", tt.name, strings.Join(got, "|"), tt.want)
		}
	}
	if err := e.r.StopContainer(e.ctx, target, 0); err != nil {
		t.Fatal(err)
	}
	cfg := e.container(pod, "late", "true")
	cfg.TargetContainerID = target
	_, err := e.r.CreateContainer(e.ctx, cfg)
	if err == nil || !strings.Contains(err.Error(), "target container app is not running") {
		t.Errorf("create with a stopped target: %v", err)
	}
	cfg.TargetContainerID = "unknown"
	if _, err := e.r.CreateContainer(e.ctx, cfg); !errors.Is(err, ErrNotFound) {
		t.Errorf("create with an unknown target: %v, want ErrNotFound", err)
	}
}
