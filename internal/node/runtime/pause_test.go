package runtime

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSharePID runs two containers in a SharePID pod: the second sees the
// first's process, and PID 1 is the pause process; a container of another
// pod sees neither. RemovePod removes the pause container.
func TestSharePID(t *testing.T) {
	e := newTestEnv(t)
	// The pause is the static shim binary: build it from this source, as
	// the one embedded may be older.
	bin := filepath.Join(t.TempDir(), "pocketkube-shim")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/pocketkube/pocketkube/cmd/pocketkube-shim")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build the shim: %v: %s", err, out)
	}
	e.r.pauseBin = bin
	shared := e.pod(t, "shared", func(p *PodConfig) { p.SharePID = true })
	other := e.pod(t, "other")
	e.run(t, e.container(shared, "sleeper", "sleep", "3600"))
	// PID 1's command line, and whether a sleep process is visible.
	look := `tr '\0' ' ' < /proc/1/cmdline; echo; pidof sleep >/dev/null && echo sees-sleep || echo no-sleep`
	for _, tt := range []struct {
		pod  PodConfig
		want string
	}{
		{shared, "/pause pause |sees-sleep"},
		{other, "sh -c " + look + " |no-sleep"},
	} {
		cfg := e.container(tt.pod, "look", "sh", "-c", look)
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
			t.Errorf("pod %s: %q, want %q", tt.pod.Name, strings.Join(got, "|"), tt.want)
		}
	}
	pause := filepath.Join(e.r.ociOf(pauseID(shared.UID)).root, pauseID(shared.UID))
	if _, err := os.Stat(pause); err != nil {
		t.Fatalf("pause container: %v", err)
	}
	if err := e.r.RemovePod(e.ctx, shared.UID); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(pause); !os.IsNotExist(err) {
		t.Errorf("pause container left after RemovePod: %v", err)
	}
	out, _ := exec.Command("pgrep", "-f", "^/pause pause$").Output()
	for deadline := time.Now().Add(5 * time.Second); len(out) > 0 && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		out, _ = exec.Command("pgrep", "-f", "^/pause pause$").Output()
	}
	if len(out) > 0 {
		t.Errorf("pause processes left: %s", out)
	}
}
