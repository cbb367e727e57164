package agent

import (
	"context"
	"slices"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"
	podutil "k8s.io/kubernetes/pkg/api/v1/pod"

	"github.com/pocketkube/pocketkube/internal/node/runtime"
)

// Native sidecars (KEP-753) are init containers with restartPolicy Always:
// they start in order with the other init containers, and once started
// they let the next one start and keep running beside the app containers,
// restarted with back-off whenever they exit, until the pod's app
// containers are done. Kubelet's code for them is spread over
// computeInitContainerActions, computePodActions (pkg/kubelet/kuberuntime),
// getPhase (kubelet_pods.go) and the termination ordering
// (kuberuntime_termination_order.go); this file ports each.

// isSidecar reports whether c is a restartable init container.
func isSidecar(c *v1.Container) bool { return podutil.IsRestartableInitContainer(c) }

// hasSidecars reports whether the pod has any restartable init container.
func hasSidecars(pod *v1.Pod) bool {
	for i := range pod.Spec.InitContainers {
		if isSidecar(&pod.Spec.InitContainers[i]) {
			return true
		}
	}
	return false
}

// initActions is kubelet's computeInitContainerActions: the indexes of
// the init containers to start now, in spec order, and whether the pod is
// initialized. failed says that an init container failed for good
// (restartPolicy Never): the pod fails and nothing starts.
//
// Kubelet walks the init containers backwards from the last one the
// runtime knows, since completed ones may have been removed. A pod whose
// app containers ran is initialized: only its sidecars are kept running.
func (a *Agent) initActions(pod *v1.Pod, latest map[string]*runtime.ContainerStatus) (start []int, initialized, failed bool) {
	inits := pod.Spec.InitContainers
	if len(inits) == 0 {
		return nil, true, false
	}
	initialized = appContainerStarted(pod, latest)
	previously := initialized
	last := len(inits) - 1
	for i := last; i >= 0; i-- {
		c := &inits[i]
		cs := latest[c.Name]
		if cs == nil {
			if previously && isSidecar(c) {
				start = append(start, i)
			}
			continue
		}
		if previously && !isSidecar(c) {
			continue
		}
		switch cs.State {
		case runtime.StateRunning:
			if isSidecar(c) && a.containerStarted(pod, c) {
				if i == last {
					initialized = true
				} else if !previously {
					start = append(start, i+1)
				}
			}
		case runtime.StateExited:
			switch {
			case isSidecar(c):
				start = append(start, i)
			case cs.ExitCode != 0:
				if pod.Spec.RestartPolicy == v1.RestartPolicyNever {
					return nil, false, true
				}
				start = append(start, i)
			case i == last:
				initialized = true
			default:
				start = append(start, i+1)
			}
		default:
			// Created or unknown: wait for the runtime to report how it
			// ended, as pocketkube did before sidecars.
		}
		previously = true
	}
	if !previously {
		start = append(start, 0)
	}
	slices.Reverse(start)
	return start, initialized, false
}

// containerStarted is kubelet's started state of a running container: its
// startup probe succeeded, or it has none (its postStart hook ran within
// startContainer already).
func (a *Agent) containerStarted(pod *v1.Pod, c *v1.Container) bool {
	if a.prober == nil || c.StartupProbe == nil {
		return true
	}
	return a.prober.Started(string(pod.UID), c.Name)
}

// appContainerStarted is kubelet's HasAnyActiveRegularContainerStarted: an
// app container of the pod ran in its sandbox, so init is over.
func appContainerStarted(pod *v1.Pod, latest map[string]*runtime.ContainerStatus) bool {
	for i := range pod.Spec.Containers {
		if cs := latest[pod.Spec.Containers[i].Name]; cs != nil && cs.State != runtime.StateCreated {
			return true
		}
	}
	return false
}

