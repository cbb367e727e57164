package agent

import (
	"context"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"

	"github.com/pocketkube/pocketkube/internal/node/runtime"
)

// Kubelet's activeDeadlineHandler (pkg/kubelet/active_deadline.go): its
// event and the pod's status reason and message.
const (
	reasonDeadlineExceeded  = "DeadlineExceeded"
	messageDeadlineExceeded = "Pod was active on the node longer than the specified deadline"
)

// untilDeadline is kubelet's pastActiveDeadline: whether the pod has been
// active on the node (since status.startTime) for its
// activeDeadlineSeconds, and if not, how long until it has (0 without a
// deadline). The deadline may change while the pod runs: each sync reads
// it from the spec.
func (a *Agent) untilDeadline(pod *v1.Pod, st *podState) (exceeded bool, left time.Duration) {
	if pod.Spec.ActiveDeadlineSeconds == nil || st.startTime.IsZero() {
		return false, 0
	}
	left = st.startTime.Add(time.Duration(*pod.Spec.ActiveDeadlineSeconds) * time.Second).Sub(a.cfg.Clock.Now())
	if left <= 0 {
		return true, 0
	}
	return false, left
}

// failPastDeadline ends a pod past its active deadline as kubelet does:
// the DeadlineExceeded event, its containers stopped (app containers
// before sidecars), and the phase Failed with kubelet's reason and
// message. Its sandbox is released on the next sync, as for any pod that
// failed.
func (a *Agent) failPastDeadline(ctx context.Context, pod *v1.Pod, st *podState) error {
	klog.FromContext(ctx).V(2).Info("Pod past its active deadline", "pod", klog.KObj(pod))
	a.record(pod, v1.EventTypeNormal, reasonDeadlineExceeded, "%s", messageDeadlineExceeded)
	containers, err := a.cfg.Runtime.ListContainers(ctx, string(pod.UID))
	if err != nil {
		return err
	}
	var running []string
	for _, c := range containers {
		if c.State == runtime.StateRunning {
			running = append(running, c.Name)
		}
	}
	var order *terminationOrder
	if hasSidecars(pod) {
		order = newTerminationOrder(pod, running)
	}
	errc := make(chan error, len(containers))
	n := 0
	for _, c := range containers {
		if c.State != runtime.StateRunning {
			continue
		}
		n++
		go func() { errc <- a.stopInTurn(ctx, pod, specContainer(pod, c.Name), c.ID, gracePeriod(pod), order) }()
	}
	for range n {
		if err := <-errc; err != nil {
			return err
		}
	}
	if containers, err = a.cfg.Runtime.ListContainers(ctx, string(pod.UID)); err != nil {
		return err
	}
	status := a.podStatus(pod, st, containers)
	status.Phase, status.Reason, status.Message = v1.PodFailed, reasonDeadlineExceeded, messageDeadlineExceeded
	status.Conditions = podConditions(pod, status, st, a.cfg.Clock.Now())
	return a.writeStatus(ctx, pod, status)
}
