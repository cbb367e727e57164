package servicelb

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes/fake"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2/ktesting"
)

func node(name string, addrs ...v1.NodeAddress) *v1.Node {
	return &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}, Status: v1.NodeStatus{Addresses: addrs}}
}

func TestStatusIsTheNodesInternalIPs(t *testing.T) {
	st := Status([]*v1.Node{
		node("a", v1.NodeAddress{Type: v1.NodeHostName, Address: "a"}, v1.NodeAddress{Type: v1.NodeInternalIP, Address: "fd00::2"},
			v1.NodeAddress{Type: v1.NodeInternalIP, Address: "10.0.0.2"}),
		node("b", v1.NodeAddress{Type: v1.NodeInternalIP, Address: "10.0.0.1"}, v1.NodeAddress{Type: v1.NodeExternalIP, Address: "1.2.3.4"}),
		node("c", v1.NodeAddress{Type: v1.NodeInternalIP, Address: "10.0.0.1"}),
	})
	var got []string
	for _, in := range st.Ingress {
		if in.IPMode == nil || *in.IPMode != v1.LoadBalancerIPModeVIP {
			t.Errorf("ingress %s: ipMode %v, want VIP", in.IP, in.IPMode)
		}
		got = append(got, in.IP)
	}
	if want := "10.0.0.1 10.0.0.2 fd00::2"; strings.Join(got, " ") != want {
		t.Errorf("ingress %v, want %s (InternalIPs, IPv4 first, each once)", got, want)
	}
	if st := Status(nil); len(st.Ingress) != 0 {
		t.Errorf("no nodes: ingress %v, want none", st.Ingress)
	}
}

func lbService(ns, name string, created time.Time, ports ...v1.ServicePort) *v1.Service {
	return &v1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID(ns + "/" + name), CreationTimestamp: metav1.NewTime(created)},
		Spec:       v1.ServiceSpec{Type: v1.ServiceTypeLoadBalancer, Ports: ports},
	}
}

