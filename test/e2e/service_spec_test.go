//go:build e2e

package e2e

import (
	"context"
	"net"
	"strconv"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/pocketkube/pocketkube/test/framework"
)

// Service specs beyond one port to one pod, through the ClusterIP from a
// pod: an update of port and selector, two ports, a named targetPort that
// resolves to a different number in each pod, and ClientIP session
// affinity. kube-proxy's nftables proxier is upstream's; what is checked
// is that the agent's proxy follows the Service and its EndpointSlices.

// newService creates a ClusterIP Service ns/name selecting selector with
// ports (its namespace deletes it at the end).
func newService(t *testing.T, c kubernetes.Interface, ns, name string, selector map[string]string, ports ...corev1.ServicePort) *corev1.Service {
	t.Helper()
	svc, err := c.CoreV1().Services(ns).Create(t.Context(), &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec:       corev1.ServiceSpec{Selector: selector, Ports: ports},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create service %s/%s: %v", ns, name, err)
	}
	return svc
}

// vipURL is http://CLUSTERIP:PORT/.
func vipURL(svc *corev1.Service, port int32) string {
	return "http://" + net.JoinHostPort(svc.Spec.ClusterIP, strconv.Itoa(int(port))) + "/"
}

// updateService applies edit to the Service ns/name, retrying on conflicts.
func updateService(t *testing.T, c kubernetes.Interface, ns, name string, edit func(*corev1.Service)) {
	t.Helper()
	err := wait.PollUntilContextTimeout(t.Context(), 100*time.Millisecond, 10*time.Second, true, func(ctx context.Context) (bool, error) {
		svc, err := c.CoreV1().Services(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		edit(svc)
		_, err = c.CoreV1().Services(ns).Update(ctx, svc, metav1.UpdateOptions{})
		return err == nil, nil
	})
	if err != nil {
		t.Fatalf("update service %s/%s: %v", ns, name, err)
	}
}

func TestServicePortAndSelectorUpdate(t *testing.T) {
	t.Parallel()
	c, ns := busyboxNamespace(t, "svc-update-")
	framework.RunPods(t, c,
		httpdPod(ns, "blue", map[string]string{"app": "blue"}, []int32{8080}),
		httpdPod(ns, "green", map[string]string{"app": "green"}, []int32{8080}),
		busyboxSleeper(ns, "client"))
	svc := newService(t, c, ns, "web", map[string]string{"app": "blue"},
		corev1.ServicePort{Port: 80, TargetPort: intstr.FromInt32(8080)})
	pollWget(t, ns, "client", vipURL(svc, 80), 10, "before the update", answeredBy("blue:8080"))

	updateService(t, c, ns, "web", func(s *corev1.Service) {
		s.Spec.Ports[0].Port = 81
		s.Spec.Selector = map[string]string{"app": "green"}
	})
	pollWget(t, ns, "client", vipURL(svc, 81), 10, "the new port and selector", answeredBy("green:8080"))
	// The old port is gone: the proxier's reject for the Service IP on
	// any other port (connection refused, which wget reports as FAILED).
	out, err := shared.PollKubectl(t.Context(), framework.Newest(), 30*time.Second, refused,
		"-n", ns, "exec", "client", "-c", "main", "--", "sh", "-c", "timeout 5 wget -qO- "+vipURL(svc, 80)+" 2>&1; echo exit=$?")
	if err != nil {
		t.Errorf("old port %s after the update: %q, want Connection refused", vipURL(svc, 80), out)
	}
}

func TestServiceTwoPorts(t *testing.T) {
	t.Parallel()
	c, ns := busyboxNamespace(t, "svc-ports-")
	framework.RunPods(t, c,
		httpdPod(ns, "web", map[string]string{"app": "web"}, []int32{8080, 9090}),
		busyboxSleeper(ns, "client"))
	svc := newService(t, c, ns, "web", map[string]string{"app": "web"},
		corev1.ServicePort{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080)},
		corev1.ServicePort{Name: "alt", Port: 90, TargetPort: intstr.FromInt32(9090)})
	pollWget(t, ns, "client", vipURL(svc, 80), 5, "port http", answeredBy("web:8080"))
	pollWget(t, ns, "client", vipURL(svc, 90), 5, "port alt", answeredBy("web:9090"))
}

