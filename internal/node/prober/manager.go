package prober

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
)

// Config configures a Manager.
type Config struct {
	// Exec runs exec probes in containers. Required.
	Exec Executor
	// OnChange is called, from a worker goroutine and without locks held,
	// each time what Ready, Started or Liveness report for one of the pod's
	// containers changes, so that the agent syncs the pod. Update and
	// RemovePod never call it: the agent is syncing already. Required.
	OnChange func(podUID string)
	// Clock paces the probe periods and initialDelaySeconds. Probe
	// timeouts use real time, as the network and the runtime do.
	// Defaults to the real clock.
	Clock clock.WithTicker
	// Recorder receives kubelet's Unhealthy and ProbeWarning events about
	// containers ("Liveness probe failed: …"). Optional.
	Recorder record.EventRecorder
}

// RunningContainer is one running container of a pod, as Update takes it.
type RunningContainer struct {
	// ID is the runtime's container ID. A new ID for the same name is a
	// restarted container, whose probes start over.
	ID string
	// StartedAt is when the container started; initialDelaySeconds counts
	// from it.
	StartedAt time.Time
}

// Manager runs the probes of the pods' running containers and keeps their
// results. Its methods are safe for concurrent use.
type Manager struct {
	cfg     Config
	probers probers

	mu     sync.Mutex
	pods   map[string]*podProbes
	closed bool
	wg     sync.WaitGroup

	// afterRound, when set (by tests), is called after every round of a
	// worker, whether it probed or not.
	afterRound func(container string, t probeType)
	// gate, when set (by tests, under mu), holds workers that Update
	// starts until it is closed.
	gate chan struct{}
}

type podProbes struct {
	pod        *v1.Pod
	podIP      string
	containers map[string]*containerProbes
}

// containerProbes is the probe state of one running container instance.
type containerProbes struct {
	id        string
	startedAt time.Time
	spec      *v1.Container
	probes    [3]*v1.Probe // by probeType; nil when the container has none
	results   [3]result
	workers   [3]*worker
}

// result is a probe result as kubelet's results manager stores it.
type result int

const (
	unknown result = iota
	success
	failure
)

// New returns a Manager with no pods.
func New(cfg Config) (*Manager, error) {
	if cfg.Exec == nil {
		return nil, errors.New("create prober manager: Exec is required")
	}
	if cfg.OnChange == nil {
		return nil, errors.New("create prober manager: OnChange is required")
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	return &Manager{
		cfg:     cfg,
		probers: newProbers(),
		pods:    map[string]*podProbes{},
	}, nil
}

// Update tells the manager which containers of pod run now, by container
// name. The agent calls it on every sync of the pod. Probing starts for a
// newly running container and stops for one that is gone; a container with
// a new ID (restarted) starts over: startup probe first, readiness false
// until it succeeds, liveness passing. Probes run against podIP unless the
// probe names a host. Workers log through ctx's logger; cancelling ctx does
// not stop them (RemovePod and Close do).
func (m *Manager) Update(ctx context.Context, pod *v1.Pod, podIP string, running map[string]RunningContainer) {
	logger := klog.FromContext(ctx)
	ctx = context.WithoutCancel(ctx)
	uid := string(pod.UID)

	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return
	}
	pp := m.pods[uid]
	if pp == nil {
		pp = &podProbes{containers: map[string]*containerProbes{}}
		m.pods[uid] = pp
	}
	pp.pod = pod
	pp.podIP = podIP

	specs := probedContainers(pod)
	for name, cp := range pp.containers {
		rc, ok := running[name]
		if _, inSpec := specs[name]; !ok || !inSpec || rc.ID != cp.id {
			cp.stop()
			delete(pp.containers, name)
		}
	}
	for name, spec := range specs {
		rc, ok := running[name]
		if !ok || rc.ID == "" || pp.containers[name] != nil {
			continue
		}
		cp := &containerProbes{id: rc.ID, startedAt: rc.StartedAt, spec: spec}
		cp.probes[liveness] = withDefaults(spec.LivenessProbe)
		cp.probes[readiness] = withDefaults(spec.ReadinessProbe)
		cp.probes[startup] = withDefaults(spec.StartupProbe)
		// kubelet's initial values: a container is not ready until a
		// readiness probe passes, is alive until a liveness probe fails and
		// has not started until a startup probe passes.
		cp.results = [3]result{liveness: success, readiness: failure, startup: unknown}
		pp.containers[name] = cp
		for t, p := range cp.probes {
			if p == nil {
				continue
			}
			wctx, cancel := context.WithCancel(ctx)
			w := &worker{
				m:           m,
				podUID:      uid,
				container:   name,
				containerID: rc.ID,
				probeType:   probeType(t),
				spec:        p,
				cancel:      cancel,
				trigger:     make(chan struct{}, 1),
				gate:        m.gate,
			}
			cp.workers[t] = w
			m.wg.Add(1)
			go w.run(klog.NewContext(wctx, klog.LoggerWithValues(logger, "pod", klog.KObj(pod), "containerName", name, "probeType", w.probeType)))
		}
	}
}

