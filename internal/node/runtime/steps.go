package runtime

import (
	"context"
	"time"
)

// Steps receives how long the parts of a runtime call took, for a caller
// that traces its own steps (the node agent's "Pod start steps" at -v=2).
// CreateContainer reports, in this order: "bundle" (the bundle
// directories, meta.json, the overlay mount and the termination log),
// "spec" (config.json, the log directory, shim.json), "shimExec" (the
// fork and exec of the shim), "shim" (from there until the shim runs
// `runc create`: its start-up, config, log and attach socket), "runc"
// (`runc create` as the shim timed it) and "reply" (from runc's exit
// until the shim's "ok" reached the runtime).
type Steps interface {
	Step(name string, d time.Duration)
}

type stepsKey struct{}

// WithSteps returns a copy of ctx that makes the runtime calls it is
// given report their parts to s.
func WithSteps(ctx context.Context, s Steps) context.Context {
	return context.WithValue(ctx, stepsKey{}, s)
}

// stepTimer reports the parts of one call to the Steps of its context,
// each as the time since the previous one; without Steps it does nothing.
type stepTimer struct {
	steps Steps
	last  time.Time
}

func newStepTimer(ctx context.Context) *stepTimer {
	s, _ := ctx.Value(stepsKey{}).(Steps)
	if s == nil {
		return &stepTimer{}
	}
	return &stepTimer{steps: s, last: time.Now()}
}

// step reports the time since the previous step as name's.
func (t *stepTimer) step(name string) {
	if t.steps == nil {
		return
	}
	now := time.Now()
	t.steps.Step(name, now.Sub(t.last))
	t.last = now
}

// until reports the time from the previous step until at as name's, and
// makes at the previous step: for times another process measured (on the
// wall clock, which every process shares). A time before the previous
// step counts as no time.
func (t *stepTimer) until(name string, at time.Time) {
	if t.steps == nil || at.IsZero() {
		return
	}
	t.steps.Step(name, max(at.Sub(t.last), 0))
	if at.After(t.last) {
		t.last = at
	}
}
