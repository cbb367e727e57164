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

	"github.com/pocketkube/pocketkube/internal/node/runtime/shim"
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
		out, err := e.r.runc(e.ctx, id, "state", id)
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
	// Start returns once the child is forked; its name is the command's
	// only after its execve, which may come a moment later.
	var comm []byte
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		comm, _ = os.ReadFile(fmt.Sprintf("/proc/%d/comm", cmd.Process.Pid))
		if string(comm) == "a (b) c\n" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("comm = %q", comm)
		}
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

// A container whose init has exited but whose shim has not reaped it and
// written its exit file yet (the init is a zombie) still runs, as
// containerd reports a task running until it has handled the exit; once
// the exit file is there it has exited. Before, it read as Unknown, which
// the agent showed as an init container waiting to be created again
// (upstream's InitContainer conformance spec saw it).
func TestContainerStatusBetweenExitAndExitFile(t *testing.T) {
	e := newTestEnv(t)
	id := "zombie-" + randHex(4)
	meta := containerMeta{ID: id, PodUID: "uid-zombie", Name: "init", CreatedAt: time.Now()}
	if err := os.MkdirAll(e.r.containerDir(id), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := writeJSONAtomic(filepath.Join(e.r.containerDir(id), "meta.json"), meta); err != nil {
		t.Fatal(err)
	}
	// An exited process nobody has waited for yet: what a container's
	// init is between its exit and its shim's wait.
	cmd := exec.Command("true")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Wait() })
	var start uint64
	deadline := time.Now().Add(10 * time.Second)
	for {
		state, s, err := procStat(cmd.Process.Pid)
		if err != nil {
			t.Fatal(err)
		}
		if state == 'Z' {
			start = s
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("process %d never became a zombie (state %c)", cmd.Process.Pid, state)
		}
		time.Sleep(5 * time.Millisecond)
	}
	runcDir := filepath.Join(e.r.runcRoot(), id)
	if err := os.MkdirAll(runcDir, 0o700); err != nil {
		t.Fatal(err)
	}
	state := fmt.Sprintf(`{"init_process_pid":%d,"init_process_start":%d}`, cmd.Process.Pid, start)
	if err := os.WriteFile(filepath.Join(runcDir, "state.json"), []byte(state), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = os.RemoveAll(runcDir)
		_ = os.RemoveAll(e.r.containerDir(id))
		_ = os.Remove(e.r.exitFile(id))
	})

	cs, err := e.r.ContainerStatus(e.ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if cs.State != StateRunning {
		t.Errorf("exited, no exit file yet: state %s, want %s", cs.State, StateRunning)
	}
	if err := writeJSONAtomic(e.r.exitFile(id), shim.ExitStatus{FinishedAt: time.Now().UTC()}); err != nil {
		t.Fatal(err)
	}
	if cs, err = e.r.ContainerStatus(e.ctx, id); err != nil {
		t.Fatal(err)
	}
	if cs.State != StateExited || cs.Reason != "Completed" {
		t.Errorf("after the exit file: state %s reason %q, want %s Completed", cs.State, cs.Reason, StateExited)
	}
}
