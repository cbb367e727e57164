package runtime

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// waitStandby waits until the runtime has a shim waiting and returns its
// PID (bounded, not a timing assert).
func (e *testEnv) waitStandby(t *testing.T) int {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		e.r.standby.mu.Lock()
		s := e.r.standby.waiting
		e.r.standby.mu.Unlock()
		if s != nil {
			return s.cmd.Process.Pid
		}
		if time.Now().After(deadline) {
			t.Fatal("no shim waiting")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// cmdline is /proc/PID/cmdline with spaces for NULs, as pgrep -f and ps
// show it.
func cmdline(t *testing.T, pid int) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		t.Fatal(err)
	}
	return strings.ReplaceAll(string(b), "\x00", " ")
}

// waitGone waits until no process has pid (bounded).
func waitGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for unix.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			t.Fatalf("process %d still there", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A container's creation takes the shim started ahead, whose output goes
// to the bundle's shim.log as a shim started for the bundle's would; the
// next one is then started, and Close lets it go.
func TestStandbyShim(t *testing.T) {
	e := newTestEnv(t)
	p := e.pod(t, "standby")
	waiting := e.waitStandby(t)
	// Its command line names no bundle (pgrep -f "shim.*--bundle DIR"
	// finds the shims of containers) until it has one.
	if c := cmdline(t, waiting); strings.Contains(c, "--bundle "+e.cfg.StateDir) {
		t.Errorf("waiting shim's command line %q names a bundle", c)
	}
	id := e.run(t, e.container(p, "echo", "sh", "-c", "echo hi; sleep 3600"))
	if got := e.shimPID(t, id); got != waiting {
		t.Errorf("container's shim is %d, want the waiting shim %d", got, waiting)
	}
	if c, want := cmdline(t, waiting), "--bundle "+e.r.containerDir(id); !strings.Contains(c, want) {
		t.Errorf("claimed shim's command line %q, want it to hold %q", c, want)
	}
	st := e.waitState(t, id, StateRunning)
	if st.Pid <= 0 {
		t.Fatalf("running container without a pid: %+v", st)
	}
	next := e.waitStandby(t)
	if next == waiting {
		t.Fatalf("the claimed shim %d is still the waiting one", waiting)
	}

	// The claimed shim supervises as any other: output, exit.
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, _ := os.ReadFile(e.container(p, "echo").LogPath)
		if strings.Contains(string(b), "stdout F hi") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("container log %q, want hi", b)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := e.r.StopContainer(e.ctx, id, time.Second); err != nil {
		t.Fatal(err)
	}
	e.waitExitReported(t, id)
	waitGone(t, waiting)
	if _, err := os.Stat(filepath.Join(e.r.containerDir(id), "shim.log")); err != nil {
		t.Errorf("the claimed shim has no log in its bundle: %v", err)
	}

	if err := e.r.Close(); err != nil {
		t.Fatal(err)
	}
	waitGone(t, next)
}

// A waiting shim that died is not given the container: a new shim is.
func TestStandbyShimDied(t *testing.T) {
	e := newTestEnv(t)
	p := e.pod(t, "standby-died")
	waiting := e.waitStandby(t)
	if err := unix.Kill(waiting, unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitGone(t, waiting)
	id := e.run(t, e.container(p, "sleeper", "sleep", "3600"))
	if got := e.shimPID(t, id); got == waiting {
		t.Errorf("container's shim is the killed one, %d", got)
	}
	e.waitState(t, id, StateRunning)
}

// A shim binary that cannot wait for its bundle (one without --standby)
// is not kept waiting, and not started ahead again: each container's shim
// starts with it.
func TestStandbyShimRefused(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	wrapper := filepath.Join(t.TempDir(), "shim")
	script := "#!/bin/sh\ncase \"$1\" in --standby) echo 'flag provided but not defined: -standby' >&2; exit 2;; esac\nexec " + exe + " \"$@\"\n"
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	e := newTestEnv(t, func(c *Config) { c.ShimPath = wrapper })
	p := e.pod(t, "standby-refused")
	deadline := time.Now().Add(30 * time.Second)
	for {
		e.r.standby.mu.Lock()
		closed, waiting := e.r.standby.closed, e.r.standby.waiting
		e.r.standby.mu.Unlock()
		if waiting != nil {
			t.Fatal("a shim that refused --standby is waiting")
		}
		if closed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the refused shim was not given up")
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, name := range []string{"one", "two"} {
		id := e.run(t, e.container(p, name, "sleep", "3600"))
		e.waitState(t, id, StateRunning)
	}
}
