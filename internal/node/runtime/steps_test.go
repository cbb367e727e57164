package runtime

import (
	"slices"
	"sync"
	"testing"
	"time"
)

// recordedSteps is a Steps that keeps what it is told.
type recordedSteps struct {
	mu    sync.Mutex
	names []string
	total time.Duration
}

func (s *recordedSteps) Step(name string, d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.names = append(s.names, name)
	if d < 0 {
		s.names = append(s.names, "negative")
	}
	s.total += d
}

func TestCreateContainerSteps(t *testing.T) {
	e := newTestEnv(t)
	pod := e.pod(t, "steps")
	var steps recordedSteps
	start := time.Now()
	id, err := e.r.CreateContainer(WithSteps(e.ctx, &steps), e.container(pod, "c", "true"))
	if err != nil {
		t.Fatal(err)
	}
	wall := time.Since(start)
	t.Cleanup(func() { _ = e.r.RemoveContainer(e.ctx, id) })
	// The shim's times come from its own clock reads, so "runc" is what
	// the shim measured, not a remainder: all six parts are there, in
	// order, and they add up to no more than the call.
	want := []string{"bundle", "spec", "shimExec", "shim", "runc", "reply"}
	if !slices.Equal(steps.names, want) {
		t.Errorf("steps %v, want %v", steps.names, want)
	}
	if steps.total > wall {
		t.Errorf("steps add up to %s, more than the call's %s", steps.total, wall)
	}

	// Without Steps in the context nothing is reported, and a failed
	// create reports no runc part.
	var failed recordedSteps
	if _, err := e.r.CreateContainer(WithSteps(e.ctx, &failed), e.container(pod, "nope", "/nope")); err == nil {
		t.Fatal("create of a missing executable succeeded")
	}
	if slices.Contains(failed.names, "runc") {
		t.Errorf("failed create reported %v", failed.names)
	}
}
