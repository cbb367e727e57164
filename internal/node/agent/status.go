package agent

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	podutil "k8s.io/kubernetes/pkg/api/v1/pod"
	"k8s.io/kubernetes/pkg/apis/core/v1/helper/qos"

	"github.com/pocketkube/pocketkube/internal/node/kubeletapi"
	"github.com/pocketkube/pocketkube/internal/node/runtime"
)

// containerIDPrefix makes status.containerStatuses[].containerID, as
// kubelet prefixes the CRI runtime's name.
const containerIDPrefix = "runc://"

// podStatus is kubelet's generateAPIPodStatus for what the runtime
// reports: phase, conditions, IPs and container statuses.
func (a *Agent) podStatus(pod *v1.Pod, st *podState, containers []*runtime.ContainerStatus) *v1.PodStatus {
	latest := latestByName(containers)
	// observedGeneration is the pod's generation this status answers
	// (PodObservedGenerationTracking, GA and always on in kubelet 1.35+).
	s := &v1.PodStatus{
		ObservedGeneration: pod.Generation,
		HostIP:             a.hostIPs()[0],
		StartTime:          &st.startTime,
		QOSClass:           qos.GetPodQOS(pod),
	}
	for _, ip := range a.hostIPs() {
		s.HostIPs = append(s.HostIPs, v1.HostIP{IP: ip})
	}
	if len(st.podIPs) > 0 {
		s.PodIP = st.podIPs[0]
		for _, ip := range st.podIPs {
			s.PodIPs = append(s.PodIPs, v1.PodIP{IP: ip})
		}
	}
	// Kubelet's default waiting reason, for init and app containers
	// alike, is PodInitializing in a pod with init containers.
	waiting := reasonContainerCreating
	if len(pod.Spec.InitContainers) > 0 {
		waiting = reasonPodInitializing
	}
	for i := range pod.Spec.InitContainers {
		c := &pod.Spec.InitContainers[i]
		s.InitContainerStatuses = append(s.InitContainerStatuses, a.containerStatus(pod, c, st, containers, latest[c.Name], waiting))
	}
	for i := range pod.Spec.Containers {
		c := &pod.Spec.Containers[i]
		s.ContainerStatuses = append(s.ContainerStatuses, a.containerStatus(pod, c, st, containers, latest[c.Name], waiting))
	}
	// As kubelet: ephemeral containers have no probes, so they are
	// never ready and their started stays unset; they count neither
	// for the phase nor for the conditions.
	for i := range pod.Spec.EphemeralContainers {
		c := ephemeralContainer(&pod.Spec.EphemeralContainers[i])
		cs := a.containerStatus(pod, c, st, containers, latest[c.Name], waiting)
		cs.Ready, cs.Started = false, nil
		if latest[c.Name] == nil {
			cs = ephemeralGone(pod, cs)
		}
		s.EphemeralContainerStatuses = append(s.EphemeralContainerStatuses, cs)
	}
	s.Phase = podPhase(pod, s, appContainerStarted(pod, latest))
	s.Conditions = podConditions(pod, s, st, a.cfg.Clock.Now())
	return s
}

