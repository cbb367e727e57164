package runtime

import (
	"fmt"
	"maps"
	"testing"
	"time"
)

// RunningContainers answers from the runtime's records; it must list what
// ListContainers, which asks runc's state, reports as running, in every
// phase of a container's life.
func TestRunningContainersMatchesListContainers(t *testing.T) {
	e := newTestEnv(t)
	pod := e.pod(t, "running")
	other := e.pod(t, "other")
	// fromList is the listing the stats summary used before: the
	// containers ListContainers reports as running.
	fromList := func(t *testing.T) map[string]map[string]string {
		t.Helper()
		cs, err := e.r.ListContainers(e.ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]map[string]string{}
		for _, c := range cs {
			if c.State != StateRunning || c.PodUID == "" {
				continue
			}
			if out[c.PodUID] == nil {
				out[c.PodUID] = map[string]string{}
			}
			out[c.PodUID][c.Name] = c.ID
		}
		return out
	}
	check := func(t *testing.T, want map[string]map[string]string) {
		t.Helper()
		got, err := e.r.RunningContainers()
		if err != nil {
			t.Fatal(err)
		}
		list := fromList(t)
		if !maps.EqualFunc(got, list, maps.Equal) {
			t.Errorf("RunningContainers = %v, ListContainers' running ones = %v", got, list)
		}
		if !maps.EqualFunc(got, want, maps.Equal) {
			t.Errorf("RunningContainers = %v, want %v", got, want)
		}
	}

	t.Run("none", func(t *testing.T) { check(t, map[string]map[string]string{}) })

	created, err := e.r.CreateContainer(e.ctx, e.container(pod, "created", "sleep", "600"))
	if err != nil {
		t.Fatal(err)
	}
	t.Run("created, not started", func(t *testing.T) { check(t, map[string]map[string]string{}) })

	main := e.run(t, e.container(pod, "main", "sleep", "600"))
	e.waitState(t, main, StateRunning)
	side := e.run(t, e.container(other, "side", "sleep", "600"))
	e.waitState(t, side, StateRunning)
	t.Run("running in two pods", func(t *testing.T) {
		check(t, map[string]map[string]string{pod.UID: {"main": main}, other.UID: {"side": side}})
	})

	done := e.run(t, e.container(pod, "done", "true"))
	e.waitState(t, done, StateExited)
	t.Run("exited", func(t *testing.T) {
		check(t, map[string]map[string]string{pod.UID: {"main": main}, other.UID: {"side": side}})
	})

	if err := e.r.StopContainer(e.ctx, side, time.Second); err != nil {
		t.Fatal(err)
	}
	t.Run("stopped", func(t *testing.T) { check(t, map[string]map[string]string{pod.UID: {"main": main}}) })

	for _, id := range []string{side, done, created} {
		if err := e.r.RemoveContainer(e.ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("removed", func(t *testing.T) { check(t, map[string]map[string]string{pod.UID: {"main": main}}) })

	// A restart: the same name again, the old one exited.
	if err := e.r.StopContainer(e.ctx, main, time.Second); err != nil {
		t.Fatal(err)
	}
	again := e.run(t, e.container(pod, "main", "sleep", "600"))
	e.waitState(t, again, StateRunning)
	t.Run("restarted", func(t *testing.T) { check(t, map[string]map[string]string{pod.UID: {"main": again}}) })
}

// BenchmarkRunningContainers lists 20 running containers (in 10 pods) as
// the stats summary did before (ListContainers, then its running ones)
// and as it does now (RunningContainers).
func BenchmarkRunningContainers(b *testing.B) {
	e := newTestEnv(b)
	for i := range 10 {
		pod := e.pod(b, fmt.Sprintf("p%d", i))
		for _, name := range []string{"a", "b"} {
			e.waitState(b, e.run(b, e.container(pod, name, "sleep", "600")), StateRunning)
		}
	}
	b.Run("ListContainers", func(b *testing.B) {
		for b.Loop() {
			cs, err := e.r.ListContainers(e.ctx, "")
			if err != nil || len(cs) != 20 {
				b.Fatalf("ListContainers: %d, %v", len(cs), err)
			}
		}
	})
	b.Run("RunningContainers", func(b *testing.B) {
		for b.Loop() {
			m, err := e.r.RunningContainers()
			if err != nil || len(m) != 10 {
				b.Fatalf("RunningContainers: %d pods, %v", len(m), err)
			}
		}
	})
}
