//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/pocketkube/pocketkube/test/framework"
)

// hostPorts: the agent maps a pod's hostPort on the node's address to the
// pod (CNI portmap, as a CRI runtime does), and a second pod asking for
// the same hostPort is left Pending by the scheduler's NodePorts plugin
// until the port is free again.

// withHostPort sets the hostPort of the first container port.
func withHostPort(p *corev1.Pod, port int) *corev1.Pod {
	p.Spec.Containers[0].Ports[0].HostPort = int32(port)
	return p
}

// pollCurl fetches url from the host until the body is want.
func pollCurl(t *testing.T, url, want string) {
	t.Helper()
	var body string
	var err error
	pollErr := wait.PollUntilContextTimeout(t.Context(), 200*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		body, _, err = framework.Curl(ctx, "-m", "3", url)
		return err == nil && strings.TrimSpace(body) == want, nil
	})
	if pollErr != nil {
		t.Fatalf("curl %s from the host: %q (%v), want %q", url, body, err, want)
	}
}

func TestHostPort(t *testing.T) {
	t.Parallel()
	c, ns := busyboxNamespace(t, "hostport-")
	nodeIP := nodeInternalIP(t, c)
	port, err := framework.FreePort(nodeIP)
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + net.JoinHostPort(nodeIP, strconv.Itoa(port)) + "/"

	framework.RunPods(t, c, withHostPort(httpdPod(ns, "first", nil, []int32{8080}), port), busyboxSleeper(ns, "client"))
	pollCurl(t, url, "first:8080")
	pollWget(t, ns, "client", url, 1, "hostPort from a pod", answeredBy("first:8080"))

	// The same hostPort again: the scheduler's NodePorts filter refuses
	// the only node, so the pod stays Pending, unscheduled.
	framework.CreatePod(t, c, withHostPort(httpdPod(ns, "second", nil, []int32{8080}), port))
	const reason = "0/1 nodes are available: 1 node(s) didn't have free ports for the requested pod ports."
	p, err := framework.WaitPodIn(t.Context(), c, ns, "second", framework.PodTimeout, func(p *corev1.Pod) (bool, error) {
		for _, cond := range p.Status.Conditions {
			if cond.Type == corev1.PodScheduled && cond.Status == corev1.ConditionFalse {
				return cond.Reason == corev1.PodReasonUnschedulable && strings.HasPrefix(cond.Message, reason), nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("second pod on hostPort %d: %v; conditions %v", port, err, p.Status.Conditions)
	}
	if p.Spec.NodeName != "" || p.Status.Phase != corev1.PodPending {
		t.Errorf("second pod: node %q, phase %s; want Pending and unscheduled", p.Spec.NodeName, p.Status.Phase)
	}
	ev := waitEvent(t, c, ns, "second", "FailedScheduling", framework.PodTimeout, func(*corev1.Event) bool { return true })
	if ev.Type != corev1.EventTypeWarning || !strings.HasPrefix(ev.Message, reason) {
		t.Errorf("event %s %s: %q, want Warning beginning %q", ev.Type, ev.Reason, ev.Message, reason)
	}
	pollCurl(t, url, "first:8080")

	// The first pod goes: the second is scheduled, runs, and the port is
	// its own.
	if err := c.CoreV1().Pods(ns).Delete(t.Context(), "first", metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil {
		t.Fatal(err)
	}
	if _, err := framework.WaitPodIn(t.Context(), c, ns, "second", 2*framework.PodTimeout, func(p *corev1.Pod) (bool, error) {
		return framework.Running(p), nil
	}); err != nil {
		t.Fatalf("second pod after the first was deleted: %v", err)
	}
	pollCurl(t, url, "second:8080")
	pollWget(t, ns, "client", url, 1, fmt.Sprintf("hostPort %d from a pod after the first pod went", port), answeredBy("second:8080"))
}