// containerStatus is kubelet's convertToAPIContainerStatuses for one
// container: the latest attempt's state, the previous one as lastState.
func (a *Agent) containerStatus(pod *v1.Pod, c *v1.Container, st *podState, all []*runtime.ContainerStatus, cs *runtime.ContainerStatus, defaultWaiting string) v1.ContainerStatus {
	out := v1.ContainerStatus{Name: c.Name, Image: c.Image, Started: new(bool)}
	if cs == nil {
		w := v1.ContainerStateWaiting{Reason: defaultWaiting}
		if sw, ok := st.waiting[c.Name]; ok {
			w = sw
		}
		out.State.Waiting = &w
		return out
	}
	out.RestartCount = int32(cs.Attempt)
	out.ContainerID = containerIDPrefix + cs.ID
	out.Image = cs.Image
	out.ImageID = cs.Labels[labelImageRef]
	// As kubelet's prober manager (UpdatePodStatus): an init container
	// that is not a sidecar is never probed; it is started while it runs
	// and ready once it succeeded.
	regularInit := isInitContainer(pod, c) && !isSidecar(c)
	switch cs.State {
	case runtime.StateRunning:
		out.State.Running = &v1.ContainerStateRunning{StartedAt: metav1.NewTime(cs.StartedAt)}
		out.Ready, *out.Started = !regularInit, true
		if a.prober != nil && !regularInit {
			uid := string(pod.UID)
			*out.Started = a.prober.Started(uid, c.Name)
			out.Ready = *out.Started && a.prober.Ready(uid, c.Name)
		}
	case runtime.StateExited:
		t := terminated(cs)
		out.Ready = regularInit && t.ExitCode == 0
		if c.TerminationMessagePolicy == v1.TerminationMessageFallbackToLogsOnError && t.ExitCode != 0 && t.Message == "" {
			t.Message = lastLogs(cs.LogPath)
		}
		if w, ok := st.waiting[c.Name]; ok && (w.Reason == reasonCrashLoopBackOff || w.Reason == reasonRunContainerError) {
			out.State.Waiting = &w
			out.LastTerminationState.Terminated = t
		} else {
			out.State.Terminated = t
		}
	default:
		w := v1.ContainerStateWaiting{Reason: reasonContainerCreating}
		if sw, ok := st.waiting[c.Name]; ok {
			w = sw
		}
		out.State.Waiting = &w
	}
	if out.LastTerminationState.Terminated == nil {
		if prev := previousOf(all, c.Name, cs.Attempt); prev != nil {
			out.LastTerminationState.Terminated = terminated(prev)
		}
	}
	if !isEphemeral(pod, c.Name) {
		// As kubelet (InPlacePodVerticalScaling, GA): what the cgroups
		// have, and what the node allocated (pod is the allocated pod).
		var memRequest *resource.Quantity
		if act, ok := st.resize.actuated[c.Name]; ok {
			if q, ok := act.Requests[v1.ResourceMemory]; ok && !q.IsZero() {
				memRequest = &q
			}
		}
		out.Resources = statusResources(pod, c, cs, &out, memRequest)
		out.AllocatedResources = c.Resources.Requests
	}
	return out
}

// statusResources is kubelet's convertContainerStatusResources: the
// allocated resources of c, with the limits and the CPU request a running
// container's cgroups have (as the CRI reports them: milli-CPU from the
// quota and from the shares, the memory limit in bytes). Values at or below
// the smallest the cgroups can hold (10m of quota, 2 shares) stay as
// allocated, so an allocation of 1m or 5m reads back as it was asked.
// The memory request, which no cgroup holds, is the one the container was
// last given (memRequest; kubelet's actuated resources).
func statusResources(pod *v1.Pod, c *v1.Container, cs *runtime.ContainerStatus, status *v1.ContainerStatus, memRequest *resource.Quantity) *v1.ResourceRequirements {
	res := c.Resources.DeepCopy()
	if cs.State != runtime.StateRunning {
		return res
	}
	var old *v1.ContainerStatus
	for _, list := range [][]v1.ContainerStatus{pod.Status.InitContainerStatuses, pod.Status.ContainerStatuses} {
		for i := range list {
			if list[i].Name == c.Name {
				old = &list[i]
			}
		}
	}
	// A value the runtime does not report stays what the running
	// container reported before.
	preserve := func(name v1.ResourceName, oldList func(*v1.ResourceRequirements) v1.ResourceList, list v1.ResourceList) {
		if old == nil || old.State.Running == nil || old.ContainerID != status.ContainerID || old.Resources == nil {
			return
		}
		if q, ok := oldList(old.Resources)[name]; ok {
			list[name] = q.DeepCopy()
		}
	}
	limits := func(r *v1.ResourceRequirements) v1.ResourceList { return r.Limits }
	requests := func(r *v1.ResourceRequirements) v1.ResourceList { return r.Requests }
	actual := cs.Resources
	if res.Limits != nil {
		var milli int64
		if actual != nil && actual.CPUPeriod > 0 {
			milli = runtime.QuotaToMilliCPU(actual.CPUQuota, int64(actual.CPUPeriod))
		}
		if milli > 0 {
			if milli > minMilliCPULimit || res.Limits.Cpu().MilliValue() > minMilliCPULimit {
				res.Limits[v1.ResourceCPU] = *resource.NewMilliQuantity(milli, resource.DecimalSI)
			}
		} else {
			preserve(v1.ResourceCPU, limits, res.Limits)
		}
		if actual != nil && actual.MemoryLimit > 0 {
			res.Limits[v1.ResourceMemory] = *resource.NewQuantity(actual.MemoryLimit, resource.BinarySI)
		} else {
			preserve(v1.ResourceMemory, limits, res.Limits)
		}
	}
	if res.Requests != nil {
		var milli int64
		if actual != nil && actual.CPUShares > 0 {
			milli = runtime.SharesToMilliCPU(int64(actual.CPUShares))
		}
		if milli > 0 {
			if milli > minShares || res.Requests.Cpu().MilliValue() > minShares {
				res.Requests[v1.ResourceCPU] = *resource.NewMilliQuantity(milli, resource.DecimalSI)
			}
		} else {
			preserve(v1.ResourceCPU, requests, res.Requests)
		}
		if memRequest != nil {
			res.Requests[v1.ResourceMemory] = memRequest.DeepCopy()
		} else {
			preserve(v1.ResourceMemory, requests, res.Requests)
		}
	}
	return res
}

