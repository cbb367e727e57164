package prober

import (
	"context"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"
	"k8s.io/kubernetes/pkg/probe"
)

// worker probes one probe of one container instance every periodSeconds,
// as kubelet's prober worker does, until its context is cancelled (the
// container is gone or replaced, the pod removed, the manager closed).
type worker struct {
	m           *Manager
	podUID      string
	container   string
	containerID string
	probeType   probeType
	spec        *v1.Probe // with defaults filled in
	cancel      context.CancelFunc
	trigger     chan struct{} // buffered: a probe now rather than at the next tick
	gate        chan struct{} // Manager.gate

	lastResult result
	resultRun  int  // how often in a row lastResult came
	onHold     bool // set after liveness failure or a final startup result: no more probes for this container
}

func (w *worker) run(ctx context.Context) {
	defer w.m.wg.Done()
	defer w.cancel()
	ticker := w.m.cfg.Clock.NewTicker(time.Duration(w.spec.PeriodSeconds) * time.Second)
	defer ticker.Stop()
	if w.gate != nil {
		select {
		case <-w.gate:
		case <-ctx.Done():
			return
		}
	}
	for {
		keepGoing := w.doProbe(ctx)
		if f := w.m.afterRound; f != nil {
			f(w.container, w.probeType)
		}
		if !keepGoing {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-ticker.C():
		case <-w.trigger:
		}
	}
}

// doProbe runs one round and reports whether the worker should go on.
func (w *worker) doProbe(ctx context.Context) (keepGoing bool) {
	logger := klog.FromContext(ctx)
	if ctx.Err() != nil {
		return false
	}

	w.m.mu.Lock()
	pp := w.m.pods[w.podUID]
	var cp *containerProbes
	if pp != nil {
		cp = pp.containers[w.container]
	}
	if cp == nil || cp.id != w.containerID {
		w.m.mu.Unlock()
		return false
	}
	pod, podIP, startedAt, started, spec := pp.pod, pp.podIP, cp.startedAt, cp.state().started, cp.spec
	w.m.mu.Unlock()

	// A pod being deleted is not killed for failing liveness or startup
	// probes while it shuts down.
	if pod.DeletionTimestamp != nil && (w.probeType == liveness || w.probeType == startup) {
		logger.V(3).Info("Pod deletion requested, setting probe result to success")
		w.store(ctx, success)
		return false
	}
	if w.onHold {
		return true
	}
	if int32(w.m.cfg.Clock.Since(startedAt).Seconds()) < w.spec.InitialDelaySeconds {
		return true
	}
	// The startup probe runs until the container has started; the others
	// wait for it.
	if (w.probeType == startup) == started {
		return true
	}

	res, output, err := w.m.probers.runProbe(ctx, w.m.cfg.Exec, w.spec, target{pod: pod, container: spec, containerID: w.containerID, podIP: podIP})
	if ctx.Err() != nil {
		// Stopped while probing: the result belongs to nobody.
		return false
	}
	var r result
	switch {
	case err != nil:
		logger.V(1).Info("Probe errored", "probeResult", res, "err", err)
		w.m.event(pod, spec, v1.EventTypeWarning, "Unhealthy", "%s probe errored and resulted in %s state: %s", w.probeType, res, err)
		// kubelet throws away a result that errored.
		return true
	case res == probe.Success:
		logger.V(3).Info("Probe succeeded")
		r = success
	case res == probe.Warning:
		w.m.event(pod, spec, v1.EventTypeWarning, "ProbeWarning", "%s probe warning: %s", w.probeType, output)
		logger.V(3).Info("Probe succeeded with a warning", "output", output)
		r = success
	case res == probe.Failure:
		logger.V(1).Info("Probe failed", "output", output)
		w.m.event(pod, spec, v1.EventTypeWarning, "Unhealthy", "%s probe failed: %s", w.probeType, output)
		r = failure
	default:
		logger.V(1).Info("Probe unknown without error", "probeResult", res)
		r = failure
	}

	if w.lastResult == r {
		w.resultRun++
	} else {
		w.lastResult = r
		w.resultRun = 1
	}
	if (r == failure && w.resultRun < int(w.spec.FailureThreshold)) ||
		(r == success && w.resultRun < int(w.spec.SuccessThreshold)) {
		return true
	}
	w.store(ctx, r)

	if (w.probeType == liveness && r == failure) || w.probeType == startup {
		// The container will be killed (liveness, startup failure) or has
		// started: stop probing until the agent reports a new container.
		w.onHold = true
		w.resultRun = 0
	}
	return true
}

// store saves r and tells the agent when its view changed.
func (w *worker) store(ctx context.Context, r result) {
	if w.m.set(w, r) {
		klog.FromContext(ctx).V(4).Info("Probe result changed", "result", r)
		w.m.cfg.OnChange(w.podUID)
	}
}
