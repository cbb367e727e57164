//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/pocketkube/pocketkube/test/framework"
)

// The Service tests run kube-proxy's nftables proxier as `pocketkube up`
// does and check what users see: ClusterIPs from pods and from the host,
// NodePorts on the node's address, a refusal for a Service without
// endpoints, the kubernetes Service from inside a pod, and no rules left
// after Ctrl-C.

// webPod serves its own name on :8080 with busybox httpd.
const webPod = `apiVersion: v1
kind: Pod
metadata:
  name: %[1]s
  labels:
    app: %[2]s
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: web
    image: busybox
    command: ["sh", "-c", "mkdir -p /www && echo %[1]s > /www/index.html && exec httpd -f -p 8080 -h /www"]
    readinessProbe:
      tcpSocket:
        port: 8080
      periodSeconds: 1
`

// clientPod is a pod to run wget in.
func clientPod(name string) string {
	return podYAML(name, 1, `  containers:
  - name: main
    image: busybox
    command: ["sleep", "3600"]
`)
}

// applyService applies manifest and deletes the Service at the end of the
// test.
func applyService(t *testing.T, name, manifest string) *corev1.Service {
	t.Helper()
	ctx := context.Background()
	if _, err := shared.KubectlStdin(ctx, framework.Newest(), manifest, "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		shared.Client(t).CoreV1().Services("default").Delete(context.Background(), name, metav1.DeleteOptions{})
	})
	svc, err := shared.Client(t).CoreV1().Services("default").Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