// Kubelet's pkg/kubelet/cm MinMilliCPULimit and MinShares.
const (
	minMilliCPULimit = 10
	minShares        = 2
)

// Kubelet's limits on a termination message taken from the logs
// (FallbackToLogsOnError).
const (
	terminationLogLines = 80
	terminationLogBytes = 2048
)

// lastLogs is kubelet's readLastStringFromContainerLogs: the last 80 lines
// of the container's log, at most the last 2 KiB of them.
func lastLogs(path string) string {
	var buf bytes.Buffer
	lines := int64(terminationLogLines)
	err := kubeletapi.ReadLogs(context.Background(), path, &v1.PodLogOptions{TailLines: &lines}, func() bool { return false }, time.Now(), &buf, &buf)
	if err != nil {
		return fmt.Sprintf("Error on reading termination message from logs: %v", err)
	}
	b := buf.Bytes()
	if len(b) > terminationLogBytes {
		b = b[len(b)-terminationLogBytes:]
	}
	return string(b)
}

func terminated(cs *runtime.ContainerStatus) *v1.ContainerStateTerminated {
	return &v1.ContainerStateTerminated{
		ExitCode:    cs.ExitCode,
		Reason:      cs.Reason,
		Message:     cs.Message,
		StartedAt:   metav1.NewTime(cs.StartedAt),
		FinishedAt:  metav1.NewTime(cs.FinishedAt),
		ContainerID: containerIDPrefix + cs.ID,
	}
}

