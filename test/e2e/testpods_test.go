//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/pocketkube/pocketkube/test/framework"
)

// Pods and checks shared by the tests of mounts, resources, hostPorts,
// Service specs and the kubelet API: each test runs in a namespace of its
// own (framework.NewNamespace) with these busybox pods.

// busyboxSleeper is a pod whose container "main" sleeps, to exec in.
func busyboxSleeper(ns, name string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: corev1.PodSpec{
			TerminationGracePeriodSeconds: new(int64),
			Containers: []corev1.Container{{
				Name: "main", Image: "busybox", ImagePullPolicy: corev1.PullIfNotPresent,
				Command: []string{"sleep", "3600"},
			}},
		},
	}
}

// httpdPod is a pod labelled labels whose container "main" serves
// "NAME:PORT" with busybox httpd on each of ports, declared as container
// ports (named portNames[i] where given). It is ready once the first port
// is open.
func httpdPod(ns, name string, labels map[string]string, ports []int32, portNames ...string) *corev1.Pod {
	p := busyboxSleeper(ns, name)
	p.Labels = labels
	var script strings.Builder
	for i, port := range ports {
		fmt.Fprintf(&script, "mkdir -p /www%[1]d && echo %[2]s:%[1]d > /www%[1]d/index.html && httpd -p %[1]d -h /www%[1]d && ", port, name)
		cp := corev1.ContainerPort{ContainerPort: port, Protocol: corev1.ProtocolTCP}
		if i < len(portNames) {
			cp.Name = portNames[i]
		}
		p.Spec.Containers[0].Ports = append(p.Spec.Containers[0].Ports, cp)
	}
	script.WriteString("exec sleep 3600")
	p.Spec.Containers[0].Command = []string{"sh", "-c", script.String()}
	p.Spec.Containers[0].ReadinessProbe = &corev1.Probe{
		ProbeHandler:  corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(ports[0])}},
		PeriodSeconds: 1,
	}
	return p
}

// wgetAnswers fetches url n times from pod ns/name in one exec and returns
// the bodies, FAILED for a failed fetch. (Debian's static busybox wget
// crashes with -T; timeout bounds it.)
func wgetAnswers(ctx context.Context, ns, pod, url string, n int) ([]string, error) {
	out, err := shared.PodExec(ctx, ns, pod, "sh", "-c",
		fmt.Sprintf("for i in $(seq %d); do timeout 3 wget -qO- %s || echo FAILED; done", n, url))
	return strings.Fields(out), err
}

// pollWget polls n fetches of url from pod ns/name until ok holds for the
// answers, and fails t with the last answers otherwise. It returns them.
func pollWget(t *testing.T, ns, pod, url string, n int, what string, ok func([]string) bool) []string {
	t.Helper()
	var got []string
	var err error
	pollErr := wait.PollUntilContextTimeout(t.Context(), 200*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		got, err = wgetAnswers(ctx, ns, pod, url, n)
		return err == nil && ok(got), nil
	})
	if pollErr != nil {
		t.Fatalf("%s: %s answered %q (%v)", what, url, got, err)
	}
	return got
}

// answeredBy reports whether the answers are exactly the set want, each
// of them at least once and nothing else.
func answeredBy(want ...string) func([]string) bool {
	return func(got []string) bool {
		return slices.Equal(distinct(got), distinct(want))
	}
}

// distinct returns the sorted distinct strings of list.
func distinct(list []string) []string {
	out := slices.Clone(list)
	slices.Sort(out)
	return slices.Compact(out)
}

// waitEvent waits for an event of reason about the pod ns/name that match
// accepts, and returns it; it fails t with the pod's events otherwise.
func waitEvent(t *testing.T, c kubernetes.Interface, ns, name, reason string, timeout time.Duration, match func(*corev1.Event) bool) *corev1.Event {
	t.Helper()
	var found *corev1.Event
	sel := fields.Set{"involvedObject.kind": "Pod", "involvedObject.name": name}.AsSelector().String()
	seen, err := framework.PollEvents(t.Context(), c, ns, sel, timeout, func(events []corev1.Event) bool {
		for i := range events {
			if e := &events[i]; e.Reason == reason && match(e) {
				found = e
				return true
			}
		}
		return false
	})
	if err != nil {
		var b strings.Builder
		for _, e := range seen {
			fmt.Fprintf(&b, "\n  %s %s (%s): %q", e.Type, e.Reason, e.Source.Component, e.Message)
		}
		t.Fatalf("no %s event for pod %s/%s: %v; its events:%s", reason, ns, name, err, b.String())
	}
	return found
}

// nodeInternalIP is the InternalIP of the shared cluster's one node.
func nodeInternalIP(t *testing.T, c kubernetes.Interface) string {
	t.Helper()
	nodes, err := c.CoreV1().Nodes().List(t.Context(), metav1.ListOptions{})
	if err != nil || len(nodes.Items) != 1 {
		t.Fatalf("nodes: %v (%v), want one", nodes, err)
	}
	for _, a := range nodes.Items[0].Status.Addresses {
		if a.Type == corev1.NodeInternalIP {
			return a.Address
		}
	}
	t.Fatalf("node %s has no InternalIP: %v", nodes.Items[0].Name, nodes.Items[0].Status.Addresses)
	return ""
}

// stillPending checks for d that pod ns/name stays Pending with every
// container waiting for reason.
func stillPending(t *testing.T, c kubernetes.Interface, ns, name, reason string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		p, err := c.CoreV1().Pods(ns).Get(t.Context(), name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if p.Status.Phase != corev1.PodPending || len(p.Status.ContainerStatuses) == 0 {
			t.Fatalf("pod %s/%s: %s, want Pending with containers waiting %s", ns, name, framework.PodStatus(p), reason)
		}
		for _, cs := range p.Status.ContainerStatuses {
			if cs.State.Waiting == nil || cs.State.Waiting.Reason != reason {
				t.Fatalf("pod %s/%s: %s, want containers waiting %s", ns, name, framework.PodStatus(p), reason)
			}
		}
		if time.Now().After(deadline) {
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
}