// probedContainers returns the containers kubelet probes: the regular ones
// and the restartable init containers (sidecars).
func probedContainers(pod *v1.Pod) map[string]*v1.Container {
	out := map[string]*v1.Container{}
	for i := range pod.Spec.InitContainers {
		c := &pod.Spec.InitContainers[i]
		if c.RestartPolicy != nil && *c.RestartPolicy == v1.ContainerRestartPolicyAlways {
			out[c.Name] = c
		}
	}
	for i := range pod.Spec.Containers {
		out[pod.Spec.Containers[i].Name] = &pod.Spec.Containers[i]
	}
	return out
}

// withDefaults returns a copy of p with the API server's defaults filled in
// (SetDefaults_Probe, SetDefaults_HTTPGetAction), for pods that were not
// defaulted by an API server.
func withDefaults(p *v1.Probe) *v1.Probe {
	if p == nil {
		return nil
	}
	p = p.DeepCopy()
	if p.TimeoutSeconds == 0 {
		p.TimeoutSeconds = 1
	}
	if p.PeriodSeconds == 0 {
		p.PeriodSeconds = 10
	}
	if p.SuccessThreshold == 0 {
		p.SuccessThreshold = 1
	}
	if p.FailureThreshold == 0 {
		p.FailureThreshold = 3
	}
	if p.HTTPGet != nil {
		if p.HTTPGet.Path == "" {
			p.HTTPGet.Path = "/"
		}
		if p.HTTPGet.Scheme == "" {
			p.HTTPGet.Scheme = v1.URISchemeHTTP
		}
	}
	return p
}

func (cp *containerProbes) stop() {
	for _, w := range cp.workers {
		if w != nil {
			w.cancel()
		}
	}
}

// RemovePod stops probing the pod's containers and forgets their results.
// Workers end in the background; Close waits for them.
func (m *Manager) RemovePod(podUID string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if pp := m.pods[podUID]; pp != nil {
		for _, cp := range pp.containers {
			cp.stop()
		}
		delete(m.pods, podUID)
	}
}

// Close stops every worker and waits for them to end. Update does nothing
// after Close.
func (m *Manager) Close() {
	m.mu.Lock()
	m.closed = true
	for uid, pp := range m.pods {
		for _, cp := range pp.containers {
			cp.stop()
		}
		delete(m.pods, uid)
	}
	m.mu.Unlock()
	m.wg.Wait()
}

// state is what the getters report for one container; OnChange fires when
// it changes.
type state struct {
	started, ready bool
	killReason     probeType
	killed         bool
}

