package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/klog/v2"
	"k8s.io/kubernetes/pkg/kubelet/events"
	"k8s.io/kubernetes/pkg/kubelet/lifecycle"
	schedulerframework "k8s.io/kubernetes/pkg/scheduler/framework"

	"github.com/pocketkube/pocketkube/internal/atomicfile"
	"github.com/pocketkube/pocketkube/internal/node/runtime"
)

// resizeRetry is how often a sync retries a resize that is Deferred.
// Kubelet retries pending resizes when a pod leaves the node or shrinks,
// and every 3 minutes; the agent has no such trigger, so the deferred pod
// itself asks for a sync this often.
const resizeRetry = 5 * time.Second

// Resizer changes the cgroup values of a pod and of its running
// containers in place (internal/node/runtime), and reports the memory they
// use, for kubelet's in-place pod resize. A Runtime without it runs pods
// whose resizes never complete.
type Resizer interface {
	UpdateContainerResources(ctx context.Context, id string, r runtime.Resources) error
	UpdatePodResources(ctx context.Context, uid string, r runtime.Resources) error
	ContainerStats(podUID, id string) (runtime.CgroupStats, error)
	PodStats(podUID string) (runtime.CgroupStats, error)
}

// resizeState is what the agent keeps of a pod's resources between syncs:
// kubelet's allocation manager (allocated: what the node admitted) and
// its actuated-resources record (actuated: what was applied to each
// running container), and the two resize conditions of its status
// manager. The allocation is also on disk (allocationFile), as kubelet
// checkpoints it; the rest lives in memory.
type resizeState struct {
	allocated map[string]v1.ResourceRequirements
	actuated  map[string]v1.ResourceRequirements
	// podCgroup is what the pod cgroup was last given.
	podCgroup  *runtime.Resources
	pending    *v1.PodCondition
	inProgress *v1.PodCondition
	// retryAt is when a resize that failed is tried again; its status
	// write must not start the next attempt at once.
	retryAt time.Time
}

// withAllocation returns a copy of pod whose containers have their
// allocated resources (kubelet's UpdatePodFromAllocation), and whether it
// differs from pod.
func withAllocation(pod *v1.Pod, allocated map[string]v1.ResourceRequirements) (*v1.Pod, bool) {
	out := pod.DeepCopy()
	changed := false
	for _, c := range allContainers(out) {
		r, ok := allocated[c.Name]
		if !ok {
			continue
		}
		if !resourcesEqual(c.Resources, r) {
			changed = true
			c.Resources = *r.DeepCopy()
		}
	}
	return out, changed
}

// resourcesEqual compares the CPU and memory requests and limits, the
// values an in-place resize changes, as quantities.
func resourcesEqual(a, b v1.ResourceRequirements) bool {
	return resourceValuesOf(a) == resourceValuesOf(b)
}

// resourceValues are kubelet's resourceRequirements
// (kuberuntime_manager.go): what computePodResizeAction compares.
type resourceValues struct {
	memoryLimit, memoryRequest, cpuLimit, cpuRequest int64
}

func resourceValuesOf(r v1.ResourceRequirements) resourceValues {
	return resourceValues{
		memoryLimit:   r.Limits.Memory().Value(),
		memoryRequest: r.Requests.Memory().Value(),
		cpuLimit:      r.Limits.Cpu().MilliValue(),
		cpuRequest:    r.Requests.Cpu().MilliValue(),
	}
}

