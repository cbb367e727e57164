package framework

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
)

// PodTimeout bounds the waits for a pod (and a namespace's default
// service account) to get where a test wants it.
const PodTimeout = 60 * time.Second

// NewNamespace creates a namespace of its own for a test (name prefix
// plus random suffix), waits for its default service account, and deletes
// it, with its pods, when the test ends.
func NewNamespace(t testing.TB, c kubernetes.Interface, prefix string) string {
	t.Helper()
	ctx := t.Context()
	ns, err := c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{GenerateName: prefix},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	t.Cleanup(func() {
		// t.Context() is canceled before cleanups run.
		c.CoreV1().Namespaces().Delete(context.Background(), ns.Name, metav1.DeleteOptions{})
	})
	err = wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, PodTimeout, true, func(ctx context.Context) (bool, error) {
		_, err := c.CoreV1().ServiceAccounts(ns.Name).Get(ctx, "default", metav1.GetOptions{})
		return err == nil, nil
	})
	if err != nil {
		t.Fatalf("no default service account in %s: %v", ns.Name, err)
	}
	return ns.Name
}

// CreatePod creates pod and deletes it (without grace) when the test ends.
func CreatePod(t testing.TB, c kubernetes.Interface, pod *corev1.Pod) *corev1.Pod {
	t.Helper()
	created, err := c.CoreV1().Pods(pod.Namespace).Create(t.Context(), pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create pod %s: %v", pod.Name, err)
	}
	t.Cleanup(func() {
		c.CoreV1().Pods(pod.Namespace).Delete(context.Background(), pod.Name, metav1.DeleteOptions{GracePeriodSeconds: new(int64)})
	})
	return created
}

// WaitPodIn polls pod ns/name until cond says done; cond's error stops the
// wait at once (as gomega.StopTrying does upstream).
func WaitPodIn(ctx context.Context, c kubernetes.Interface, ns, name string, timeout time.Duration, cond func(*corev1.Pod) (bool, error)) (*corev1.Pod, error) {
	var pod *corev1.Pod
	var condErr error
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		p, err := c.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		pod = p
		done, err := cond(p)
		condErr = err
		return done || err != nil, nil
	})
	if condErr != nil {
		return pod, condErr
	}
	if err != nil {
		return pod, fmt.Errorf("pod %s/%s: %w; status: %s", ns, name, err, PodStatus(pod))
	}
	return pod, nil
}

// PodLogs returns the logs of a container of pod ns/pod.
func PodLogs(ctx context.Context, c kubernetes.Interface, ns, pod, container string) (string, error) {
	b, err := c.CoreV1().Pods(ns).GetLogs(pod, &corev1.PodLogOptions{Container: container}).DoRaw(ctx)
	return string(b), err
}

// RunPods creates pods (their namespace deletes them at the end) and waits
// until each runs and is ready; it returns them as they are then.
func RunPods(t testing.TB, c kubernetes.Interface, pods ...*corev1.Pod) map[string]*corev1.Pod {
	t.Helper()
	ctx := t.Context()
	for _, p := range pods {
		if _, err := c.CoreV1().Pods(p.Namespace).Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create pod %s/%s: %v", p.Namespace, p.Name, err)
		}
	}
	got := map[string]*corev1.Pod{}
	for _, p := range pods {
		last, err := WaitPodIn(ctx, c, p.Namespace, p.Name, PodTimeout, func(q *corev1.Pod) (bool, error) { return Running(q), nil })
		if err != nil {
			t.Fatalf("pod %s/%s not running and ready: %v", p.Namespace, p.Name, err)
		}
		got[p.Name] = last
	}
	return got
}

// Running reports whether the pod runs and is Ready.
func Running(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
			return p.Status.Phase == corev1.PodRunning
		}
	}
	return false
}

// Ready reports whether the pod's Ready condition is true.
func Ready(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// PodStatus describes the pod's phase and container states in one line,
// for failure messages.
func PodStatus(p *corev1.Pod) string {
	if p == nil {
		return "<none>"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "phase=%s", p.Status.Phase)
	for _, list := range [][]corev1.ContainerStatus{p.Status.InitContainerStatuses, p.Status.ContainerStatuses} {
		for _, cs := range list {
			fmt.Fprintf(&b, " %s{restarts=%d", cs.Name, cs.RestartCount)
			if w := cs.State.Waiting; w != nil {
				fmt.Fprintf(&b, " waiting=%s:%q", w.Reason, w.Message)
			}
			if r := cs.State.Running; r != nil {
				b.WriteString(" running")
			}
			if x := cs.State.Terminated; x != nil {
				fmt.Fprintf(&b, " terminated=%s:%d", x.Reason, x.ExitCode)
			}
			b.WriteString("}")
		}
	}
	return b.String()
}