func (cp *containerProbes) state() state {
	var s state
	if cp == nil {
		return s
	}
	s.started = cp.probes[startup] == nil || cp.results[startup] == success
	s.ready = s.started && (cp.probes[readiness] == nil || cp.results[readiness] == success)
	switch {
	case cp.probes[liveness] != nil && cp.results[liveness] == failure:
		s.killed, s.killReason = true, liveness
	case cp.probes[startup] != nil && cp.results[startup] == failure:
		s.killed, s.killReason = true, startup
	}
	return s
}

func (m *Manager) get(podUID, container string) *containerProbes {
	if pp := m.pods[podUID]; pp != nil {
		return pp.containers[container]
	}
	return nil
}

// Ready reports the container's readiness as kubelet puts it in
// ContainerStatus.Ready: false unless the container runs and has started;
// then true without a readiness probe, else the last readiness result
// (false until the first success).
func (m *Manager) Ready(podUID, container string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.get(podUID, container).state().ready
}

// Started reports ContainerStatus.Started: the container runs and its
// startup probe passed, or it has none.
func (m *Manager) Started(podUID, container string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.get(podUID, container).state().started
}

// Liveness reports whether the container failed its liveness probe (or its
// startup probe) failureThreshold times in a row, so that the agent kills it
// and restarts it per restartPolicy. message is kubelet's Killing event text:
// "Container x failed liveness probe, will be restarted". The probe's own
// failure ("Liveness probe failed: HTTP probe failed with statuscode: 500")
// went to Config.Recorder as an Unhealthy event.
func (m *Manager) Liveness(podUID, container string) (failed bool, message string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.get(podUID, container).state()
	if !s.killed {
		return false, ""
	}
	what := "liveness"
	if s.killReason == startup {
		what = "startup"
	}
	return true, fmt.Sprintf("Container %s failed %s probe, will be restarted", container, what)
}

// TerminationGracePeriod returns the terminationGracePeriodSeconds of the
// probe that Liveness reports as failed, or nil when there is none or it
// does not set one; kubelet then uses the pod's.
func (m *Manager) TerminationGracePeriod(podUID, container string) *int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	cp := m.get(podUID, container)
	s := cp.state()
	if !s.killed {
		return nil
	}
	if g := cp.probes[s.killReason].TerminationGracePeriodSeconds; g != nil {
		v := *g
		return &v
	}
	return nil
}

// set stores a worker's result and reports whether the getters' answers
// changed. A worker of a replaced container stores nothing.
func (m *Manager) set(w *worker, r result) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	cp := m.get(w.podUID, w.container)
	if cp == nil || cp.id != w.containerID {
		return false
	}
	before := cp.state()
	cp.results[w.probeType] = r
	after := cp.state()
	if w.probeType == startup && !before.started && after.started {
		// kubelet runs the readiness probe at once when a container
		// starts, not a period later.
		if rw := cp.workers[readiness]; rw != nil {
			select {
			case rw.trigger <- struct{}{}:
			default:
			}
		}
	}
	return before != after
}

// event records kubelet's container event, with the fieldPath of
// kubelet's GenerateContainerRef.
func (m *Manager) event(pod *v1.Pod, c *v1.Container, eventType, reason, format string, args ...any) {
	if m.cfg.Recorder == nil {
		return
	}
	fieldPath := fmt.Sprintf("spec.containers{%s}", c.Name)
	for i := range pod.Spec.InitContainers {
		if pod.Spec.InitContainers[i].Name == c.Name {
			fieldPath = fmt.Sprintf("spec.initContainers{%s}", c.Name)
		}
	}
	ref := &v1.ObjectReference{
		Kind:            "Pod",
		APIVersion:      "v1",
		Namespace:       pod.Namespace,
		Name:            pod.Name,
		UID:             pod.UID,
		ResourceVersion: pod.ResourceVersion,
		FieldPath:       fieldPath,
	}
	m.cfg.Recorder.Eventf(ref, eventType, reason, format, args...)
}