// allocate is kubelet's handlePodResourcesResize: the first time it sees
// the pod, its spec is what was admitted; later, a spec whose resources
// differ from the allocation is a resize, admitted against the node's
// allocatable and the other pods' allocations as kubelet's predicate
// admit handler does it (ResizeOperation). An admitted resize becomes the
// allocation and PodResizeInProgress; one that does not fit leaves
// PodResizePending (Deferred, or Infeasible) and is retried. It returns
// the pod with its allocated resources, and when to retry.
func (a *Agent) allocate(ctx context.Context, pod *v1.Pod, st *podState) (*v1.Pod, time.Duration) {
	logger := klog.FromContext(ctx)
	rs := &st.resize
	if rs.allocated == nil {
		saved, err := a.loadAllocation(pod)
		if err != nil {
			a.setAllocation(ctx, pod, st)
			return pod, 0
		}
		a.mu.Lock()
		rs.allocated = saved
		a.mu.Unlock()
	}
	allocatedPod, changed := withAllocation(pod, rs.allocated)
	if !changed {
		rs.pending = nil
		return pod, 0
	}
	r := a.admitResize(ctx, pod)
	if r.Admit {
		a.setAllocation(ctx, pod, st)
		rs.pending = nil
		rs.retryAt = time.Time{}
		rs.inProgress = resizeCondition(v1.PodResizeInProgress, nil, "", "", pod.Generation, a.cfg.Clock.Now())
		logger.V(2).Info("Pod resize allocated", "pod", klog.KObj(pod), "generation", pod.Generation)
		a.record(pod, v1.EventTypeNormal, events.ResizeStarted, "%s", events.PodResizeStartedMsg(logger, pod, pod.Generation))
		return pod, 0
	}
	reason := r.Reason
	if reason != v1.PodReasonInfeasible {
		// As kubelet's status manager: every other reason is Deferred.
		reason = v1.PodReasonDeferred
	}
	old := rs.pending
	rs.pending = resizeCondition(v1.PodResizePending, old, reason, r.Message, pod.Generation, a.cfg.Clock.Now())
	if old == nil || old.Reason != reason || old.ObservedGeneration != pod.Generation {
		typ := events.ResizeDeferred
		if reason == v1.PodReasonInfeasible {
			typ = events.ResizeInfeasible
		}
		a.record(pod, v1.EventTypeWarning, typ, "%s", events.PodResizePendingMsg(logger, pod, reason, r.Message, pod.Generation))
	}
	if reason == v1.PodReasonInfeasible {
		return allocatedPod, 0
	}
	return allocatedPod, resizeRetry
}

// allocationFile holds a pod's allocation in its directory, as kubelet's
// allocation checkpoint, so that a restarted agent does not take a resize
// it deferred as admitted.
const allocationFile = "allocated.json"

// setAllocation makes pod's spec its allocation, in memory and on disk. The
// map is replaced, never changed: other pods' workers read it
// (admitResize) under a.mu.
func (a *Agent) setAllocation(ctx context.Context, pod *v1.Pod, st *podState) {
	next := map[string]v1.ResourceRequirements{}
	for _, c := range allContainers(pod) {
		next[c.Name] = *c.Resources.DeepCopy()
	}
	a.mu.Lock()
	st.resize.allocated = next
	a.mu.Unlock()
	b, err := json.Marshal(next)
	if err == nil {
		dir := a.podDir(string(pod.UID))
		if err = os.MkdirAll(dir, 0o750); err == nil {
			err = atomicfile.Write(filepath.Join(dir, allocationFile), b, 0o600)
		}
	}
	if err != nil {
		klog.FromContext(ctx).Error(err, "Record pod allocation", "pod", klog.KObj(pod))
	}
}

// loadAllocation reads the allocation setAllocation recorded for pod.
func (a *Agent) loadAllocation(pod *v1.Pod) (map[string]v1.ResourceRequirements, error) {
	b, err := os.ReadFile(filepath.Join(a.podDir(string(pod.UID)), allocationFile))
	if err != nil {
		return nil, err
	}
	var m map[string]v1.ResourceRequirements
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	return m, nil
}

// resizeCondition is kubelet's updatedPodResizeCondition: the transition
// time moves when the reason changes. A condition that says what old says
// is old, probe time included: kubelet sets these conditions only when a
// resize is tried, and a time that moved at each sync would make each sync
// a status write, and the write's watch event the next sync.
func resizeCondition(typ v1.PodConditionType, old *v1.PodCondition, reason, message string, generation int64, now time.Time) *v1.PodCondition {
	if old != nil && old.Reason == reason && old.Message == message && old.ObservedGeneration == generation {
		return old
	}
	t := metav1.NewTime(now)
	c := &v1.PodCondition{Type: typ, Status: v1.ConditionTrue, LastProbeTime: t, LastTransitionTime: t,
		ObservedGeneration: generation, Reason: reason, Message: message}
	if old != nil && old.Reason == reason {
		c.LastTransitionTime = old.LastTransitionTime
	}
	return c
}

