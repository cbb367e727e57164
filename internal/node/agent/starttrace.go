package agent

import (
	"context"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"

	"github.com/pocketkube/pocketkube/internal/node/runtime"
)

// startTraceLevel is the log verbosity at which the agent logs how long
// each step of a pod's first start took ("Pod start steps"), one line per
// pod: the breakdown of docs/BENCHMARKS.md "Pod start: where the 88 ms
// go". At lower levels nothing is timed.
const startTraceLevel = 2

// startTrace times the steps of the sync that sets a pod's sandbox up,
// from the sync's start to its status write. Its methods do nothing on a
// nil *startTrace, so the steps need no check of the level.
type startTrace struct {
	clock       clock.PassiveClock
	start, last time.Time
	kv          []any
}

// newStartTrace returns a trace for a sync that starts pod, or nil when
// the pod's sandbox is already up or the level is off.
func newStartTrace(ctx context.Context, c clock.PassiveClock, st *podState) *startTrace {
	if st.sandbox || !klog.FromContext(ctx).V(startTraceLevel).Enabled() {
		return nil
	}
	now := c.Now()
	return &startTrace{clock: c, start: now, last: now}
}

// step records the time since the previous step (or the sync's start)
// as name's.
func (t *startTrace) step(name string) {
	if t == nil {
		return
	}
	now := t.clock.Now()
	t.kv = append(t.kv, name+"Ms", msOf(now.Sub(t.last)))
	t.last = now
}

// withParts returns ctx with the runtime's Steps set to record the parts
// of the next step as its own fields, name + part + "Ms" (createRuncMs),
// ahead of the step's total; ctx itself when t is nil.
func (t *startTrace) withParts(ctx context.Context, name string) context.Context {
	if t == nil {
		return ctx
	}
	return runtime.WithSteps(ctx, traceParts{t: t, prefix: name})
}

// traceParts records the parts of one step of a startTrace.
type traceParts struct {
	t      *startTrace
	prefix string
}

func (p traceParts) Step(part string, d time.Duration) {
	if part == "" {
		return
	}
	p.t.kv = append(p.t.kv, p.prefix+strings.ToUpper(part[:1])+part[1:]+"Ms", msOf(d))
}

// log writes the steps and their total.
func (t *startTrace) log(ctx context.Context, pod *v1.Pod) {
	if t == nil {
		return
	}
	kv := append([]any{"pod", klog.KObj(pod), "totalMs", msOf(t.last.Sub(t.start))}, t.kv...)
	klog.FromContext(ctx).V(startTraceLevel).Info("Pod start steps", kv...)
}

// msOf is d in milliseconds, to 0.1 ms.
func msOf(d time.Duration) float64 {
	return float64(d.Round(100*time.Microsecond)) / float64(time.Millisecond)
}
