package bootstrap

import (
	"context"
	"net"
	"reflect"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/klog/v2/ktesting"
	"k8s.io/utils/ptr"
)

func testNode(name string, ready corev1.ConditionStatus) *corev1.Node {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if ready != "" {
		n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: ready}}
	}
	return n
}

func testEndpoint(addr, node string, ready bool) discoveryv1.Endpoint {
	ep := discoveryv1.Endpoint{
		Addresses:  []string{addr},
		Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(ready), Serving: ptr.To(ready), Terminating: ptr.To(false)},
	}
	if node != "" {
		ep.NodeName = ptr.To(node)
	}
	return ep
}

func testSlice(family discoveryv1.AddressType, eps ...discoveryv1.Endpoint) *discoveryv1.EndpointSlice {
	return &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: endpointSliceName, Namespace: "kube-system"},
		AddressType: family,
		Endpoints:   eps,
	}
}

func TestEndpointsFor(t *testing.T) {
	one := DNS{ServiceIP: DNSServiceIP, Endpoint: net.ParseIP("192.0.2.1"), User: "u", NodeName: "s1"}
	several := one
	several.Several = true
	nodes := func(ns ...*corev1.Node) map[string]*corev1.Node {
		m := map[string]*corev1.Node{}
		for _, n := range ns {
			m[n.Name] = n
		}
		return m
	}
	tests := []struct {
		name  string
		d     DNS
		got   *discoveryv1.EndpointSlice
		nodes map[string]*corev1.Node
		want  []discoveryv1.Endpoint
	}{{
		name: "one server: its own endpoint, alone",
		d:    one,
		got:  testSlice(discoveryv1.AddressTypeIPv4, testEndpoint("192.0.2.9", "s9", true)),
		want: []discoveryv1.Endpoint{testEndpoint("192.0.2.1", "s1", true)},
	}, {
		name:  "several: nothing before its Node registered",
		d:     several,
		nodes: nodes(testNode("s2", corev1.ConditionTrue)),
		got:   testSlice(discoveryv1.AddressTypeIPv4, testEndpoint("192.0.2.2", "s2", true)),
		want:  nil,
	}, {
		name:  "several: the first server's",
		d:     several,
		nodes: nodes(testNode("s1", "")),
		want:  []discoveryv1.Endpoint{testEndpoint("192.0.2.1", "s1", true)},
	}, {
		name:  "several: its own beside the others', a single server's and its own old one dropped",
		d:     several,
		nodes: nodes(testNode("s1", corev1.ConditionTrue), testNode("s2", corev1.ConditionTrue), testNode("s3", corev1.ConditionTrue)),
		got: testSlice(discoveryv1.AddressTypeIPv4,
			testEndpoint("192.0.2.3", "s3", true),
			testEndpoint("192.0.2.1", "", true),   // a single server's, before --cluster-init
			testEndpoint("192.0.2.7", "s1", true), // its own, at an old address
			testEndpoint("192.0.2.2", "s2", true)),
		want: []discoveryv1.Endpoint{testEndpoint("192.0.2.1", "s1", true), testEndpoint("192.0.2.2", "s2", true), testEndpoint("192.0.2.3", "s3", true)},
	}, {
		name:  "several: a server whose Node is Unknown or NotReady is not ready, one whose Node is gone is removed",
		d:     several,
		nodes: nodes(testNode("s1", corev1.ConditionTrue), testNode("s2", corev1.ConditionUnknown), testNode("s3", corev1.ConditionFalse)),
		got: testSlice(discoveryv1.AddressTypeIPv4,
			testEndpoint("192.0.2.2", "s2", true),
			testEndpoint("192.0.2.3", "s3", true),
			testEndpoint("192.0.2.4", "s4", true)),
		want: []discoveryv1.Endpoint{testEndpoint("192.0.2.1", "s1", true), testEndpoint("192.0.2.2", "s2", false), testEndpoint("192.0.2.3", "s3", false)},
	}, {
		name:  "several: its own Node NotReady, and back",
		d:     several,
		nodes: nodes(testNode("s1", corev1.ConditionUnknown)),
		got:   testSlice(discoveryv1.AddressTypeIPv4, testEndpoint("192.0.2.1", "s1", true)),
		want:  []discoveryv1.Endpoint{testEndpoint("192.0.2.1", "s1", false)},
	}, {
		name:  "several: another family's slice is replaced",
		d:     several,
		nodes: nodes(testNode("s1", corev1.ConditionTrue), testNode("s2", corev1.ConditionTrue)),
		got:   testSlice(discoveryv1.AddressTypeIPv6, testEndpoint("2001:db8::2", "s2", true)),
		want:  []discoveryv1.Endpoint{testEndpoint("192.0.2.1", "s1", true)},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := endpointsFor(tt.d, tt.got, tt.nodes); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("endpointsFor() =\n%v\nwant\n%v", got, tt.want)
			}
		})
	}
}