// admitResize runs kubelet's predicate admit handler for a resize: the
// resized pod's requests with the allocations of the node's other active
// pods against the node's allocatable. Its refusals (OutOfcpu,
// OutOfmemory with "Node didn't have enough resource: …") are kubelet's.
func (a *Agent) admitResize(ctx context.Context, pod *v1.Pod) lifecycle.PodAdmitResult {
	return a.admitPredicates(ctx, pod, lifecycle.ResizeOperation)
}

// admitPredicates is kubelet's predicate admit handler for a new pod or a
// resize: the node's OS and the pod's, then the scheduler's general
// predicates (resources against allocatable with the allocations of the
// node's other admitted pods, host ports, node name and affinity, NoExecute
// taints) for a pod that was bound here without the scheduler or raced it.
// Its refusals (OutOfcpu, NodePorts, NodeAffinity, …) are kubelet's.
func (a *Agent) admitPredicates(ctx context.Context, pod *v1.Pod, op lifecycle.Operation) lifecycle.PodAdmitResult {
	node := a.nodeObject()
	if node == nil {
		return lifecycle.PodAdmitResult{Admit: true}
	}
	active, err := a.ActivePods()
	if err != nil {
		return lifecycle.PodAdmitResult{Admit: false, Reason: "UnexpectedAdmissionError", Message: err.Error()}
	}
	var others []*v1.Pod
	a.mu.Lock()
	for _, p := range active {
		if p.UID == pod.UID {
			continue
		}
		st, ok := a.states[string(p.UID)]
		if !ok || st.resize.allocated == nil {
			// Kubelet counts the pods it admitted, with what it
			// allocated to them; one it has not seen yet is not there.
			continue
		}
		ap, _ := withAllocation(p, st.resize.allocated)
		others = append(others, ap)
	}
	a.mu.Unlock()
	// As kubelet's getNodeAnyWay: the node it last wrote, or the API's
	// when the handler asks again (node labels it did not write).
	getNode := func(ctx context.Context, useCache bool) (*v1.Node, error) {
		if useCache {
			return node, nil
		}
		return a.cfg.Client.CoreV1().Nodes().Get(ctx, node.Name, metav1.GetOptions{})
	}
	h := lifecycle.NewPredicateAdmitHandler(getNode, keepAdmissionFailure{},
		func(*schedulerframework.NodeInfo, *lifecycle.PodAdmitAttributes) error { return nil })
	return h.Admit(ctx, &lifecycle.PodAdmitAttributes{Pod: pod, OtherPods: others, Operation: op})
}

// keepAdmissionFailure is kubelet's CriticalPodAdmissionHandler without
// preemption: the scheduler owns preemption, so the failure stands.
type keepAdmissionFailure struct{}

func (keepAdmissionFailure) HandleAdmissionFailure(_ context.Context, _ *v1.Pod, reasons []lifecycle.PredicateFailureReason, _ lifecycle.Operation) ([]lifecycle.PredicateFailureReason, error) {
	return reasons, nil
}

// nodeObject is the node as the agent last wrote it, or nil before it
// registered.
func (a *Agent) nodeObject() *v1.Node {
	if a.node == nil || a.node.last == nil {
		return nil
	}
	return a.node.last
}

// containerResize is one running container whose actuated resources
// differ from its allocation.
type containerResize struct {
	c       *v1.Container
	id      string
	desired resourceValues
	current resourceValues
	restart bool
}

