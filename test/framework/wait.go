package framework

import (
	"context"
	"errors"
	"os/exec"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
)

// WaitPod polls pod ns/name until cond holds and returns it; it fails t
// after PodTimeout, saying the pod never was what (e.g. "Running").
func WaitPod(t testing.TB, c kubernetes.Interface, ns, name, what string, cond func(*corev1.Pod) bool) *corev1.Pod {
	t.Helper()
	pod, err := WaitPodIn(t.Context(), c, ns, name, PodTimeout, func(p *corev1.Pod) (bool, error) { return cond(p), nil })
	if err != nil {
		t.Fatalf("pod %s never %s: %v", name, what, err)
	}
	return pod
}

// PollEvents lists the events in namespace ns that fieldSelector selects
// until done says they hold what the caller waits for, or timeout passes
// (the error). It returns the last list it read, for failure messages.
func PollEvents(ctx context.Context, c kubernetes.Interface, ns, fieldSelector string, timeout time.Duration, done func([]corev1.Event) bool) ([]corev1.Event, error) {
	var last []corev1.Event
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		list, err := c.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: fieldSelector})
		if err != nil {
			return false, nil
		}
		last = list.Items
		return done(last), nil
	})
	return last, err
}

// PhaseIs is a WaitPod condition: the pod is in phase ph.
func PhaseIs(ph corev1.PodPhase) func(*corev1.Pod) bool {
	return func(p *corev1.Pod) bool { return p.Status.Phase == ph }
}

// WaitServiceAccount waits for the default service account of ns:
// ServiceAccount admission refuses pods until the controller manager made
// it, as on a new cluster.
func WaitServiceAccount(t testing.TB, c kubernetes.Interface, ns string) {
	t.Helper()
	err := wait.PollUntilContextTimeout(t.Context(), 50*time.Millisecond, PodTimeout, true, func(ctx context.Context) (bool, error) {
		_, err := c.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{})
		return err == nil, nil
	})
	if err != nil {
		t.Fatalf("no default service account: %v", err)
	}
}

// WaitGone waits until pod ns/name no longer exists. It may run in a
// cleanup, where t.Context() is already canceled.
func WaitGone(t testing.TB, c kubernetes.Interface, ns, name string) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, PodTimeout, true, func(ctx context.Context) (bool, error) {
		_, err := c.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
	if err != nil {
		t.Fatalf("pod %s/%s not deleted: %v", ns, name, err)
	}
}

// UpdatePod applies change to pod ns/name and writes it back, retrying on
// conflicts.
func UpdatePod(ctx context.Context, c kubernetes.Interface, ns, name string, change func(*corev1.Pod)) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		p, err := c.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		change(p)
		_, err = c.CoreV1().Pods(ns).Update(ctx, p, metav1.UpdateOptions{})
		return err
	})
}

// WaitPodLogs polls the logs of the pod's only container until done says
// so, or the pod has terminated, and returns them with the pod.
func WaitPodLogs(t testing.TB, c kubernetes.Interface, ns, name string, timeout time.Duration, done func(logs string) bool) (string, *corev1.Pod) {
	t.Helper()
	var logs string
	var pod *corev1.Pod
	err := wait.PollUntilContextTimeout(t.Context(), 200*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		p, err := c.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		pod = p
		b, err := c.CoreV1().Pods(ns).GetLogs(name, &corev1.PodLogOptions{}).DoRaw(ctx)
		if err == nil {
			logs = string(b)
		}
		// The logs were read after the phase: once it is final, they are whole.
		finished := p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed
		return (finished && err == nil) || (err == nil && done(logs)), nil
	})
	if err != nil {
		t.Fatalf("pod %s/%s: %v; status: %s\nlogs:\n%s", ns, name, err, PodStatus(pod), logs)
	}
	return logs, pod
}

// ExitCode is the exit code of the command that err comes from
// (*exec.ExitError), or -1 when err is nil or not an exit.
func ExitCode(err error) int {
	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		return -1
	}
	return exit.ExitCode()
}