// Two servers' KeepDNSEndpoints on one API: each publishes its endpoint
// beside the other's; a Node gone Unknown makes its server's endpoint not
// ready, and back; a deleted Node's endpoint is removed.
func TestKeepDNSEndpoints(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	client := fake.NewClientset(desiredService(DNSServiceIP), testNode("s1", corev1.ConditionTrue), testNode("s2", corev1.ConditionTrue))
	errs := make(chan error, 2)
	for i, name := range []string{"s1", "s2"} {
		d := DNS{ServiceIP: DNSServiceIP, Endpoint: net.IPv4(192, 0, 2, byte(i+1)), User: "u", NodeName: name, Several: true}
		go func() { errs <- KeepDNSEndpoints(ctx, client, d) }()
	}
	waitFor := func(what string, want ...discoveryv1.Endpoint) {
		t.Helper()
		var got []discoveryv1.Endpoint
		err := wait.PollUntilContextTimeout(ctx, 10*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
			s, err := client.DiscoveryV1().EndpointSlices("kube-system").Get(ctx, endpointSliceName, metav1.GetOptions{})
			if err != nil {
				return false, nil
			}
			got = s.Endpoints
			return reflect.DeepEqual(got, want), nil
		})
		if err != nil {
			t.Fatalf("%s: endpoints %v, want %v", what, got, want)
		}
	}
	waitFor("both up", testEndpoint("192.0.2.1", "s1", true), testEndpoint("192.0.2.2", "s2", true))

	s2 := testNode("s2", corev1.ConditionUnknown)
	if _, err := client.CoreV1().Nodes().UpdateStatus(ctx, s2, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor("s2's Node Unknown", testEndpoint("192.0.2.1", "s1", true), testEndpoint("192.0.2.2", "s2", false))

	s2.Status.Conditions[0].Status = corev1.ConditionTrue
	if _, err := client.CoreV1().Nodes().UpdateStatus(ctx, s2, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor("s2's Node Ready again", testEndpoint("192.0.2.1", "s1", true), testEndpoint("192.0.2.2", "s2", true))

	if err := client.CoreV1().Nodes().Delete(ctx, "s1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	// s1's own keeper publishes nothing without its Node; s2's removes it.
	waitFor("s1's Node deleted", testEndpoint("192.0.2.2", "s2", true))

	cancel()
	for range 2 {
		if err := <-errs; err != nil {
			t.Errorf("KeepDNSEndpoints: %v", err)
		}
	}
}

func TestKeepDNSEndpointsOneServer(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	client := fake.NewClientset()
	if err := KeepDNSEndpoints(ctx, client, *testConfig.DNS); err != nil {
		t.Fatal(err)
	}
	if a := client.Actions(); len(a) != 0 {
		t.Errorf("one server: KeepDNSEndpoints made requests %v, want none", a)
	}
}
