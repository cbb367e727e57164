package agent

import (
	"context"
	"fmt"

	v1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/tools/reference"
)

// record records an event about the pod, as kubelet does.
func (a *Agent) record(pod *v1.Pod, eventType, reason, format string, args ...any) {
	if a.recorder == nil {
		return
	}
	if a.hold(pod.UID, func() { a.recorder.Eventf(pod, eventType, reason, format, args...) }) {
		return
	}
	a.recorder.Eventf(pod, eventType, reason, format, args...)
}

// recordContainer records an event about one container of the pod, with
// the fieldPath kubelet's GenerateContainerRef gives it.
func (a *Agent) recordContainer(pod *v1.Pod, c *v1.Container, eventType, reason, format string, args ...any) {
	if a.recorder == nil {
		return
	}
	ref, err := reference.GetReference(scheme.Scheme, pod)
	if err != nil {
		return
	}
	ref.FieldPath = containerFieldPath(pod, c)
	if a.hold(pod.UID, func() { a.recorder.Eventf(ref, eventType, reason, format, args...) }) {
		return
	}
	a.recorder.Eventf(ref, eventType, reason, format, args...)
}

func containerFieldPath(pod *v1.Pod, c *v1.Container) string {
	for i := range pod.Spec.InitContainers {
		if pod.Spec.InitContainers[i].Name == c.Name {
			return fmt.Sprintf("spec.initContainers{%s}", c.Name)
		}
	}
	return fmt.Sprintf("spec.containers{%s}", c.Name)
}

func newRecorder(ctx context.Context, client kubernetes.Interface, node string) (record.EventBroadcaster, record.EventRecorder) {
	b := record.NewBroadcaster(record.WithContext(ctx))
	b.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: client.CoreV1().Events("")})
	return b, b.NewRecorder(scheme.Scheme, v1.EventSource{Component: "kubelet", Host: node})
}