func TestServiceNamedTargetPort(t *testing.T) {
	t.Parallel()
	c, ns := busyboxNamespace(t, "svc-named-")
	// The port named "web" is 8080 in one pod and 9090 in the other; each
	// also serves the other number, which the Service must not reach.
	labels := map[string]string{"app": "web"}
	framework.RunPods(t, c,
		httpdPod(ns, "low", labels, []int32{8080, 9090}, "web", "other"),
		httpdPod(ns, "high", labels, []int32{9090, 8080}, "web", "other"),
		busyboxSleeper(ns, "client"))
	svc := newService(t, c, ns, "web", labels,
		corev1.ServicePort{Name: "http", Port: 80, TargetPort: intstr.FromString("web")})
	// 40 fetches all landing on one of two endpoints happens once in
	// 2^39 runs.
	pollWget(t, ns, "client", vipURL(svc, 80), 40, "named targetPort", answeredBy("low:8080", "high:9090"))
}

func TestServiceSessionAffinity(t *testing.T) {
	t.Parallel()
	c, ns := busyboxNamespace(t, "svc-affinity-")
	labels := map[string]string{"app": "web"}
	// Both backends are ready before the Service exists, so the proxier's
	// first rules for it already have both endpoints: a single answer is
	// affinity, not a half-synced Service.
	framework.RunPods(t, c,
		httpdPod(ns, "one", labels, []int32{8080}),
		httpdPod(ns, "two", labels, []int32{8080}),
		busyboxSleeper(ns, "client"))
	sticky, err := c.CoreV1().Services(ns).Create(t.Context(), &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "sticky", Namespace: ns},
		Spec: corev1.ServiceSpec{
			Selector:        labels,
			Ports:           []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}},
			SessionAffinity: corev1.ServiceAffinityClientIP,
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	waitEndpoints(t, c, ns, "sticky", 2)
	// Every fetch of one client goes to the endpoint of its first.
	got := pollWget(t, ns, "client", vipURL(sticky, 80), 1, "ClientIP affinity", func(got []string) bool {
		return answeredBy("one:8080")(got) || answeredBy("two:8080")(got)
	})
	first := got[0]
	for range 2 {
		got, err := wgetAnswers(t.Context(), ns, "client", vipURL(sticky, 80), 20)
		if err != nil || !answeredBy(first)(got) {
			t.Fatalf("with sessionAffinity ClientIP, 20 fetches answered %q (%v), want all %s", got, err, first)
		}
	}

	// Without affinity the same client is spread over both.
	updateService(t, c, ns, "sticky", func(s *corev1.Service) {
		s.Spec.SessionAffinity = corev1.ServiceAffinityNone
		s.Spec.SessionAffinityConfig = nil
	})
	pollWget(t, ns, "client", vipURL(sticky, 80), 40, "sessionAffinity None", answeredBy("one:8080", "two:8080"))
}

// waitEndpoints waits until the EndpointSlices of Service ns/name have n
// ready endpoints.
func waitEndpoints(t *testing.T, c kubernetes.Interface, ns, name string, n int) {
	t.Helper()
	ready := 0
	err := wait.PollUntilContextTimeout(t.Context(), 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		list, err := c.DiscoveryV1().EndpointSlices(ns).List(ctx, metav1.ListOptions{LabelSelector: "kubernetes.io/service-name=" + name})
		if err != nil {
			return false, nil
		}
		ready = 0
		for _, s := range list.Items {
			for _, e := range s.Endpoints {
				if e.Conditions.Ready == nil || *e.Conditions.Ready {
					ready++
				}
			}
		}
		return ready == n, nil
	})
	if err != nil {
		t.Fatalf("service %s/%s: %d ready endpoints, want %d: %v", ns, name, ready, n, err)
	}
}
