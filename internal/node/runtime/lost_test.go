package runtime

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// shimPID returns the PID startShim recorded for the container's shim.
func (e *testEnv) shimPID(t *testing.T, id string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(e.r.containerDir(id), shimPIDFile))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.Fields(string(b))[0])
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

// waitExitReported waits until OnExit reported the container's exit
// (bounded, not a timing assert).
func (e *testEnv) waitExitReported(t *testing.T, id string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for e.exitCount(id) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no exit of container %s reported", id)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A container whose shim was SIGKILLed with it exits, for the runtime, as
// containerd reports a container whose task is gone: 255, Unknown; its
// exit is reported without anyone asking for its status.
func TestLostShimAndContainerExitUnknown(t *testing.T) {
	e := newTestEnv(t)
	p := e.pod(t, "lost")
	id := e.run(t, e.container(p, "sleeper", "sleep", "3600"))
	st := e.waitState(t, id, StateRunning)
	for _, pid := range []int{e.shimPID(t, id), st.Pid} {
		if err := unix.Kill(pid, unix.SIGKILL); err != nil {
			t.Fatal(err)
		}
	}
	e.waitExitReported(t, id)
	st = e.waitState(t, id, StateExited)
	if st.ExitCode != 255 || st.Reason != "Unknown" {
		t.Errorf("exit = %d %q, want 255 Unknown", st.ExitCode, st.Reason)
	}
	if err := e.r.RemoveContainer(e.ctx, id); err != nil {
		t.Errorf("RemoveContainer: %v", err)
	}
}

// A container whose shim alone was killed is killed too, as containerd's
// cleanup after a dead shim does: its output would go nowhere.
func TestLostShimKillsItsContainer(t *testing.T) {
	e := newTestEnv(t)
	p := e.pod(t, "orphan")
	id := e.run(t, e.container(p, "sleeper", "sleep", "3600"))
	st := e.waitState(t, id, StateRunning)
	if err := unix.Kill(e.shimPID(t, id), unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	e.waitExitReported(t, id)
	st2 := e.waitState(t, id, StateExited)
	if st2.ExitCode != 137 || st2.Reason != "Error" {
		t.Errorf("exit = %d %q, want 137 Error", st2.ExitCode, st2.Reason)
	}
	if state, _, err := procStat(st.Pid); err == nil && state != 'Z' {
		t.Errorf("the container's init %d still runs (%c)", st.Pid, state)
	}
}

// PodReady says whether the sandbox's namespaces are still there, as
// after a reboot they are not; RunPod makes them again.
func TestPodReady(t *testing.T) {
	e := newTestEnv(t)
	if _, err := e.r.PodReady(e.ctx, "uid-none"); !errors.Is(err, ErrNotFound) {
		t.Errorf("PodReady of an unknown pod: %v, want ErrNotFound", err)
	}
	ns := netns(t)
	p := e.pod(t, "ready", func(p *PodConfig) { p.NetNS = ns })
	ready, err := e.r.PodReady(e.ctx, p.UID)
	if err != nil || !ready {
		t.Fatalf("PodReady of a new pod = %v, %v", ready, err)
	}
	ipc := filepath.Join(e.r.podDir(p.UID), "ns", "ipc")
	if err := unix.Unmount(ipc, unix.MNT_DETACH); err != nil {
		t.Fatal(err)
	}
	if ready, err := e.r.PodReady(e.ctx, p.UID); err != nil || ready {
		t.Errorf("PodReady without its IPC namespace = %v, %v", ready, err)
	}
	if err := e.r.RunPod(e.ctx, p); err != nil {
		t.Fatal(err)
	}
	if ready, err := e.r.PodReady(e.ctx, p.UID); err != nil || !ready {
		t.Errorf("PodReady after RunPod = %v, %v", ready, err)
	}
	if err := unix.Unmount(ns, unix.MNT_DETACH); err != nil {
		t.Fatal(err)
	}
	if ready, err := e.r.PodReady(e.ctx, p.UID); err != nil || ready {
		t.Errorf("PodReady without its network namespace = %v, %v", ready, err)
	}
}
