package runtime

import (
	"strings"
	"syscall"
	"testing"
)

// StartContainer opens runc's exec FIFO itself; what `runc start` says
// of a container that cannot start, it says too, and it does not wait
// for an init that died.
func TestStartContainerWithoutRunc(t *testing.T) {
	e := newTestEnv(t)
	pod := e.pod(t, "start")

	t.Run("started: runc sees it running, the FIFO is gone", func(t *testing.T) {
		id := e.run(t, e.container(pod, "sleep", "sleep", "60"))
		st, err := e.r.runcStatus(e.ctx, id)
		if err != nil || st.Status != "running" {
			t.Errorf("runc status %+v, %v; want running", st, err)
		}
		out, err := e.r.runc(e.ctx, id, "state", id)
		if err != nil || !strings.Contains(string(out), `"status": "running"`) {
			t.Errorf("runc state: %s %v", out, err)
		}
		if err := e.r.StartContainer(e.ctx, id); err == nil {
			t.Error("second start succeeded")
		}
	})
	t.Run("init killed before start", func(t *testing.T) {
		id, err := e.r.CreateContainer(e.ctx, e.container(pod, "killed", "true"))
		if err != nil {
			t.Fatal(err)
		}
		st, err := e.r.runcStatus(e.ctx, id)
		if err != nil || st.Status != "created" {
			t.Fatalf("runc status %+v, %v; want created", st, err)
		}
		if err := syscall.Kill(st.Pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		e.waitState(t, id, StateExited)
		if err := e.r.StartContainer(e.ctx, id); err == nil {
			t.Error("start of a container whose init was killed succeeded")
		}
	})
}
