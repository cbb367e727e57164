package agent

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/kubernetes/pkg/apis/core/v1/helper/qos"

	"github.com/pocketkube/pocketkube/internal/node/kubeletapi"
	"github.com/pocketkube/pocketkube/internal/node/runtime"
)

// containerIDPrefix makes status.containerStatuses[].containerID, as
// kubelet prefixes the CRI runtime's name.
const containerIDPrefix = "runc://"

// podStatus is kubelet's generateAPIPodStatus for what the runtime
// reports: phase, conditions, IPs and container statuses. initDone says
// whether every init container has succeeded.
func (a *Agent) podStatus(pod *v1.Pod, st *podState, containers []*runtime.ContainerStatus, initDone bool) *v1.PodStatus {
	latest := latestByName(containers)
	s := &v1.PodStatus{
		HostIP:    a.hostIPs()[0],
		StartTime: &st.startTime,
		QOSClass:  qos.GetPodQOS(pod),
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
	if len(pod.Spec.InitContainers) == 0 {
		initDone = true
	}
	for i := range pod.Spec.InitContainers {
		c := &pod.Spec.InitContainers[i]
		s.InitContainerStatuses = append(s.InitContainerStatuses, a.containerStatus(pod, c, st, containers, latest[c.Name], reasonContainerCreating))
	}
	appWaiting := reasonContainerCreating
	if !initDone {
		appWaiting = reasonPodInitializing
	}
	for i := range pod.Spec.Containers {
		c := &pod.Spec.Containers[i]
		s.ContainerStatuses = append(s.ContainerStatuses, a.containerStatus(pod, c, st, containers, latest[c.Name], appWaiting))
	}
	s.Phase = podPhase(pod, s, initDone)
	s.Conditions = podConditions(pod, s, st, initDone, a.cfg.Clock.Now())
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
	switch cs.State {
	case runtime.StateRunning:
		out.State.Running = &v1.ContainerStateRunning{StartedAt: metav1.NewTime(cs.StartedAt)}
		out.Ready, *out.Started = true, true
		if a.prober != nil {
			uid := string(pod.UID)
			*out.Started = a.prober.Started(uid, c.Name)
			out.Ready = *out.Started && a.prober.Ready(uid, c.Name)
		}
	case runtime.StateExited:
		t := terminated(cs)
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
	return out
}

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

// podPhase is kubelet's getPhase (pkg/kubelet/kubelet_pods.go) without
// sidecar containers.
func podPhase(pod *v1.Pod, s *v1.PodStatus, initDone bool) v1.PodPhase {
	if !initDone {
		for _, cs := range s.InitContainerStatuses {
			if t := cs.State.Terminated; t != nil && t.ExitCode != 0 && pod.Spec.RestartPolicy == v1.RestartPolicyNever {
				return v1.PodFailed
			}
		}
		return v1.PodPending
	}
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
		case cs.State.Waiting != nil:
			if cs.LastTerminationState.Terminated != nil {
				stopped++
			} else {
				waiting++
			}
		}
	}
	switch {
	case waiting > 0:
		return v1.PodPending
	case running > 0:
		return v1.PodRunning
	case stopped > 0:
		switch pod.Spec.RestartPolicy {
		case v1.RestartPolicyAlways:
			return v1.PodRunning
		case v1.RestartPolicyOnFailure:
			if stopped == succeeded {
				return v1.PodSucceeded
			}
			return v1.PodRunning
		}
		if stopped == succeeded {
			return v1.PodSucceeded
		}
		return v1.PodFailed
	}
	return v1.PodPending
}

// podConditions is kubelet's pkg/kubelet/status/generate.go: the
// conditions the kubelet owns, keeping the scheduler's and others', with
// transition times kept while a condition's status does not change.
func podConditions(pod *v1.Pod, s *v1.PodStatus, st *podState, initDone bool, now time.Time) []v1.PodCondition {
	t := metav1.NewTime(now)
	cond := func(typ v1.PodConditionType, ok bool, reason, message string) v1.PodCondition {
		c := v1.PodCondition{Type: typ, Status: v1.ConditionFalse, Reason: reason, Message: message, LastTransitionTime: t}
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
	var notInit, notReady []string
	for _, cs := range s.InitContainerStatuses {
		if cs.State.Terminated == nil || cs.State.Terminated.ExitCode != 0 {
			notInit = append(notInit, cs.Name)
		}
	}
	for _, cs := range s.ContainerStatuses {
		if !cs.Ready {
			notReady = append(notReady, cs.Name)
		}
	}
	initialized := cond(v1.PodInitialized, initDone, "ContainersNotInitialized", fmt.Sprintf("containers with incomplete status: [%s]", strings.Join(notInit, " ")))
	containersReady := cond(v1.ContainersReady, len(notReady) == 0, "ContainersNotReady", fmt.Sprintf("containers with unready status: [%s]", strings.Join(notReady, " ")))
	ready := cond(v1.PodReady, len(notReady) == 0, "ContainersNotReady", fmt.Sprintf("containers with unready status: [%s]", strings.Join(notReady, " ")))
	if completed {
		initialized.Reason = "PodCompleted"
		for _, c := range []*v1.PodCondition{&containersReady, &ready} {
			c.Status, c.Reason, c.Message = v1.ConditionFalse, "PodCompleted", ""
		}
	}
	conditions := []v1.PodCondition{
		cond(v1.PodReadyToStartContainers, st.sandbox && !st.terminated && !completed && s.Phase != v1.PodFailed, "", ""),
		initialized, ready, containersReady,
	}
	owned := []v1.PodConditionType{v1.PodReadyToStartContainers, v1.PodInitialized, v1.PodReady, v1.ContainersReady}
	var out []v1.PodCondition
	for _, old := range pod.Status.Conditions {
		if !slices.Contains(owned, old.Type) {
			out = append(out, old)
		}
	}
	return append(out, conditions...)
}