func TestEnsureRefusesAPortAnOlderServiceHolds(t *testing.T) {
	t0 := time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC)
	web := lbService("a", "web", t0, v1.ServicePort{Port: 80}, v1.ServicePort{Port: 443})
	other := lbService("b", "other", t0.Add(time.Second), v1.ServicePort{Port: 80, Protocol: v1.ProtocolTCP})
	udp := lbService("b", "dns", t0.Add(time.Second), v1.ServicePort{Port: 80, Protocol: v1.ProtocolUDP})
	classed := lbService("c", "classed", t0.Add(-time.Hour), v1.ServicePort{Port: 8080})
	classed.Spec.LoadBalancerClass = new("example.com/other")
	cluster := lbService("c", "cluster", t0.Add(-time.Hour), v1.ServicePort{Port: 8080})
	cluster.Spec.Type = v1.ServiceTypeClusterIP
	late := lbService("d", "late", t0.Add(time.Minute), v1.ServicePort{Port: 8080})

	idx := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{})
	for _, s := range []*v1.Service{web, other, udp, classed, cluster, late} {
		if err := idx.Add(s); err != nil {
			t.Fatal(err)
		}
	}
	client := fake.NewClientset(web, other, udp, classed, cluster, late)
	lb := &loadBalancer{services: corelisters.NewServiceLister(idx), client: client}
	condition := func(svc *v1.Service) *metav1.Condition {
		t.Helper()
		got, err := client.CoreV1().Services(svc.Namespace).Get(t.Context(), svc.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return meta.FindStatusCondition(got.Status.Conditions, v1.LoadBalancerPortsError)
	}
	nodes := []*v1.Node{node("n", v1.NodeAddress{Type: v1.NodeInternalIP, Address: "192.0.2.1"})}
	for _, tt := range []struct {
		svc     *v1.Service
		wantErr string
	}{
		{web, ""},
		{other, "port 80/TCP is already used by LoadBalancer Service a/web on the same node addresses"},
		{udp, ""},  // another protocol
		{late, ""}, // 8080 is held only by a Service of another class and a ClusterIP one
	} {
		st, err := lb.EnsureLoadBalancer(t.Context(), "c", tt.svc, nodes)
		if tt.wantErr == "" {
			if err != nil || len(st.Ingress) != 1 || st.Ingress[0].IP != "192.0.2.1" {
				t.Errorf("%s: status %v, err %v; want the node's address", tt.svc.Name, st, err)
			}
			if c := condition(tt.svc); c != nil {
				t.Errorf("%s: condition %v on a Service that got its address", tt.svc.Name, c)
			}
			continue
		}
		if err == nil || err.Error() != tt.wantErr {
			t.Errorf("%s: err %v, want %q", tt.svc.Name, err, tt.wantErr)
		}
		if c := condition(tt.svc); c == nil || c.Status != metav1.ConditionTrue || c.Reason != PortInUseReason || c.Message != tt.wantErr {
			t.Errorf("%s: condition %v, want %s True %s %q", tt.svc.Name, c, v1.LoadBalancerPortsError, PortInUseReason, tt.wantErr)
		}
		if err := lb.UpdateLoadBalancer(t.Context(), "c", tt.svc, nodes); err == nil {
			t.Errorf("%s: UpdateLoadBalancer accepted the port in use", tt.svc.Name)
		}
	}
	// Once the older one is going, the port is free.
	gone := web.DeepCopy()
	gone.DeletionTimestamp = &metav1.Time{Time: t0.Add(time.Hour)}
	if err := idx.Update(gone); err != nil {
		t.Fatal(err)
	}
	refused, err := client.CoreV1().Services(other.Namespace).Get(t.Context(), other.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lb.EnsureLoadBalancer(t.Context(), "c", refused, nodes); err != nil {
		t.Errorf("after the holder's deletion: %v", err)
	}
	if c := condition(other); c != nil {
		t.Errorf("after the holder's deletion: condition %v is still there", c)
	}
}

// A Service created in the same second as the one holding the port, with a
// name that sorts first, is refused: the holder keeps its address (the
// e2e TestLoadBalancerService once saw lb-clash take lb-web's port).
func TestEnsureKeepsThePortWithItsHolderInTheSameSecond(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)
	web := lbService("default", "lb-web", t0, v1.ServicePort{Port: 18081})
	web.Status.LoadBalancer.Ingress = []v1.LoadBalancerIngress{{IP: "192.0.2.1"}}
	clash := lbService("default", "lb-clash", t0, v1.ServicePort{Port: 18081})
	idx := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{})
	for _, s := range []*v1.Service{web, clash} {
		if err := idx.Add(s); err != nil {
			t.Fatal(err)
		}
	}
	lb := &loadBalancer{services: corelisters.NewServiceLister(idx), client: fake.NewClientset(web, clash)}
	nodes := []*v1.Node{node("n", v1.NodeAddress{Type: v1.NodeInternalIP, Address: "192.0.2.1"})}
	want := "port 18081/TCP is already used by LoadBalancer Service default/lb-web on the same node addresses"
	if _, err := lb.EnsureLoadBalancer(t.Context(), "c", clash, nodes); err == nil || err.Error() != want {
		t.Errorf("lb-clash: err %v, want %q", err, want)
	}
	if _, err := lb.EnsureLoadBalancer(t.Context(), "c", web, nodes); err != nil {
		t.Errorf("lb-web, which holds the port: %v", err)
	}
}

// TestRunLeaderElect runs two servers' controllers on one API: the first
// holds the Lease LeaseName while it runs; once it stops it releases the
// lease, and the second, which waited, takes it.
func TestRunLeaderElect(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	client := fake.NewClientset()
	holder := func() string {
		lease, err := client.CoordinationV1().Leases(metav1.NamespaceSystem).Get(ctx, LeaseName, metav1.GetOptions{})
		if err != nil || lease.Spec.HolderIdentity == nil {
			return ""
		}
		return *lease.Spec.HolderIdentity
	}
	waitHolder := func(want string) {
		t.Helper()
		err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
			return holder() == want, nil
		})
		if err != nil {
			t.Fatalf("lease holder %q, want %q", holder(), want)
		}
	}
	start := func(id string) (stop func() error) {
		ctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- Run(ctx, client, Config{LeaderElect: true, Identity: id}) }()
		return sync.OnceValue(func() error {
			cancel()
			return <-done
		})
	}
	stop1 := start("server-1")
	waitHolder("server-1")
	stop2 := start("server-2")
	defer stop2()
	if err := stop1(); err != nil {
		t.Errorf("Run of server-1 = %v", err)
	}
	waitHolder("server-2")
	if err := stop2(); err != nil {
		t.Errorf("Run of server-2 = %v", err)
	}
	// Released on the stop, as ReleaseOnCancel does it: no holder.
	if h := holder(); h != "" {
		t.Errorf("after both stopped, lease holder %q, want none", h)
	}
}
