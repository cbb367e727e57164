package runtime

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// runcStatus reads runc's state files instead of running `runc state`; it
// must say what `runc state` says in every phase of a container's life.
func TestRuncStatusMatchesRuncState(t *testing.T) {
	e := newTestEnv(t)
	pod := e.pod(t, "state")
	same := func(t *testing.T, id, want string) {
		t.Helper()
		got, err := e.r.runcStatus(e.ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		var real runcState
		out, err := e.r.runc(e.ctx, "state", id)
		switch {
		case err != nil && strings.Contains(err.Error(), "does not exist"):
		case err != nil:
			t.Fatal(err)
		default:
			if err := json.Unmarshal(out, &real); err != nil {
				t.Fatal(err)
			}
		}
		if got != real || got.Status != want {
			t.Errorf("runcStatus = %+v, runc state = %+v, want status %q", got, real, want)
		}
	}
	id, err := e.r.CreateContainer(e.ctx, e.container(pod, "main", "sleep", "600"))
	if err != nil {
		t.Fatal(err)
	}
	same(t, id, "created")
	if err := e.r.StartContainer(e.ctx, id); err != nil {
		t.Fatal(err)
	}
	same(t, id, "running")
	if err := e.r.StopContainer(e.ctx, id, time.Second); err != nil {
		t.Fatal(err)
	}
	same(t, id, "stopped")
	if err := e.r.RemoveContainer(e.ctx, id); err != nil {
		t.Fatal(err)
	}
	same(t, id, "")
}

func TestProcStat(t *testing.T) {
	state, start, err := procStat(os.Getpid())
	if err != nil || state != 'R' && state != 'S' || start == 0 {
		t.Errorf("procStat(self) = %c %d %v", state, start, err)
	}
	// A command name with spaces and parentheses does not shift the fields.
	dir := t.TempDir()
	exe := filepath.Join(dir, "a (b) c")
	if err := os.Symlink("/bin/sleep", exe); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	if b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", cmd.Process.Pid)); string(b) != "a (b) c\n" {
		t.Fatalf("comm = %q", b)
	}
	state, start, err = procStat(cmd.Process.Pid)
	if err != nil || state != 'S' && state != 'R' || start == 0 {
		t.Errorf("procStat(%q) = %c %d %v", exe, state, start, err)
	}
	if _, _, err := procStat(0); err == nil {
		t.Error("procStat(0) succeeded")
	}
}

// Privileged containers get the host's devices, as containerd's
// oci.HostDevices lists them.
func TestHostDevices(t *testing.T) {
	devs, err := hostDevices()
	if err != nil {
		t.Fatal(err)
	}
	var null bool
	for _, d := range devs {
		if strings.HasPrefix(d.Path, "/dev/pts/") || strings.HasPrefix(d.Path, "/dev/shm/") || d.Path == "/dev/console" {
			t.Errorf("%s listed", d.Path)
		}
		if d.Path == "/dev/null" {
			null = d.Type == "c" && d.Major == 1 && d.Minor == 3 && d.FileMode != nil && *d.FileMode == 0o666
		}
	}
	if !null {
		t.Errorf("/dev/null (c 1 3, 0666) not in %d devices", len(devs))
	}
}