func serviceManifest(name, app, typ string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Service
metadata:
  name: %s
spec:
  type: %s
  selector:
    app: %s
  ports:
  - port: 80
    targetPort: 8080
`, name, typ, app)
}

// execIn runs a shell script in pod's container and returns its stdout.
func execIn(ctx context.Context, pod, script string) (string, error) {
	return shared.Kubectl(ctx, framework.Newest(), "exec", pod, "--", "sh", "-c", script)
}

// refused is a PollKubectl condition: the output says "Connection
// refused", as wget does when the proxier rejects a connection.
func refused(out string, _ error) bool { return strings.Contains(out, "Connection refused") }

// answers fetches url n times in one exec in pod and returns who answered.
// (Debian's static busybox wget crashes with -T; timeout bounds it.)
func answers(ctx context.Context, pod, url string, n int) ([]string, error) {
	out, err := execIn(ctx, pod, fmt.Sprintf("for i in $(seq %d); do timeout 3 wget -qO- %s || echo FAILED; done", n, url))
	return strings.Fields(out), err
}

// hostAnswers fetches url n times from the host.
func hostAnswers(ctx context.Context, url string, n int) []string {
	var got []string
	for range n {
		body, _, err := framework.Curl(ctx, "-m", "3", url)
		if err != nil {
			got = append(got, "FAILED")
			continue
		}
		got = append(got, strings.TrimSpace(body))
	}
	return got
}

// pollAnswers polls fetch until ok holds for its answers, and fails the
// test with the last answers otherwise.
func pollAnswers(t *testing.T, what string, fetch func(ctx context.Context) ([]string, error), ok func([]string) bool) {
	t.Helper()
	var got []string
	var err error
	pollErr := wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		got, err = fetch(ctx)
		return err == nil && ok(got), nil
	})
	if pollErr != nil {
		t.Fatalf("%s: answers %q (%v)", what, got, err)
	}
}

// only reports whether every answer is one of names.
func only(names ...string) func([]string) bool {
	return func(got []string) bool {
		for _, g := range got {
			if !contains(names, g) {
				return false
			}
		}
		return len(got) > 0
	}
}

// both reports whether each of names answered at least once and nobody
// else did.
func both(names ...string) func([]string) bool {
	return func(got []string) bool {
		for _, n := range names {
			if !contains(got, n) {
				return false
			}
		}
		return only(names...)(got)
	}
}

func contains(list []string, s string) bool {
	for _, l := range list {
		if l == s {
			return true
		}
	}
	return false
}

func waitRunning(t *testing.T, c kubernetes.Interface, names ...string) {
	t.Helper()
	for _, n := range names {
		framework.WaitPod(t, c, "default", n, "Running and ready", framework.Running)
	}
}

func TestServiceClusterIPAndNodePort(t *testing.T) {
	c := shared.Client(t)
	shared.ApplyPod(t, "svc-web-1", fmt.Sprintf(webPod, "svc-web-1", "svc-web"))
	shared.ApplyPod(t, "svc-web-2", fmt.Sprintf(webPod, "svc-web-2", "svc-web"))
	shared.ApplyPod(t, "svc-client", clientPod("svc-client"))
	svc := applyService(t, "svc-web", serviceManifest("svc-web", "svc-web", "ClusterIP"))
	np := applyService(t, "svc-web-np", serviceManifest("svc-web-np", "svc-web", "NodePort"))
	waitRunning(t, c, "svc-web-1", "svc-web-2", "svc-client")
	vip := "http://" + svc.Spec.ClusterIP + "/"

	// Both backends answer, from a pod and from the host. 40 requests
	// all landing on one of two backends happens once in 2^39 runs.
	pollAnswers(t, "ClusterIP from a pod", func(ctx context.Context) ([]string, error) {
		return answers(ctx, "svc-client", vip, 40)
	}, both("svc-web-1", "svc-web-2"))
	pollAnswers(t, "ClusterIP from the host", func(ctx context.Context) ([]string, error) {
		return hostAnswers(ctx, vip, 40), nil
	}, both("svc-web-1", "svc-web-2"))

	// A NodePort on the node's address, from the host and from a pod.
	node, err := c.CoreV1().Nodes().List(context.Background(), metav1.ListOptions{})
	if err != nil || len(node.Items) != 1 {
		t.Fatalf("nodes: %v, %v", node, err)
	}
	var nodeIP string
	for _, a := range node.Items[0].Status.Addresses {
		if a.Type == corev1.NodeInternalIP {
			nodeIP = a.Address
		}
	}
	nodePortURL := fmt.Sprintf("http://%s:%d/", nodeIP, np.Spec.Ports[0].NodePort)
	pollAnswers(t, "NodePort "+nodePortURL+" from the host", func(ctx context.Context) ([]string, error) {
		return hostAnswers(ctx, nodePortURL, 40), nil
	}, both("svc-web-1", "svc-web-2"))
	pollAnswers(t, "NodePort "+nodePortURL+" from a pod", func(ctx context.Context) ([]string, error) {
		return answers(ctx, "svc-client", nodePortURL, 40)
	}, both("svc-web-1", "svc-web-2"))

	// A backend goes away: traffic follows, and stays.
	if err := c.CoreV1().Pods("default").Delete(context.Background(), "svc-web-2", metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil {
		t.Fatal(err)
	}
	pollAnswers(t, "ClusterIP after deleting svc-web-2", func(ctx context.Context) ([]string, error) {
		return answers(ctx, "svc-client", vip, 20)
	}, only("svc-web-1"))
	pollAnswers(t, "ClusterIP from the host after deleting svc-web-2", func(ctx context.Context) ([]string, error) {
		return hostAnswers(ctx, vip, 20), nil
	}, only("svc-web-1"))
}

func TestServiceWithoutEndpointsRefuses(t *testing.T) {
	c := shared.Client(t)
	shared.ApplyPod(t, "svc-refuse-client", clientPod("svc-refuse-client"))
	svc := applyService(t, "svc-nobody", serviceManifest("svc-nobody", "nobody-has-this-label", "ClusterIP"))
	waitRunning(t, c, "svc-refuse-client")
	vip := "http://" + svc.Spec.ClusterIP + "/"

	// kube-proxy rejects with an ICMP port unreachable: the client sees
	// "Connection refused", not a timeout (timeout kills a hanging wget
	// with exit 143 and no message).
	out, err := shared.PollKubectl(context.Background(), framework.Newest(), 30*time.Second, refused,
		"exec", "svc-refuse-client", "--", "sh", "-c", "timeout 20 wget -qO- "+vip+" 2>&1; echo exit=$?")
	if err != nil {
		t.Fatalf("wget %s from a pod said %q, want Connection refused", vip, out)
	}
	if !strings.Contains(out, "exit=1") {
		t.Errorf("wget exit: %q, want exit=1", out)
	}
	// From the host: curl's exit code 7 is "failed to connect", 28 a
	// timeout.
	_, _, err = framework.Curl(context.Background(), "-m", "20", vip)
	if framework.ExitCode(err) != 7 {
		t.Errorf("curl %s from the host: %v, want exit code 7 (connection refused)", vip, err)
	}
}

func TestKubernetesServiceFromPod(t *testing.T) {
	c := shared.Client(t)
	shared.ApplyPod(t, "svc-api-client", clientPod("svc-api-client"))
	waitRunning(t, c, "svc-api-client")
	ctx := context.Background()

	env, err := execIn(ctx, "svc-api-client", "echo $KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT")
	if err != nil || strings.TrimSpace(env) != "10.96.0.1:443" {
		t.Fatalf("KUBERNETES_SERVICE_HOST:PORT = %q, %v; want 10.96.0.1:443", env, err)
	}
	// The kubernetes Service's endpoint is the API server's advertised
	// address, which pods must be able to reach.
	eps, err := c.CoreV1().Endpoints("default").Get(ctx, "kubernetes", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(eps.Subsets) != 1 || len(eps.Subsets[0].Addresses) != 1 || eps.Subsets[0].Addresses[0].IP != shared.Host {
		t.Errorf("kubernetes endpoints %v, want the --listen address %s", eps.Subsets, shared.Host)
	}

	// Busybox's own TLS cannot complete a handshake with the API server
	// (it says "handshake failure" on the host as well; the host's wget
	// uses openssl, which pods lack). So the probe speaks plain HTTP to
	// the HTTPS port: the answer is the Go TLS server's own refusal,
	// which only the API server behind the VIP can give.
	const want = "Client sent an HTTP request to an HTTPS server."
	for _, addr := range []string{"10.96.0.1 443", "$KUBERNETES_SERVICE_HOST $KUBERNETES_SERVICE_PORT"} {
		out, err := shared.PollKubectl(ctx, framework.Newest(), 30*time.Second, func(out string, _ error) bool { return strings.Contains(out, want) },
			"exec", "svc-api-client", "--", "sh", "-c", `printf 'GET /version HTTP/1.0\r\n\r\n' | nc -w 3 `+addr)
		if err != nil {
			t.Errorf("HTTP to %s from a pod: %q; want the API server's %q", addr, out, want)
		}
	}
	// The same answer from the API server itself, so that the check above
	// cannot pass on some other server's words.
	body, status, _ := framework.Curl(ctx, "http://"+net.JoinHostPort(shared.Host, strconv.Itoa(shared.Port))+"/version")
	if status != 400 || !strings.Contains(body, want) {
		t.Errorf("plain HTTP to the API server: %d %q", status, body)
	}
}

// kubeProxyTables lists the nftables tables kube-proxy made in the
// network namespace ns, or on the host when ns is nil.
func kubeProxyTables(t *testing.T, ns *framework.NetNS) []string {
	t.Helper()
	var out []byte
	var err error
	if ns == nil {
		out, err = exec.Command("nft", "list", "tables").CombinedOutput()
	} else {
		var s string
		s, err = ns.Exec("nft", "list", "tables")
		out = []byte(s)
	}
	if err != nil {
		t.Fatalf("nft list tables: %v: %s", err, out)
	}
	var tables []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if strings.HasSuffix(l, " kube-proxy") {
			tables = append(tables, l)
		}
	}
	return tables
}

// Ctrl-C deletes kube-proxy's table; `up` again makes it again. The
// cluster is the test's own, in a network namespace of its own, where its
// table is.
func TestCtrlCRemovesServiceRules(t *testing.T) {
	c := startNodeCluster(t)
	hasTable := func(context.Context) (bool, error) { return len(kubeProxyTables(t, c.NetNS)) > 0, nil }
	// The node starts once the API server is up, after "pocketkube is up".
	if err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, 30*time.Second, true, hasTable); err != nil {
		t.Fatal("no kube-proxy nftables table while the cluster runs")
	}
	stopCleanly(t, c)
	if got := kubeProxyTables(t, c.NetNS); len(got) != 0 {
		t.Errorf("tables left after Ctrl-C: %q", got)
	}
	restartNode(t, c)
	if err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, 30*time.Second, true, hasTable); err != nil {
		t.Errorf("no kube-proxy table after up again: %v", err)
	}
}

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

// lbServiceManifest is a LoadBalancer Service on port selecting app,
// with an optional loadBalancerClass.
func lbServiceManifest(name, app string, port int, class string) string {
	spec := ""
	if class != "" {
		spec = "\n  loadBalancerClass: " + class
	}
	return fmt.Sprintf(`apiVersion: v1
kind: Service
metadata:
  name: %s
spec:
  type: LoadBalancer%s
  selector:
    app: %s
  ports:
  - port: %d
    targetPort: 8080
`, name, spec, app, port)
}

// TestLoadBalancerService: a LoadBalancer Service gets the node's address
// (upstream's service controller with pocketkube's servicelb), kubectl
// shows it as EXTERNAL-IP, and the host reaches the pods at that address
// and the Service port through kube-proxy. A second Service asking for
// the same port is refused with the controller's SyncLoadBalancerFailed
// event naming the holder, and gets the address once the holder is gone;
// a Service with another loadBalancerClass is left alone.
func TestLoadBalancerService(t *testing.T) {
	t.Parallel()
	c := shared.Client(t)
	ctx := t.Context()
	shared.ApplyPod(t, "lb-web-1", fmt.Sprintf(webPod, "lb-web-1", "lb-web"))
	classed := applyService(t, "lb-classed", lbServiceManifest("lb-classed", "lb-web", 18082, "example.com/not-pocketkube"))
	applyService(t, "lb-web", lbServiceManifest("lb-web", "lb-web", 18081, ""))
	waitRunning(t, c, "lb-web-1")
	nodes, err := c.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil || len(nodes.Items) != 1 {
		t.Fatalf("nodes: %v, %v", nodes, err)
	}
	var nodeIP string
	for _, a := range nodes.Items[0].Status.Addresses {
		if a.Type == corev1.NodeInternalIP {
			nodeIP = a.Address
		}
	}

	ingress := func(name string) []string {
		svc, err := c.CoreV1().Services("default").Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("get service %s: %v", name, err)
		}
		var ips []string
		for _, in := range svc.Status.LoadBalancer.Ingress {
			ips = append(ips, in.IP)
		}
		return ips
	}
	waitIngress := func(name string, timeout time.Duration) {
		t.Helper()
		var got []string
		err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, timeout, true, func(context.Context) (bool, error) {
			got = ingress(name)
			return len(got) > 0, nil
		})
		if err != nil || len(got) != 1 || got[0] != nodeIP {
			t.Fatalf("service %s: ingress %v, want [%s] (the node's InternalIP)", name, got, nodeIP)
		}
	}
	waitIngress("lb-web", 30*time.Second)
	for _, v := range framework.KubectlVersions {
		out, err := shared.Kubectl(ctx, v, "get", "service", "lb-web")
		if err != nil || !strings.Contains(out, nodeIP) || !strings.Contains(out, "LoadBalancer") {
			t.Errorf("kubectl %s get service lb-web: %v\n%s\nwant EXTERNAL-IP %s", v, err, out, nodeIP)
		}
	}
	url := fmt.Sprintf("http://%s:18081/", nodeIP)
	pollAnswers(t, "LoadBalancer "+url+" from the host", func(ctx context.Context) ([]string, error) {
		return hostAnswers(ctx, url, 5), nil
	}, only("lb-web-1"))

	// The same port again: refused, with the controller's event.
	applyService(t, "lb-clash", lbServiceManifest("lb-clash", "lb-web", 18081, ""))
	want := "port 18081/TCP is already used by LoadBalancer Service default/lb-web"
	var msgs []string
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		evs, err := c.CoreV1().Events("default").List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=lb-clash"})
		if err != nil {
			return false, err
		}
		msgs = msgs[:0]
		for _, e := range evs.Items {
			msgs = append(msgs, e.Reason+": "+e.Message)
			if e.Reason == "SyncLoadBalancerFailed" && strings.Contains(e.Message, want) {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("lb-clash events %q, want SyncLoadBalancerFailed with %q", msgs, want)
	}
	if got := ingress("lb-clash"); len(got) != 0 {
		t.Errorf("lb-clash got ingress %v while lb-web holds the port", got)
	}
	portsError := func() *metav1.Condition {
		svc, err := c.CoreV1().Services("default").Get(ctx, "lb-clash", metav1.GetOptions{})
		if err != nil {
			t.Fatalf("get service lb-clash: %v", err)
		}
		return apimeta.FindStatusCondition(svc.Status.Conditions, corev1.LoadBalancerPortsError)
	}
	if cond := portsError(); cond == nil || cond.Status != metav1.ConditionTrue || cond.Reason != "PortInUse" || !strings.Contains(cond.Message, want) {
		t.Errorf("lb-clash condition %+v, want %s True PortInUse %q", cond, corev1.LoadBalancerPortsError, want)
	}
	if got := ingress(classed.Name); len(got) != 0 {
		t.Errorf("a Service of another loadBalancerClass got ingress %v", got)
	}

	// The holder goes: the controller's retry gives the port to lb-clash.
	if err := c.CoreV1().Services("default").Delete(ctx, "lb-web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitIngress("lb-clash", 60*time.Second)
	if cond := portsError(); cond != nil {
		t.Errorf("lb-clash has its address and still the condition %+v", cond)
	}
	pollAnswers(t, "LoadBalancer "+url+" of lb-clash from the host", func(ctx context.Context) ([]string, error) {
		return hostAnswers(ctx, url, 5), nil
	}, only("lb-web-1"))
}
