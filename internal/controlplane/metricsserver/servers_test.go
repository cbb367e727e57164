package metricsserver

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/klog/v2/ktesting"
)

func testNode(name string, ready corev1.ConditionStatus) *corev1.Node {
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Status:     corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: ready}}},
	}
}

// Two servers' keepers on one API: each writes its own slice again when it
// is deleted; a Node gone Unknown makes its server's endpoint not ready,
// and back; the single server's slice goes; a stopped server's slice goes
// once its Node has been gone for orphanGrace.
func TestKeepServerSlices(t *testing.T) {
	orphanGrace = 0
	defer func() { orphanGrace = time.Minute }()
	_, ctx := ktesting.NewTestContext(t)
	single := desiredSlice(Config{Address: net.ParseIP("192.0.2.9"), Port: DefaultPort}, true)
	client := fake.NewClientset(single, testNode("s1", corev1.ConditionTrue), testNode("s2", corev1.ConditionTrue))
	cfgs := make([]Config, 2)
	cancels := make([]context.CancelFunc, 2)
	done := make(chan struct{}, 2)
	for i := range cfgs {
		cfgs[i] = Config{Address: net.IPv4(192, 0, 2, byte(i+1)), Port: DefaultPort, NodeName: fmt.Sprintf("s%d", i+1), Several: true}
		var kctx context.Context
		kctx, cancels[i] = context.WithCancel(ctx)
		go func() { keepServerSlices(kctx, client, cfgs[i]); done <- struct{}{} }()
	}
	defer func() {
		for _, c := range cancels {
			c()
		}
		<-done
		<-done
	}()
	// waitFor waits for the slices to be, by name, "ADDRESS ready|not-ready".
	waitFor := func(what string, want ...string) {
		t.Helper()
		var got []string
		err := wait.PollUntilContextTimeout(ctx, 10*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
			list, err := client.DiscoveryV1().EndpointSlices(Namespace).List(ctx, metav1.ListOptions{})
			if err != nil {
				return false, nil
			}
			got = nil
			for _, s := range list.Items {
				state := "ready"
				if r := s.Endpoints[0].Conditions.Ready; r != nil && !*r {
					state = "not-ready"
				}
				got = append(got, s.Name+" "+s.Endpoints[0].Addresses[0]+" "+state)
			}
			slices.Sort(got)
			return slices.Equal(got, want), nil
		})
		if err != nil {
			t.Fatalf("%s: slices\n%s\nwant\n%s", what, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	}
	waitFor("both up; the single server's gone",
		"metrics-server-s1 192.0.2.1 ready", "metrics-server-s2 192.0.2.2 ready")

	if err := client.DiscoveryV1().EndpointSlices(Namespace).Delete(ctx, "metrics-server-s2", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor("s2's slice deleted and written again",
		"metrics-server-s1 192.0.2.1 ready", "metrics-server-s2 192.0.2.2 ready")

	if _, err := client.CoreV1().Nodes().UpdateStatus(ctx, testNode("s2", corev1.ConditionUnknown), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor("s2's Node Unknown",
		"metrics-server-s1 192.0.2.1 ready", "metrics-server-s2 192.0.2.2 not-ready")
	if _, err := client.CoreV1().Nodes().UpdateStatus(ctx, testNode("s2", corev1.ConditionTrue), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor("s2's Node Ready again",
		"metrics-server-s1 192.0.2.1 ready", "metrics-server-s2 192.0.2.2 ready")

	// s2 stops and its Node is deleted: s1 deletes its slice.
	cancels[1]()
	if err := client.CoreV1().Nodes().Delete(ctx, "s2", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor("s2 stopped, its Node deleted", "metrics-server-s1 192.0.2.1 ready")
}

func TestSliceName(t *testing.T) {
	if got := sliceName(Config{NodeName: "a"}); got != ServiceName {
		t.Errorf("one server: %q, want %q", got, ServiceName)
	}
	if got := sliceName(Config{NodeName: "a", Several: true}); got != ServiceName+"-a" {
		t.Errorf("several servers: %q, want %q", got, ServiceName+"-a")
	}
}