// resizeActions is kubelet's computePodResizeAction over the pod's running
// containers: a container whose changed resource has resizePolicy
// RestartContainer is restarted, the others are resized in place.
func (a *Agent) resizeActions(pod *v1.Pod, st *podState, latest map[string]*runtime.ContainerStatus) []containerResize {
	var out []containerResize
	for _, c := range allContainers(pod) {
		cs := latest[c.Name]
		if cs == nil || cs.State != runtime.StateRunning {
			continue
		}
		desired := resourceValuesOf(c.Resources)
		actuated, ok := st.resize.actuated[c.Name]
		if !ok {
			// Not started by this agent (it restarted): the runtime's
			// record of the cgroup values tells whether the container
			// runs with its allocation; if not, kubelet's zero value.
			if cs.Resources == nil || *cs.Resources != runtime.ContainerResources(c) {
				out = append(out, containerResize{c: c, id: cs.ID, desired: desired, restart: false})
				continue
			}
			st.resize.setActuated(c.Name, c.Resources)
			continue
		}
		current := resourceValuesOf(actuated)
		if desired == current {
			continue
		}
		restart := false
		policy := func(name v1.ResourceName) bool {
			for _, p := range c.ResizePolicy {
				if p.ResourceName == name {
					return p.RestartPolicy == v1.RestartContainer
				}
			}
			return false // NotRequired is the default
		}
		if desired.memoryLimit != current.memoryLimit || desired.memoryRequest != current.memoryRequest {
			restart = restart || policy(v1.ResourceMemory)
		}
		if desired.cpuLimit != current.cpuLimit || desired.cpuRequest != current.cpuRequest {
			restart = restart || policy(v1.ResourceCPU)
		}
		out = append(out, containerResize{c: c, id: cs.ID, desired: desired, current: current, restart: restart})
	}
	return out
}

// resizePod is kubelet's doPodResizeAction (with the container kills and
// starts of its SyncPod around it): containers whose policy asks for it
// are stopped, the pod cgroup and the other containers get their new
// values — memory first, then CPU; the pod cgroup before the containers
// when it grows and after them when it shrinks — and the stopped
// containers start again with the new values. A memory limit below what
// a container (or the pod) uses is refused before anything changes, with
// kubelet's message. It returns whether it changed anything.
func (a *Agent) resizePod(ctx context.Context, pod *v1.Pod, st *podState, latest map[string]*runtime.ContainerStatus) (bool, error) {
	actions := a.resizeActions(pod, st, latest)
	want := runtime.PodResources(pod)
	cur := want
	if st.resize.podCgroup != nil {
		cur = *st.resize.podCgroup
	}
	if len(actions) == 0 && podCgroupIs(cur, want) {
		return false, nil
	}
	rz, ok := a.cfg.Runtime.(Resizer)
	if !ok {
		return false, fmt.Errorf("resize pod %s: the runtime cannot resize", klog.KObj(pod))
	}
	if err := a.checkMemoryDecrease(pod, rz, actions, cur, want); err != nil {
		return false, err
	}
	// From here on, even a failed step may have changed something.
	uid := string(pod.UID)
	var restarts []containerResize
	for _, r := range actions {
		if !r.restart {
			continue
		}
		msg := fmt.Sprintf("Container %s resize requires restart", r.c.Name)
		a.recordContainer(pod, r.c, v1.EventTypeNormal, "Killing", "%s", msg)
		if err := a.stopContainer(ctx, pod, r.c, r.id, gracePeriod(pod)); err != nil {
			return true, fmt.Errorf("stop container %s of pod %s for its resize: %w", r.c.Name, klog.KObj(pod), err)
		}
		restarts = append(restarts, r)
	}
	setPod := func(r runtime.Resources) error {
		if err := rz.UpdatePodResources(ctx, uid, r); err != nil {
			return err
		}
		p := cur.Updated(r)
		cur = p
		st.resize.podCgroup = &p
		return nil
	}
	// Memory. A pod without a memory limit keeps none (kubelet does not
	// remove limits either).
	if want.MemoryLimit != 0 && want.MemoryLimit > cur.MemoryLimit && cur.MemoryLimit != 0 {
		if err := setPod(runtime.Resources{MemoryLimit: want.MemoryLimit}); err != nil {
			return true, err
		}
	}
	for _, r := range actions {
		if r.restart || (r.desired.memoryLimit == r.current.memoryLimit && r.desired.memoryRequest == r.current.memoryRequest) {
			continue
		}
		if r.desired.memoryLimit != r.current.memoryLimit {
			if err := rz.UpdateContainerResources(ctx, r.id, runtime.Resources{MemoryLimit: r.desired.memoryLimit}); err != nil {
				return true, err
			}
		}
		a.setActuatedResource(st, r.c.Name, v1.ResourceMemory, r.c.Resources)
	}
	if want.MemoryLimit != 0 && (want.MemoryLimit < cur.MemoryLimit || cur.MemoryLimit == 0) {
		if err := setPod(runtime.Resources{MemoryLimit: want.MemoryLimit}); err != nil {
			return true, err
		}
	}
	// CPU: limits grow before requests, requests shrink before limits.
	if want.CPUPeriod != 0 && quotaGrows(cur, want) {
		if err := setPod(runtime.Resources{CPUPeriod: want.CPUPeriod, CPUQuota: want.CPUQuota}); err != nil {
			return true, err
		}
	}
	if want.CPUShares > cur.CPUShares {
		if err := setPod(runtime.Resources{CPUShares: want.CPUShares}); err != nil {
			return true, err
		}
	}
	for _, r := range actions {
		if r.restart || (r.desired.cpuLimit == r.current.cpuLimit && r.desired.cpuRequest == r.current.cpuRequest) {
			continue
		}
		cr := runtime.ContainerResources(r.c)
		if err := rz.UpdateContainerResources(ctx, r.id, runtime.Resources{CPUShares: cr.CPUShares, CPUPeriod: cr.CPUPeriod, CPUQuota: cr.CPUQuota}); err != nil {
			return true, err
		}
		a.setActuatedResource(st, r.c.Name, v1.ResourceCPU, r.c.Resources)
	}
	if want.CPUShares < cur.CPUShares {
		if err := setPod(runtime.Resources{CPUShares: want.CPUShares}); err != nil {
			return true, err
		}
	}
	if want.CPUPeriod != 0 && (cur.CPUPeriod != want.CPUPeriod || cur.CPUQuota != want.CPUQuota) {
		if err := setPod(runtime.Resources{CPUPeriod: want.CPUPeriod, CPUQuota: want.CPUQuota}); err != nil {
			return true, err
		}
	}
	for _, r := range restarts {
		last := *latest[r.c.Name]
		last.State, last.FinishedAt = runtime.StateExited, a.cfg.Clock.Now()
		if wait := a.startContainer(ctx, pod, r.c, st, &last); wait > 0 {
			return true, fmt.Errorf("restart container %s of pod %s for its resize: %s", r.c.Name, klog.KObj(pod), st.waiting[r.c.Name].Message)
		}
	}
	return true, nil
}