// appActions is the app container half of kubelet's computePodActions:
// the containers to (re)start now, and how many run and stay. With none
// of either the pod is done: kubelet kills it, sidecars included, rather
// than let sidecars keep it alive.
func appActions(pod *v1.Pod, latest map[string]*runtime.ContainerStatus) (start []*v1.Container, keep int) {
	for i := range pod.Spec.Containers {
		c := &pod.Spec.Containers[i]
		cs := latest[c.Name]
		switch {
		case cs == nil, cs.State == runtime.StateExited && podutil.ContainerShouldRestart(*c, pod.Spec, cs.ExitCode):
			start = append(start, c)
		case cs.State != runtime.StateExited:
			keep++
		}
	}
	return start, keep
}

// stopSidecars stops the pod's running sidecars once its app containers
// are done, in reverse order, each within the pod's grace period, as
// kubelet's KillPod does for a pod whose app containers all finished.
func (a *Agent) stopSidecars(ctx context.Context, pod *v1.Pod, containers []*runtime.ContainerStatus) {
	latest := latestByName(containers)
	var running []string
	for i := range pod.Spec.InitContainers {
		c := &pod.Spec.InitContainers[i]
		if cs := latest[c.Name]; cs != nil && cs.State == runtime.StateRunning && isSidecar(c) {
			running = append(running, c.Name)
		}
	}
	if len(running) == 0 {
		return
	}
	order := newTerminationOrder(pod, running)
	var wg sync.WaitGroup
	for _, name := range running {
		c, cs := specContainer(pod, name), latest[name]
		a.recordContainer(pod, c, v1.EventTypeNormal, "Killing", "Stopping container %s", c.Name)
		wg.Go(func() {
			if err := a.stopInTurn(ctx, pod, c, cs.ID, gracePeriod(pod), order); err != nil {
				klog.FromContext(ctx).Error(err, "Stopping sidecar of a finished pod", "pod", klog.KObj(pod), "container", name)
			}
		})
	}
	wg.Wait()
}

// terminationOrder is kubelet's terminationOrdering: when a pod with
// sidecars stops, each sidecar waits for every app container and for the
// sidecars after it to have stopped, within its grace period.
type terminationOrder struct {
	mu         sync.Mutex
	terminated map[string]chan struct{}
	prereqs    map[string][]chan struct{}
}

// newTerminationOrder sets up the order for the containers of pod named
// in running; those not running count as stopped.
func newTerminationOrder(pod *v1.Pod, running []string) *terminationOrder {
	o := &terminationOrder{terminated: map[string]chan struct{}{}, prereqs: map[string][]chan struct{}{}}
	channel := func(name string) chan struct{} {
		ch := make(chan struct{})
		if !slices.Contains(running, name) {
			close(ch)
		}
		o.terminated[name] = ch
		return ch
	}
	var apps []chan struct{}
	for _, c := range pod.Spec.Containers {
		apps = append(apps, channel(c.Name))
	}
	var later chan struct{}
	for i := len(pod.Spec.InitContainers) - 1; i >= 0; i-- {
		c := &pod.Spec.InitContainers[i]
		ch := channel(c.Name)
		if isSidecar(c) {
			o.prereqs[c.Name] = slices.Clone(apps)
			if later != nil {
				o.prereqs[c.Name] = append(o.prereqs[c.Name], later)
			}
			later = ch
		}
	}
	return o
}

// waitForTurn blocks until the container may stop, or grace runs out, and
// returns how long it waited in whole seconds, rounded down as kubelet
// counts it against the grace period. A nil order never waits.
func (o *terminationOrder) waitForTurn(name string, grace time.Duration) time.Duration {
	if o == nil || grace <= 0 {
		return 0
	}
	start := time.Now()
	timer := time.NewTimer(grace)
	defer timer.Stop()
	for _, ch := range o.prereqs[name] {
		select {
		case <-ch:
		case <-timer.C:
			return time.Since(start).Truncate(time.Second)
		}
	}
	return time.Since(start).Truncate(time.Second)
}

// stopped marks the container stopped, letting those that wait on it go.
func (o *terminationOrder) stopped(name string) {
	if o == nil {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if ch, ok := o.terminated[name]; ok {
		close(ch)
		delete(o.terminated, name)
	}
}