// podPhase is kubelet's getPhase (pkg/kubelet/kubelet_pods.go) for a pod
// that is not terminating, with the pod's restartPolicy standing for each
// container's (ContainerRestartRules without container rules).
// initialized says whether an app container ran, so that a restarting
// sidecar does not put the pod back to Pending.
func podPhase(pod *v1.Pod, s *v1.PodStatus, initialized bool) v1.PodPhase {
	var pendingInit, pendingSidecars, failedInit int
	var unknown, running, waiting, stopped, succeeded int
	for i, cs := range s.InitContainerStatuses {
		c := &pod.Spec.InitContainers[i]
		if isSidecar(c) {
			switch {
			case cs.State.Running != nil:
				if cs.Started == nil || !*cs.Started {
					pendingSidecars++
				}
				running++
			case cs.State.Terminated != nil, cs.State.Waiting != nil && cs.LastTerminationState.Terminated != nil:
				// A stopped sidecar does not count for the phase.
			case cs.State.Waiting != nil:
				pendingSidecars++
				waiting++
			default:
				pendingSidecars++
				unknown++
			}
			continue
		}
		switch {
		case cs.State.Terminated != nil:
			if cs.State.Terminated.ExitCode != 0 {
				failedInit++
			}
		case cs.State.Waiting != nil && cs.LastTerminationState.Terminated != nil:
			if cs.LastTerminationState.Terminated.ExitCode != 0 {
				failedInit++
			}
		default:
			pendingInit++
		}
	}
	// notRestartable counts the stopped app containers their restart
	// policy (the container's, else the pod's: ContainerRestartRules,
	// beta and on in 1.37) does not start again.
	var notRestartable int
	for _, cs := range s.ContainerStatuses {
		var c v1.Container // unknown to the spec: the pod's policy
		if sc := specContainer(pod, cs.Name); sc != nil {
			c = *sc
		}
		switch {
		case cs.State.Running != nil:
			running++
		case cs.State.Terminated != nil:
			stopped++
			if !podutil.ContainerShouldRestart(c, pod.Spec, cs.State.Terminated.ExitCode) {
				notRestartable++
			}
			if cs.State.Terminated.ExitCode == 0 {
				succeeded++
			}
		case cs.State.Waiting != nil:
			if cs.LastTerminationState.Terminated != nil {
				stopped++
				if !podutil.ContainerShouldRestart(c, pod.Spec, cs.LastTerminationState.Terminated.ExitCode) {
					notRestartable++
				}
			} else {
				waiting++
			}
		default:
			unknown++
		}
	}
	if failedInit > 0 && pod.Spec.RestartPolicy == v1.RestartPolicyNever {
		return v1.PodFailed
	}
	switch {
	case pendingInit > 0 || (pendingSidecars > 0 && !initialized), waiting > 0:
		return v1.PodPending
	case running > 0 && unknown == 0:
		return v1.PodRunning
	case running == 0 && stopped > 0 && unknown == 0:
		// kubelet's getPhase with ContainerRestartRules: a container that
		// will start again keeps the pod Running.
		if stopped != notRestartable {
			return v1.PodRunning
		}
		if stopped == succeeded {
			return v1.PodSucceeded
		}
		return v1.PodFailed
	}
	return v1.PodPending
}

// readinessGatesNotReady is what GeneratePodReadyCondition (kubelet's
// status/generate.go) says of the pod's readiness gates whose condition,
// set by someone else in the pod's status, is missing or not True.
func readinessGatesNotReady(pod *v1.Pod) []string {
	var out []string
	for _, rg := range pod.Spec.ReadinessGates {
		_, c := podutil.GetPodConditionFromList(pod.Status.Conditions, rg.ConditionType)
		switch {
		case c == nil:
			out = append(out, fmt.Sprintf("corresponding condition of pod readiness gate %q does not exist.", string(rg.ConditionType)))
		case c.Status != v1.ConditionTrue:
			out = append(out, fmt.Sprintf("the status of pod readiness gate %q is not \"True\", but %v", string(rg.ConditionType), c.Status))
		}
	}
	return out
}