// podCgroupIs tells whether the pod cgroup has the values of want that
// are set: the shares always, the quota and the memory limit when want
// has them.
func podCgroupIs(cur, want runtime.Resources) bool {
	if cur.CPUShares != want.CPUShares {
		return false
	}
	if want.CPUPeriod != 0 && (cur.CPUPeriod != want.CPUPeriod || cur.CPUQuota != want.CPUQuota) {
		return false
	}
	return want.MemoryLimit == 0 || cur.MemoryLimit == want.MemoryLimit
}

// quotaGrows tells whether the pod's CPU quota goes up (no quota, -1, is
// the most).
func quotaGrows(cur, want runtime.Resources) bool {
	if cur.CPUPeriod == 0 || cur.CPUQuota <= 0 {
		return false
	}
	return want.CPUQuota <= 0 || want.CPUQuota > cur.CPUQuota
}

// setActuated records that container name runs with res.
func (rs *resizeState) setActuated(name string, res v1.ResourceRequirements) {
	if rs.actuated == nil {
		rs.actuated = map[string]v1.ResourceRequirements{}
	}
	rs.actuated[name] = *res.DeepCopy()
}

// setActuatedResource records that the container now runs with res's values of
// resource name (kubelet's actuated-resources checkpoint).
func (a *Agent) setActuatedResource(st *podState, name string, rn v1.ResourceName, res v1.ResourceRequirements) {
	old := st.resize.actuated[name]
	cur := *old.DeepCopy()
	set := func(l *v1.ResourceList, q resource.Quantity, ok bool) {
		if !ok {
			delete(*l, rn)
			return
		}
		if *l == nil {
			*l = v1.ResourceList{}
		}
		(*l)[rn] = q
	}
	q, ok := res.Limits[rn]
	set(&cur.Limits, q, ok)
	q, ok = res.Requests[rn]
	set(&cur.Requests, q, ok)
	st.resize.setActuated(name, cur)
}