// terminalStatus turns the status of a pod whose containers were stopped
// for its deletion into its final one, as kubelet does: getPhase with
// podIsTerminal (stopped app containers give Succeeded or Failed whatever
// the restart policy), then its status manager's TerminatePod (once the pod
// initialized, a container with no terminated state ends as
// ContainerStatusUnknown, 137, as do the init containers that tried to
// start; a phase still Pending or Running becomes Failed). A phase that
// was terminal in the API stays as it was.
func terminalStatus(pod *v1.Pod, s *v1.PodStatus) {
	if pod.Status.Phase == v1.PodSucceeded || pod.Status.Phase == v1.PodFailed {
		s.Phase = pod.Status.Phase
		return
	}
	if s.Phase != v1.PodSucceeded && s.Phase != v1.PodFailed {
		var running, waiting, stopped, succeeded int
		for _, cs := range s.ContainerStatuses {
			switch {
			case cs.State.Running != nil:
				running++
			case cs.State.Terminated != nil:
				stopped++
				if cs.State.Terminated.ExitCode == 0 {
					succeeded++
				}
			case cs.LastTerminationState.Terminated != nil:
				stopped++
			default:
				waiting++
			}
		}
		if running == 0 && waiting == 0 && stopped > 0 {
			s.Phase = v1.PodFailed
			if stopped == succeeded {
				s.Phase = v1.PodSucceeded
			}
		}
	}
	unknown := v1.ContainerState{Terminated: &v1.ContainerStateTerminated{
		Reason:   "ContainerStatusUnknown",
		Message:  "The container could not be located when the pod was terminated",
		ExitCode: 137,
	}}
	if podInitialized(pod) {
		for i := range s.ContainerStatuses {
			if s.ContainerStatuses[i].State.Terminated == nil {
				s.ContainerStatuses[i].State = unknown
			}
		}
	}
	inits := s.InitContainerStatuses
	for i := len(inits) - 1; i >= 0; i-- {
		if inits[i].State.Waiting == nil || inits[i].LastTerminationState.Terminated != nil || i == 0 {
			for j := 0; j <= i; j++ {
				if inits[j].State.Terminated == nil {
					inits[j].State = unknown
				}
			}
			break
		}
	}
	if s.Phase != v1.PodSucceeded && s.Phase != v1.PodFailed {
		s.Phase = v1.PodFailed
	}
}

// podInitialized is the status manager's hasPodInitialized: whether the
// pod's API status shows a regular container out of waiting, or its last
// init container done (a sidecar: started).
func podInitialized(pod *v1.Pod) bool {
	if len(pod.Spec.InitContainers) == 0 {
		return true
	}
	for _, cs := range pod.Status.ContainerStatuses {
		if cs.LastTerminationState.Terminated != nil || cs.State.Waiting == nil {
			return true
		}
	}
	l := len(pod.Status.InitContainerStatuses)
	if l == 0 || l > len(pod.Spec.InitContainers) {
		return false
	}
	cs := pod.Status.InitContainerStatuses[l-1]
	if isSidecar(&pod.Spec.InitContainers[l-1]) {
		return cs.State.Running != nil && cs.Started != nil && *cs.Started
	}
	for _, t := range []*v1.ContainerStateTerminated{cs.LastTerminationState.Terminated, cs.State.Terminated} {
		if t != nil && t.ExitCode == 0 {
			return true
		}
	}
	return false
}

func isInitContainer(pod *v1.Pod, c *v1.Container) bool {
	for i := range pod.Spec.InitContainers {
		if &pod.Spec.InitContainers[i] == c || pod.Spec.InitContainers[i].Name == c.Name {
			return true
		}
	}
	return false
}

// podConditions is kubelet's pkg/kubelet/status/generate.go: the
// conditions the kubelet owns, keeping the scheduler's and others', with
// transition times kept while a condition's status does not change.
func podConditions(pod *v1.Pod, s *v1.PodStatus, st *podState, now time.Time) []v1.PodCondition {
	t := metav1.NewTime(now)
	cond := func(typ v1.PodConditionType, ok bool, reason, message string) v1.PodCondition {
		c := v1.PodCondition{Type: typ, ObservedGeneration: pod.Generation, Status: v1.ConditionFalse, Reason: reason, Message: message, LastTransitionTime: t}
		if ok {
			c.Status, c.Reason, c.Message = v1.ConditionTrue, "", ""
		}
		for _, old := range pod.Status.Conditions {
			if old.Type == typ && old.Status == c.Status {
				c.LastTransitionTime = old.LastTransitionTime
			}
		}
		return c
	}
	completed := s.Phase == v1.PodSucceeded
	// As generate.go: sidecars count for readiness; an init container is
	// done when it succeeded (ready), a sidecar once it started.
	var notInit, notReady []string
	appStarted := false
	for i, cs := range s.InitContainerStatuses {
		sidecar := isSidecar(&pod.Spec.InitContainers[i])
		if sidecar && !cs.Ready {
			notReady = append(notReady, cs.Name)
		}
		if (sidecar && (cs.Started == nil || !*cs.Started)) || (!sidecar && !cs.Ready) {
			notInit = append(notInit, cs.Name)
		}
	}
	for _, cs := range s.ContainerStatuses {
		if !cs.Ready {
			notReady = append(notReady, cs.Name)
		}
		if cs.State.Running != nil || cs.State.Terminated != nil {
			appStarted = true
		}
	}
	initialized := cond(v1.PodInitialized, appStarted || len(notInit) == 0, "ContainersNotInitialized", fmt.Sprintf("containers with incomplete status: [%s]", strings.Join(notInit, " ")))
	containersReady := cond(v1.ContainersReady, len(notReady) == 0, "ContainersNotReady", fmt.Sprintf("containers with unready status: [%s]", strings.Join(notReady, " ")))
	ready := cond(v1.PodReady, len(notReady) == 0, "ContainersNotReady", fmt.Sprintf("containers with unready status: [%s]", strings.Join(notReady, " ")))
	if len(notReady) == 0 {
		if unready := readinessGatesNotReady(pod); len(unready) > 0 {
			ready = cond(v1.PodReady, false, "ReadinessGatesNotReady", strings.Join(unready, ", "))
		}
	}
	if completed {
		initialized = cond(v1.PodInitialized, true, "", "")
		initialized.Reason = "PodCompleted"
	}
	if completed || s.Phase == v1.PodFailed {
		reason := "PodCompleted"
		if s.Phase == v1.PodFailed {
			reason = "PodFailed"
		}
		for _, c := range []*v1.PodCondition{&containersReady, &ready} {
			*c = cond(c.Type, false, reason, "")
		}
	}
	// Kubelet writes PodScheduled too (True: the pod is on its node), so
	// that its observedGeneration follows the pod's.
	conditions := []v1.PodCondition{
		cond(v1.PodReadyToStartContainers, st.sandbox && !st.terminated && !completed && s.Phase != v1.PodFailed, "", ""),
		initialized, ready, containersReady,
		cond(v1.PodScheduled, true, "", ""),
	}
	// As kubelet's status manager, the resize conditions are the ones
	// the allocation and the resize left, not derived from the status.
	for _, c := range []*v1.PodCondition{st.resize.pending, st.resize.inProgress} {
		if c != nil {
			conditions = append(conditions, *c)
		}
	}
	var out []v1.PodCondition
	for _, old := range pod.Status.Conditions {
		if !slices.Contains(ownedConditions, old.Type) {
			out = append(out, old)
		}
	}
	return append(out, conditions...)
}

// ownedConditions are the pod conditions the agent computes; the others
// (DisruptionTarget, readiness gates' …) belong to other writers.
var ownedConditions = []v1.PodConditionType{v1.PodReadyToStartContainers, v1.PodInitialized, v1.PodReady, v1.ContainersReady, v1.PodScheduled,
	v1.PodResizePending, v1.PodResizeInProgress}

// ephemeralGone is the status of an ephemeral container the runtime no
// longer has (its pod is being deleted, or the node lost it): the API
// refuses an ephemeral container that goes back from running or
// terminated to waiting. As kubelet's convertToAPIContainerStatuses, a
// terminated status stays as it was; as its status manager for a pod
// that terminates, a running one ends with ContainerStatusUnknown.
func ephemeralGone(pod *v1.Pod, cs v1.ContainerStatus) v1.ContainerStatus {
	for _, old := range pod.Status.EphemeralContainerStatuses {
		if old.Name != cs.Name {
			continue
		}
		switch {
		case old.State.Terminated != nil:
			return old
		case old.State.Running != nil:
			old.State = v1.ContainerState{Terminated: &v1.ContainerStateTerminated{
				Reason:   "ContainerStatusUnknown",
				Message:  "The container could not be located when the pod was terminated",
				ExitCode: 137,
			}}
			return old
		}
	}
	return cs
}