// checkMemoryDecrease is kubelet's validateMemoryResizeAction: a memory
// limit that goes down (or appears) must stay above what the container,
// or the pod, uses now.
func (a *Agent) checkMemoryDecrease(pod *v1.Pod, rz Resizer, actions []containerResize, cur, want runtime.Resources) error {
	podLimitDecreasing := want.MemoryLimit != 0 && (cur.MemoryLimit == 0 || want.MemoryLimit < cur.MemoryLimit)
	var decreasing []containerResize
	for _, r := range actions {
		if !r.restart && r.desired.memoryLimit != 0 && (r.current.memoryLimit == 0 || r.desired.memoryLimit < r.current.memoryLimit) {
			decreasing = append(decreasing, r)
		}
	}
	if !podLimitDecreasing && len(decreasing) == 0 {
		return nil
	}
	podUsage, err := rz.PodStats(string(pod.UID))
	if err != nil {
		return fmt.Errorf("unable to read memory usage for pod %q", formatPod(pod))
	}
	var errs []error
	if podLimitDecreasing && podUsage.MemoryUsageBytes >= uint64(want.MemoryLimit) {
		errs = append(errs, fmt.Errorf("attempting to set pod memory limit (%d) below current usage (%d)", want.MemoryLimit, podUsage.MemoryUsageBytes))
	}
	for _, r := range decreasing {
		s, err := rz.ContainerStats(string(pod.UID), r.id)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("missing container %q memory usage", r.c.Name))
		case s.MemoryUsageBytes >= uint64(r.desired.memoryLimit):
			// Kubelet's message quotes the pod's usage here.
			errs = append(errs, fmt.Errorf("attempting to set container %q memory limit (%d) below current usage (%d)", r.c.Name, r.desired.memoryLimit, podUsage.MemoryUsageBytes))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("cannot decrease memory limits: %w", utilerrors.NewAggregate(errs))
	}
	return nil
}

// resizeInProgress is kubelet's IsPodResizeInProgress: a running container
// whose actuated resources are not its allocation yet.
func resizeInProgress(pod *v1.Pod, st *podState, latest map[string]*runtime.ContainerStatus) bool {
	for _, c := range allContainers(pod) {
		cs := latest[c.Name]
		if cs == nil || cs.State != runtime.StateRunning {
			continue
		}
		if act, ok := st.resize.actuated[c.Name]; ok && !resourcesEqual(act, c.Resources) {
			return true
		}
	}
	return false
}

// syncResize actuates the allocation of a running pod and keeps
// PodResizeInProgress as kubelet's SyncPod does: set while a container
// runs with other values than allocated (reason Error and the error's
// text when the resize failed; it is tried again after resizeRetry),
// cleared with a ResizeCompleted event once they match. It reports
// whether it changed containers, whose status must then be read again,
// and when to try again.
func (a *Agent) syncResize(ctx context.Context, pod *v1.Pod, st *podState, latest map[string]*runtime.ContainerStatus) (bool, time.Duration) {
	logger := klog.FromContext(ctx)
	rs := &st.resize
	if now := a.cfg.Clock.Now(); now.Before(rs.retryAt) {
		return false, rs.retryAt.Sub(now)
	}
	changed, err := a.resizePod(ctx, pod, st, latest)
	if err != nil {
		logger.Error(err, "Pod resize failed", "pod", klog.KObj(pod))
		old := rs.inProgress
		gen := pod.Generation
		if old != nil {
			gen = old.ObservedGeneration
		}
		rs.inProgress = resizeCondition(v1.PodResizeInProgress, old, v1.PodReasonError, err.Error(), gen, a.cfg.Clock.Now())
		if rs.inProgress != old {
			a.record(pod, v1.EventTypeWarning, events.ResizeError, "%s", events.PodResizeErrorMsg(logger, pod, gen, err.Error()))
		}
		rs.retryAt = a.cfg.Clock.Now().Add(resizeRetry)
		return changed, resizeRetry
	}
	rs.retryAt = time.Time{}
	if resizeInProgress(pod, st, latest) {
		if rs.inProgress == nil {
			rs.inProgress = resizeCondition(v1.PodResizeInProgress, nil, "", "", pod.Generation, a.cfg.Clock.Now())
		}
		return changed, 0
	}
	if rs.inProgress != nil {
		gen := rs.inProgress.ObservedGeneration
		rs.inProgress = nil
		a.record(pod, v1.EventTypeNormal, events.ResizeCompleted, "%s", events.PodResizeCompletedMsg(logger, pod, gen))
	}
	return changed, 0
}
