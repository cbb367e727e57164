//go:build e2e

package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	nodev1 "k8s.io/api/node/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"

	"github.com/pocketkube/pocketkube/internal/pki"
	"github.com/pocketkube/pocketkube/test/framework"
)

// capEff reads CapEff from the test process's /proc/self/status: a
// privileged container gets every capability the runtime holds, as
// containerd's privileged containers do.
func capEff(t *testing.T) string {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^CapEff:\s*([0-9a-f]+)$`).FindSubmatch(b)
	if m == nil {
		t.Fatal("no CapEff in /proc/self/status")
	}
	return string(m[1])
}

func TestSecurityContext(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	c := shared.Client(t)
	shared.ApplyPod(t, "secctx", podYAML("secctx", 1, `  containers:
  - name: default
    image: busybox
    command: ["sleep", "3600"]
  - name: user
    image: busybox
    command: ["sleep", "3600"]
    securityContext: {runAsUser: 1000, runAsGroup: 3000}
  - name: nonroot-uid
    image: busybox
    command: ["sleep", "3600"]
    securityContext: {runAsNonRoot: true, runAsUser: 1000}
  - name: readonly
    image: busybox
    command: ["sleep", "3600"]
    securityContext: {readOnlyRootFilesystem: true}
  - name: caps
    image: busybox
    command: ["sleep", "3600"]
    securityContext:
      capabilities: {drop: [ALL], add: [NET_ADMIN]}
  - name: nonewprivs
    image: busybox
    command: ["sleep", "3600"]
    securityContext: {allowPrivilegeEscalation: false}
`))
	// sysfs is mounted once per network namespace: the first container
	// of a pod to mount it decides whether it is read-only for all, so
	// the privileged container has a pod of its own.
	shared.ApplyPod(t, "secctx-priv", podYAML("secctx-priv", 1, `  containers:
  - name: privileged
    image: busybox
    command: ["sleep", "3600"]
    securityContext: {privileged: true}
`))
	framework.WaitPod(t, c, "default", "secctx", "Running", framework.Running)
	framework.WaitPod(t, c, "default", "secctx-priv", "Running", framework.Running)
	hostCaps := capEff(t)
	// The status lines of the container's own process (grep's, which
	// inherits the container's set).
	status := `grep -E '^(CapEff|CapBnd|NoNewPrivs):' /proc/self/status`
	// Setting lo's MTU needs CAP_NET_ADMIN in the pod's network namespace.
	netAdmin := `ip link set lo mtu 65536 2>&1 && echo net-admin-ok`
	for _, v := range framework.KubectlVersions {
		t.Run("kubectl-"+v, func(t *testing.T) {
			for _, tc := range []struct {
				pod            string // "secctx" when empty
				container, cmd string
				want           string // stdout
				wantErr        bool
				stderr         string // a substring of stderr
			}{
				{container: "default", cmd: "id", want: "uid=0(root) gid=0(root) groups=0(root)\n"},
				{container: "default", cmd: status, want: "CapEff:\t00000000a80425fb\nCapBnd:\t00000000a80425fb\nNoNewPrivs:\t0\n"},
				{container: "default", cmd: netAdmin, want: "ip: SIOCSIFMTU: Operation not permitted\n", wantErr: true},
				{container: "default", cmd: "grep ' /sys ' /proc/mounts", want: "sysfs /sys sysfs ro,nosuid,nodev,noexec,relatime 0 0\n"},
				{container: "default", cmd: "echo x > /probe && cat /probe", want: "x\n"},
				{container: "user", cmd: "id", want: "uid=1000 gid=3000 groups=3000\n"},
				{container: "user", cmd: "touch /root/x", wantErr: true, stderr: "Permission denied"},
				{container: "nonroot-uid", cmd: "id -u", want: "1000\n"},
				{container: "readonly", cmd: "touch /x", wantErr: true, stderr: "touch: /x: Read-only file system"},
				{container: "readonly", cmd: "touch /tmp/x", wantErr: true, stderr: "touch: /tmp/x: Read-only file system"},
				{container: "readonly", cmd: "echo ok > /dev/shm/x && cat /dev/shm/x", want: "ok\n"},
				{container: "caps", cmd: status, want: "CapEff:\t0000000000001000\nCapBnd:\t0000000000001000\nNoNewPrivs:\t0\n"},
				{container: "caps", cmd: netAdmin, want: "net-admin-ok\n"},
				{container: "caps", cmd: "chown 1:1 /tmp", wantErr: true, stderr: "Operation not permitted"},
				{pod: "secctx-priv", container: "privileged", cmd: "grep -E '^CapEff:' /proc/self/status", want: "CapEff:\t" + hostCaps + "\n"},
				{pod: "secctx-priv", container: "privileged", cmd: netAdmin, want: "net-admin-ok\n"},
				{pod: "secctx-priv", container: "privileged", cmd: "grep ' /sys ' /proc/mounts", want: "sysfs /sys sysfs rw,nosuid,nodev,noexec,relatime 0 0\n"},
				// containerd gives a privileged container the host's devices
				// (oci.WithHostDevices).
				{pod: "secctx-priv", container: "privileged", cmd: "test -c /dev/kmsg && test -c /dev/loop-control && echo host-devices", want: "host-devices\n"},
				{container: "default", cmd: "test -e /dev/kmsg || echo no-kmsg", want: "no-kmsg\n"},
				{container: "nonewprivs", cmd: status, want: "CapEff:\t00000000a80425fb\nCapBnd:\t00000000a80425fb\nNoNewPrivs:\t1\n"},
			} {
				if tc.pod == "" {
					tc.pod = "secctx"
				}
				out, errOut, err := kexec(ctx, v, tc.pod, tc.container, tc.cmd)
				if (err != nil) != tc.wantErr || (tc.want != "" || !tc.wantErr) && out != tc.want || !strings.Contains(errOut, tc.stderr) {
					t.Errorf("%s: %s: stdout %q, stderr %q, err %v; want stdout %q, stderr containing %q, error %v",
						tc.container, tc.cmd, out, errOut, err, tc.want, tc.stderr, tc.wantErr)
				}
			}
		})
	}

	// runAsNonRoot without a runAsUser on an image that runs as root, and
	// with runAsUser 0: kubelet's verifyRunAsNonRoot messages, as
	// CreateContainerConfigError.
	manifest := func(name, sc string) string {
		return podYAML(name, 1, `  containers:
  - name: main
    image: busybox
    command: ["sleep", "3600"]
    securityContext: `+sc+"\n")
	}
	for _, tc := range []struct{ name, sc, format string }{
		{"nonroot-image-root", "{runAsNonRoot: true}", "container has runAsNonRoot and image will run as root (pod: %q, container: main)"},
		{"nonroot-uid-0", "{runAsNonRoot: true, runAsUser: 0}", "container's runAsUser breaks non-root policy (pod: %q, container: main)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			shared.ApplyPod(t, tc.name, manifest(tc.name, tc.sc))
			pod := framework.WaitPod(t, c, "default", tc.name, "waiting with CreateContainerConfigError", func(p *corev1.Pod) bool {
				return len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].State.Waiting != nil &&
					p.Status.ContainerStatuses[0].State.Waiting.Reason == "CreateContainerConfigError"
			})
			want := fmt.Sprintf(tc.format, fmt.Sprintf("%s_default(%s)", tc.name, pod.UID))
			if got := pod.Status.ContainerStatuses[0].State.Waiting.Message; got != want {
				t.Errorf("message %q\nwant    %q", got, want)
			}
			if pod.Status.Phase != corev1.PodPending {
				t.Errorf("phase %s, want Pending", pod.Status.Phase)
			}
			for _, v := range framework.KubectlVersions {
				out, err := shared.Kubectl(ctx, v, "get", "pod", tc.name, "--no-headers")
				if f := strings.Fields(out); err != nil || len(f) < 3 || f[2] != "CreateContainerConfigError" {
					t.Errorf("kubectl %s get pod: %q, %v", v, out, err)
				}
			}
		})
	}
}

// TestListeningPorts (issue 13) lists every socket `pocketkube up`
// listens on, from outside the process (ss), and checks that each one
// lets nobody read or change the cluster without credentials: a plain
// HTTP request gets nothing, and over TLS without a client certificate
// either the handshake fails or etcd's, the API server's and the kubelet
// API's data paths answer 401 or 403. Port 53 is cluster DNS, which
// TestDNSNotOpenResolver covers. Before the fix, etcd's peer listener
// (plain HTTP on a loopback port) served /members, /raft and snapshots
// to anyone. README.md's table of ports lists the same sockets.
func TestListeningPorts(t *testing.T) {
	pid := shared.Pid()
	known := map[int]string{shared.Port: "API server", shared.KubeletPort: "kubelet API", shared.MetricsPort: "metrics-server", 10248: "kubelet healthz", 53: "cluster DNS"}
	// Run alone, the test may start before the node listens: wait until
	// every listed port is open, so that the check covers all of them.
	var tcp, udp []string
	missing := func() []int {
		var out []int
		for port := range known {
			if !slices.ContainsFunc(tcp, func(a string) bool { _, p := splitAddr(t, a); return p == port }) {
				out = append(out, port)
			}
		}
		if !slices.ContainsFunc(udp, func(a string) bool { _, p := splitAddr(t, a); return p == 53 }) {
			out = append(out, 53)
		}
		return out
	}
	err := wait.PollUntilContextTimeout(t.Context(), 200*time.Millisecond, framework.PodTimeout, true, func(context.Context) (bool, error) {
		tcp, udp = listeners(t, "-ltnp", pid), listeners(t, "-lunp", pid)
		return len(missing()) == 0, nil
	})
	if err != nil {
		t.Errorf("pocketkube does not listen on the README's ports %v (TCP %v, UDP %v)", missing(), tcp, udp)
	}
	t.Logf("pocketkube (pid %d) listens on TCP %v, UDP %v", pid, tcp, udp)

	for _, addr := range udp {
		if _, port := splitAddr(t, addr); port != 53 {
			t.Errorf("UDP %s: not cluster DNS; README.md lists no such port", addr)
		}
	}
	for _, addr := range tcp {
		host, port := splitAddr(t, addr)
		what, ok := known[port]
		if !ok {
			what = "unknown listener"
			t.Errorf("TCP %s: README.md lists no such port", addr)
		}
		if port == 53 {
			continue
		}
		target := net.JoinHostPort(host, strconv.Itoa(port))
		if leak := unauthenticated(target); leak != "" {
			t.Errorf("TCP %s (%s) without credentials: %s", addr, what, leak)
		}
	}
}

// dataPaths are what etcd's peer and client HTTP handlers, the API
// server and the kubelet API serve data or take writes on.
var dataPaths = []string{
	"/members", "/version", "/v2/keys/", "/raft", "/raft/probing", "/raft/snapshot", "/members/promote/1",
	"/api/v1/namespaces/kube-system/secrets", "/apis", "/pods", "/runningpods/", "/configz", "/metrics", "/stats/summary",
	"/apis/metrics.k8s.io/v1beta1/pods", "/apis/metrics.k8s.io/v1beta1/nodes",
}

// unauthenticated returns what addr serves on dataPaths to a client
// without credentials, over plain HTTP and over TLS without a client
// certificate, or "" when it serves nothing: every request fails (a
// handshake refused for want of a certificate) or gets an error status
// (401, 403, 404, or 400 for plain HTTP to a TLS server).
func unauthenticated(addr string) string {
	var leaks []string
	clients := map[string]*http.Client{
		"http":  {Timeout: 3 * time.Second},
		"https": {Timeout: 3 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}},
	}
	for scheme, client := range clients {
		for _, p := range dataPaths {
			// The API server tells anyone its version, as every
			// cluster does (system:public-info-viewer).
			if scheme == "https" && p == "/version" {
				continue
			}
			resp, err := client.Get(scheme + "://" + addr + p)
			if err != nil {
				continue
			}
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 120))
			resp.Body.Close()
			if resp.StatusCode < 400 {
				leaks = append(leaks, fmt.Sprintf("%s GET %s: %s %q", scheme, p, resp.Status, body))
			}
		}
	}
	return strings.Join(leaks, "; ")
}

// listeners returns the local addresses of pid's sockets that
// `ss <flags>` lists (-ltnp: listening TCP, -lunp: bound UDP).
func listeners(t *testing.T, flags string, pid int) []string {
	t.Helper()
	out, err := exec.Command("ss", "-H", flags).Output()
	if err != nil {
		t.Fatalf("ss %s: %v", flags, err)
	}
	owner := regexp.MustCompile(`pid=` + strconv.Itoa(pid) + `,`)
	var addrs []string
	for line := range strings.Lines(string(out)) {
		f := strings.Fields(line)
		if len(f) >= 6 && owner.MatchString(line) {
			addrs = append(addrs, f[3])
		}
	}
	return addrs
}

// splitAddr splits ss's local address ("127.0.0.1:2380", "*:10250",
// "[::]:10250", "10.0.0.1%eth0:53") into a host to connect to and a port.
func splitAddr(t *testing.T, addr string) (string, int) {
	t.Helper()
	i := strings.LastIndexByte(addr, ':')
	if i < 0 {
		t.Fatalf("ss address %q has no port", addr)
	}
	host, portStr := strings.Trim(addr[:i], "[]"), addr[i+1:]
	if j := strings.IndexByte(host, '%'); j >= 0 {
		host = host[:j]
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		t.Fatalf("ss address %q: %v", addr, err)
	}
	switch host {
	case "*", "0.0.0.0", "::":
		host = "127.0.0.1"
	}
	return host, port
}

// The kubelet API of the real binary, on the node's address and
// --kubelet-port, as kubelet serves it with anonymous authentication off
// and the Webhook authorizer (pkg/kubelet/server/server.go
// InstallAuthFilter): 401 "Unauthorized" for a request nobody vouches for
// (no credentials, a client certificate of another CA, a bad token), 403
// with kubelet's "Forbidden (user=…, verb=…, resource=nodes,
// subresource(s)=[…])" for a user RBAC does not allow, and the answer
// itself for the API server's kubelet client certificate.

// kubeletRequest is one call of the kubelet API.
type kubeletRequest struct {
	method, path string
	// subresources are those kubelet's authorizer tries, in order
	// (KubeletFineGrainedAuthz, locked on).
	subresources string
	verb         string
}

// kubeletClient returns an HTTPS client that trusts the cluster CA and
// presents cert (none when nil), and the kubelet API's base URL.
func kubeletClient(t *testing.T, nodeIP string, cert *tls.Certificate) (*http.Client, string) {
	t.Helper()
	caPEM, err := os.ReadFile(filepath.Join(shared.DataDir, "pki", "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		t.Fatal("no certificate in the cluster CA file")
	}
	cfg := &tls.Config{RootCAs: pool}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
	t.Cleanup(client.CloseIdleConnections)
	return client, "https://" + net.JoinHostPort(nodeIP, strconv.Itoa(shared.KubeletPort))
}

// kubeletDo sends r and returns the status and body.
func kubeletDo(t *testing.T, client *http.Client, base string, r kubeletRequest, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), r.method, base+r.path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", r.method, r.path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", r.method, r.path, err)
	}
	return resp.StatusCode, string(body)
}

// issueCert signs a client certificate for user with the CA in dir.
func issueCert(t *testing.T, dir, user string) *tls.Certificate {
	t.Helper()
	ca, err := pki.LoadAuthority(filepath.Join(dir, "ca.crt"), filepath.Join(dir, "ca.key"))
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := ca.Issue(pki.Spec{CommonName: user}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return &cert
}

func TestKubeletAPIAuth(t *testing.T) {
	t.Parallel()
	c, ns := busyboxNamespace(t, "kubelet-auth-")
	nodeIP := nodeInternalIP(t, c)
	pod := busyboxSleeper(ns, "talker")
	pod.Spec.Containers[0].Command = []string{"sh", "-c", "echo hello from talker; exec sleep 3600"}
	framework.RunPods(t, c, pod)

	requests := []kubeletRequest{
		{"GET", "/pods", "[pods proxy]", "get"},
		{"GET", "/runningpods/", "[pods proxy]", "get"},
		{"GET", "/healthz", "[healthz proxy]", "get"},
		{"GET", "/logs/", "[log]", "get"},
		{"GET", "/containerLogs/" + ns + "/talker/main", "[proxy]", "get"},
		{"POST", "/exec/" + ns + "/talker/main?command=true&output=1", "[proxy]", "create"},
	}
	pkiDir := filepath.Join(shared.DataDir, "pki")

	t.Run("anonymous", func(t *testing.T) {
		client, base := kubeletClient(t, nodeIP, nil)
		for _, r := range requests {
			if code, body := kubeletDo(t, client, base, r, ""); code != http.StatusUnauthorized || body != "Unauthorized" {
				t.Errorf("%s %s without credentials: %d %q, want 401 \"Unauthorized\"", r.method, r.path, code, body)
			}
		}
	})

	t.Run("certificate of another CA", func(t *testing.T) {
		other := t.TempDir()
		if _, err := pki.Ensure(pki.Config{Dir: other, ServiceIP: net.IPv4(10, 96, 0, 1)}); err != nil {
			t.Fatal(err)
		}
		// The same name as the API server's own client: only the CA
		// differs. Kubelet asks for client certificates without
		// requiring them (tls.RequestClientCert), so the handshake
		// succeeds and its x509 authenticator refuses.
		client, base := kubeletClient(t, nodeIP, issueCert(t, other, pki.KubeletClientUser))
		for _, r := range requests {
			if code, body := kubeletDo(t, client, base, r, ""); code != http.StatusUnauthorized || body != "Unauthorized" {
				t.Errorf("%s %s with a foreign certificate: %d %q, want 401 \"Unauthorized\"", r.method, r.path, code, body)
			}
		}
	})

	t.Run("bad token", func(t *testing.T) {
		client, base := kubeletClient(t, nodeIP, nil)
		if code, body := kubeletDo(t, client, base, requests[0], "not-a-token"); code != http.StatusUnauthorized || body != "Unauthorized" {
			t.Errorf("GET /pods with a bad token: %d %q, want 401 \"Unauthorized\"", code, body)
		}
	})

	t.Run("user without RBAC", func(t *testing.T) {
		user := "negcases-nobody-" + rand.String(6)
		client, base := kubeletClient(t, nodeIP, issueCert(t, pkiDir, user))
		for _, r := range requests {
			want := "Forbidden (user=" + user + ", verb=" + r.verb + ", resource=nodes, subresource(s)=" + r.subresources + ")\n"
			if code, body := kubeletDo(t, client, base, r, ""); code != http.StatusForbidden || body != want {
				t.Errorf("%s %s as %s: %d %q, want 403 %q", r.method, r.path, user, code, body, want)
			}
		}
	})

	t.Run("service account token without RBAC", func(t *testing.T) {
		tr, err := c.CoreV1().ServiceAccounts(ns).CreateToken(t.Context(), "default", &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		client, base := kubeletClient(t, nodeIP, nil)
		want := "Forbidden (user=system:serviceaccount:" + ns + ":default, verb=get, resource=nodes, subresource(s)=[pods proxy])\n"
		if code, body := kubeletDo(t, client, base, requests[0], tr.Status.Token); code != http.StatusForbidden || body != want {
			t.Errorf("GET /pods with a service account token: %d %q, want 403 %q", code, body, want)
		}
	})

	t.Run("user allowed nodes/pods only", func(t *testing.T) {
		// The fine-grained subresource allows /pods; the rest still
		// needs nodes/proxy.
		user := "negcases-pods-reader-" + rand.String(6)
		allowNodesSubresource(t, c, user, "pods")
		client, base := kubeletClient(t, nodeIP, issueCert(t, pkiDir, user))
		// The API server's RBAC informer may lag the binding by a moment,
		// and the kubelet API caches a denial (30 s upstream).
		var code int
		var body string
		err := wait.PollUntilContextTimeout(t.Context(), 200*time.Millisecond, 40*time.Second, true, func(context.Context) (bool, error) {
			code, body = kubeletDo(t, client, base, requests[0], "")
			return code == http.StatusOK, nil
		})
		if err != nil {
			t.Errorf("GET /pods as %s with nodes/pods: %d %q, want 200", user, code, body)
		}
		r := requests[4]
		want := "Forbidden (user=" + user + ", verb=get, resource=nodes, subresource(s)=[proxy])\n"
		if code, body := kubeletDo(t, client, base, r, ""); code != http.StatusForbidden || body != want {
			t.Errorf("GET %s as %s: %d %q, want 403 %q", r.path, user, code, body, want)
		}
	})

	t.Run("API server client certificate", func(t *testing.T) {
		cert, err := tls.LoadX509KeyPair(filepath.Join(pkiDir, "apiserver-kubelet-client.crt"), filepath.Join(pkiDir, "apiserver-kubelet-client.key"))
		if err != nil {
			t.Fatal(err)
		}
		client, base := kubeletClient(t, nodeIP, &cert)
		code, body := kubeletDo(t, client, base, requests[0], "")
		var pods corev1.PodList
		if code != http.StatusOK || json.Unmarshal([]byte(body), &pods) != nil {
			t.Fatalf("GET /pods as the API server: %d %.200q, want 200 and a PodList", code, body)
		}
		found := false
		for _, p := range pods.Items {
			found = found || (p.Namespace == ns && p.Name == "talker")
		}
		if !found {
			t.Errorf("GET /pods as the API server: no %s/talker among %d pods", ns, len(pods.Items))
		}
		if code, body := kubeletDo(t, client, base, requests[4], ""); code != http.StatusOK || body != "hello from talker\n" {
			t.Errorf("GET %s as the API server: %d %q, want 200 \"hello from talker\\n\"", requests[4].path, code, body)
		}
		if code, body := kubeletDo(t, client, base, requests[2], ""); code != http.StatusOK || body != "ok" {
			t.Errorf("GET /healthz as the API server: %d %q, want 200 \"ok\"", code, body)
		}
	})
}

// Pod fields that change a pod's security (issue 13, item 3): each is
// applied and checked from inside the container, or the pod is refused
// with the status kubelet gives. A pod never runs looser than it asked.

// sysctlPod is upstream's testPod (test/e2e/common/node/sysctl.go): one
// busybox container that runs once.
func sysctlPod(ns, name string, sysctls []corev1.Sysctl, cmd ...string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: corev1.PodSpec{
			TerminationGracePeriodSeconds: new(int64),
			RestartPolicy:                 corev1.RestartPolicyNever,
			SecurityContext:               &corev1.PodSecurityContext{Sysctls: sysctls},
			Containers:                    []corev1.Container{{Name: "test-container", Image: "busybox", Command: cmd}},
		},
	}
}

// podEvents returns the node's events about the pod as "Type Reason
// Message" lines (not the scheduler's: a FailedScheduling while the node
// becomes ready says nothing about the node).
func podEvents(ctx context.Context, t *testing.T, c kubernetes.Interface, ns, name string) []string {
	t.Helper()
	list, err := c.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=" + name})
	if err != nil {
		t.Fatalf("list events of %s: %v", name, err)
	}
	var out []string
	for _, e := range list.Items {
		if e.Source.Component != "kubelet" && e.ReportingController != "kubelet" {
			continue
		}
		out = append(out, e.Type+" "+e.Reason+" "+e.Message)
	}
	return out
}

// runToSuccess waits for the pod to succeed with no Warning event (upstream's
// WaitForErrorEventOrSuccess) and returns its log.
func runToSuccess(t *testing.T, c kubernetes.Interface, pod *corev1.Pod) string {
	t.Helper()
	ctx := t.Context()
	framework.CreatePod(t, c, pod)
	p, err := framework.WaitPodIn(ctx, c, pod.Namespace, pod.Name, framework.PodTimeout, func(p *corev1.Pod) (bool, error) {
		return p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	log, _ := framework.PodLogs(ctx, c, pod.Namespace, pod.Name, pod.Spec.Containers[0].Name)
	for _, e := range podEvents(ctx, t, c, pod.Namespace, pod.Name) {
		if strings.HasPrefix(e, "Warning ") {
			t.Errorf("pod %s: event %q", pod.Name, e)
		}
	}
	if p.Status.Phase != corev1.PodSucceeded {
		t.Fatalf("pod %s: %s (%s: %s), log %q; want Succeeded", pod.Name, framework.PodStatus(p), p.Status.Reason, p.Status.Message, log)
	}
	return log
}

// expectRejected waits for kubelet's admission verdict on the pod: phase
// Failed with reason and message, the same Warning event, and not one
// container started.
func expectRejected(t *testing.T, c kubernetes.Interface, pod *corev1.Pod, reason, message string) {
	t.Helper()
	ctx := t.Context()
	framework.CreatePod(t, c, pod)
	p, err := framework.WaitPodIn(ctx, c, pod.Namespace, pod.Name, framework.PodTimeout, func(p *corev1.Pod) (bool, error) {
		return p.Status.Phase == corev1.PodFailed || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodRunning, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if p.Status.Phase != corev1.PodFailed || p.Status.Reason != reason || p.Status.Message != message {
		t.Fatalf("pod %s: phase %s reason %q message %q (%s); want Failed, %q, %q",
			pod.Name, p.Status.Phase, p.Status.Reason, p.Status.Message, framework.PodStatus(p), reason, message)
	}
	for _, cs := range p.Status.ContainerStatuses {
		if cs.State.Running != nil || cs.State.Terminated != nil || cs.ContainerID != "" {
			t.Errorf("pod %s: container %s ran: %s", pod.Name, cs.Name, framework.PodStatus(p))
		}
	}
	want := "Warning " + reason + " " + strings.TrimPrefix(message, "Pod was rejected: ")
	var events []string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		events = podEvents(ctx, t, c, pod.Namespace, pod.Name)
		for _, e := range events {
			if e == want {
				return
			}
		}
	}
	t.Errorf("pod %s: events %q, want %q", pod.Name, events, want)
}

// TestSysctls ports upstream's conformance spec "Sysctls [LinuxOnly]
// [NodeConformance]" (test/e2e/common/node/sysctl.go): kubelet's safe
// sysctls are set in the pod's namespaces, any other sysctl gets the pod
// rejected by kubelet's admission (SysctlForbidden), and the API server
// refuses invalid names. Before, pocketkube ran every such pod with the
// kernel's values, whatever it asked.
func TestSysctls(t *testing.T) {
	t.Parallel()
	c := shared.Client(t)
	shared.ImportBusybox(t, "busybox")
	ns := framework.NewNamespace(t, c, "sysctl-")

	for _, tc := range []struct{ spec, pod, name string }{
		{"should support sysctls", "sysctl-dots", "kernel.shm_rmid_forced"},
		{"should support sysctls with slashes as separator", "sysctl-slashes", "kernel/shm_rmid_forced"},
	} {
		t.Run(tc.spec, func(t *testing.T) {
			t.Parallel()
			log := runToSuccess(t, c, sysctlPod(ns, tc.pod,
				[]corev1.Sysctl{{Name: tc.name, Value: "1"}},
				"/bin/sysctl", tc.name))
			if !strings.Contains(log, "kernel.shm_rmid_forced = 1") {
				t.Errorf("log %q, want kernel.shm_rmid_forced = 1", log)
			}
		})
	}

	// Beyond upstream's spec: a net.* sysctl lands in the pod's network
	// namespace (read back through /proc/sys) and not on the host.
	t.Run("net sysctl in the pod's network namespace only", func(t *testing.T) {
		t.Parallel()
		const file = "/proc/sys/net/ipv4/ip_unprivileged_port_start"
		host, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		log := runToSuccess(t, c, sysctlPod(ns, "sysctl-net",
			[]corev1.Sysctl{{Name: "net.ipv4.ip_unprivileged_port_start", Value: "42"}, {Name: "kernel.shm_rmid_forced", Value: "1"}},
			"sh", "-c", "cat "+file+" /proc/sys/kernel/shm_rmid_forced"))
		if log != "42\n1\n" {
			t.Errorf("log %q, want 42 and 1", log)
		}
		if after, _ := os.ReadFile(file); string(after) != string(host) {
			t.Errorf("host's %s changed from %q to %q", file, host, after)
		}
	})

	t.Run("should reject invalid sysctls", func(t *testing.T) {
		t.Parallel()
		pod := sysctlPod(ns, "sysctl-invalid", []corev1.Sysctl{
			{Name: "foo-", Value: "bar"},
			{Name: "kernel.shmmax", Value: "100000000"},
			{Name: "safe-and-unsafe", Value: "100000000"},
			{Name: "bar..", Value: "42"},
		}, "true")
		_, err := c.CoreV1().Pods(ns).Create(t.Context(), pod, metav1.CreateOptions{})
		if err == nil {
			c.CoreV1().Pods(ns).Delete(context.Background(), pod.Name, metav1.DeleteOptions{})
			t.Fatal("pod with invalid sysctl names created")
		}
		msg := err.Error()
		if !strings.Contains(msg, `Invalid value: "foo-"`) || !strings.Contains(msg, `Invalid value: "bar.."`) ||
			strings.Contains(msg, "safe-and-unsafe") || strings.Contains(msg, "kernel.shmmax") {
			t.Errorf("error %q, want foo- and bar.. invalid only", msg)
		}
	})

	t.Run("should not launch unsafe, but not explicitly enabled sysctls on the node", func(t *testing.T) {
		t.Parallel()
		expectRejected(t, c, sysctlPod(ns, "sysctl-unsafe",
			[]corev1.Sysctl{{Name: "kernel.msgmax", Value: "10000000000"}}, "true"),
			"SysctlForbidden", `Pod was rejected: forbidden sysctl: "kernel.msgmax" not allowlisted`)
	})

	// A safe net.* sysctl with the host's network namespace would set it
	// for the whole node: the API server refuses it (kubelet's allowlist
	// would too, see the agent's TestSyncPodSysctls).
	t.Run("net sysctl refused with hostNetwork", func(t *testing.T) {
		t.Parallel()
		pod := sysctlPod(ns, "sysctl-hostnet",
			[]corev1.Sysctl{{Name: "net.ipv4.ip_local_port_range", Value: "40000 40100"}}, "true")
		pod.Spec.HostNetwork = true
		_, err := c.CoreV1().Pods(ns).Create(t.Context(), pod, metav1.CreateOptions{})
		if err == nil {
			c.CoreV1().Pods(ns).Delete(context.Background(), pod.Name, metav1.DeleteOptions{})
			t.Fatal("hostNetwork pod with a net.* sysctl created")
		}
		if !strings.Contains(err.Error(), "may not be specified when 'hostNetwork' is true") {
			t.Errorf("error %q, want the hostNetwork refusal", err)
		}
	})
}

// expectSandboxRefused waits for kubelet's FailedCreatePodSandBox event
// with message on the pod, then checks that the pod is still Pending and
// that no container of it ever ran.
func expectSandboxRefused(t *testing.T, c kubernetes.Interface, pod *corev1.Pod, message string) {
	t.Helper()
	ctx := t.Context()
	framework.CreatePod(t, c, pod)
	want := "Warning FailedCreatePodSandBox Failed to create pod sandbox: " + message
	var events []string
	found := false
	for deadline := time.Now().Add(framework.PodTimeout); !found && time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		events = podEvents(ctx, t, c, pod.Namespace, pod.Name)
		for _, e := range events {
			found = found || e == want
		}
		// Stop at once when it runs after all, as it did before.
		if p, err := c.CoreV1().Pods(pod.Namespace).Get(ctx, pod.Name, metav1.GetOptions{}); err == nil && p.Status.Phase != corev1.PodPending {
			t.Fatalf("pod %s: %s; want Pending, its sandbox refused (events %q)", pod.Name, framework.PodStatus(p), events)
		}
	}
	if !found {
		t.Fatalf("pod %s: events %q, want %q", pod.Name, events, want)
	}
	p, err := c.CoreV1().Pods(pod.Namespace).Get(ctx, pod.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if p.Status.Phase != corev1.PodPending {
		t.Errorf("pod %s: phase %s, want Pending", pod.Name, p.Status.Phase)
	}
	for _, cs := range p.Status.ContainerStatuses {
		if cs.ContainerID != "" || cs.State.Waiting == nil || cs.State.Waiting.Reason != "ContainerCreating" {
			t.Errorf("pod %s: %s, want container %s waiting in ContainerCreating", pod.Name, framework.PodStatus(p), cs.Name)
		}
	}
}

// TestRuntimeClass: pocketkube has one runtime handler, runc. A pod whose
// RuntimeClass names another (kata, gVisor: stronger isolation than runc
// gives) must not run with runc: its sandbox fails as containerd fails
// RunPodSandbox for a handler it has no runtime for. A RuntimeClass with
// handler runc runs; a missing one is refused by the RuntimeClass
// admission plugin. Before, runtimeClassName was ignored.
func TestRuntimeClass(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	c := shared.Client(t)
	shared.ImportBusybox(t, "busybox")
	ns := framework.NewNamespace(t, c, "runtimeclass-")
	for name, handler := range map[string]string{ns + "-kata": "kata", ns + "-runc": "runc"} {
		if _, err := c.NodeV1().RuntimeClasses().Create(ctx, &nodev1.RuntimeClass{
			ObjectMeta: metav1.ObjectMeta{Name: name}, Handler: handler,
		}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.NodeV1().RuntimeClasses().Delete(context.Background(), name, metav1.DeleteOptions{}) })
	}
	withClass := func(name, class string) *corev1.Pod {
		pod := sysctlPod(ns, name, nil, "true")
		pod.Spec.SecurityContext = nil
		pod.Spec.RuntimeClassName = &class
		return pod
	}

	t.Run("unknown handler", func(t *testing.T) {
		t.Parallel()
		expectSandboxRefused(t, c, withClass("kata", ns+"-kata"),
			`failed to get sandbox runtime: no runtime for "kata" is configured`)
	})
	t.Run("runc handler", func(t *testing.T) {
		t.Parallel()
		runToSuccess(t, c, withClass("runc", ns+"-runc"))
	})
	t.Run("missing RuntimeClass", func(t *testing.T) {
		t.Parallel()
		_, err := c.CoreV1().Pods(ns).Create(t.Context(), withClass("missing", ns+"-missing"), metav1.CreateOptions{})
		if err == nil || !strings.Contains(err.Error(), `RuntimeClass "`+ns+`-missing" not found`) {
			t.Errorf("create pod with a missing RuntimeClass: %v, want RuntimeClass admission's refusal", err)
		}
	})
}

// TestProcMount: procMount Unmasked needs hostUsers: false (the API
// server refuses it otherwise), and pocketkube has no user namespaces,
// so such a pod fails its sandbox with kubelet's message for a runtime
// without them instead of running as root in the host's user namespace
// with /proc unmasked. procMount Default keeps the masked and read-only
// /proc paths.
func TestProcMount(t *testing.T) {
	t.Parallel()
	c := shared.Client(t)
	shared.ImportBusybox(t, "busybox")
	ns := framework.NewNamespace(t, c, "procmount-")
	withProcMount := func(name string, pm corev1.ProcMountType, hostUsers *bool, cmd ...string) *corev1.Pod {
		pod := sysctlPod(ns, name, nil, cmd...)
		pod.Spec.SecurityContext = nil
		pod.Spec.HostUsers = hostUsers
		pod.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{ProcMount: &pm}
		return pod
	}

	t.Run("Default", func(t *testing.T) {
		t.Parallel()
		log := runToSuccess(t, c, withProcMount("default", corev1.DefaultProcMount, nil,
			"sh", "-c", "grep -c ' /proc/timer_list ' /proc/mounts; grep ' /proc/sys ' /proc/mounts | cut -d' ' -f4 | cut -d, -f1"))
		if log != "1\nro\n" {
			t.Errorf("log %q, want /proc/timer_list masked (1) and /proc/sys ro", log)
		}
	})
	t.Run("Unmasked with host users", func(t *testing.T) {
		t.Parallel()
		_, err := c.CoreV1().Pods(ns).Create(t.Context(), withProcMount("unmasked-host", corev1.UnmaskedProcMount, nil, "true"), metav1.CreateOptions{})
		if err == nil || !strings.Contains(err.Error(), "`hostUsers` must be false to use `Unmasked`") {
			t.Errorf("create pod: %v, want the API server's refusal", err)
		}
	})
	t.Run("Unmasked without host users", func(t *testing.T) {
		t.Parallel()
		expectSandboxRefused(t, c, withProcMount("unmasked", corev1.UnmaskedProcMount, new(false), "true"),
			"can't set `spec.hostUsers: false`, runtime does not support user namespaces")
	})
}

// TestShareProcessNamespace ports the node e2e specs of
// test/e2e_node/security_context_test.go ("when pod PID namespace is
// configurable"): without shareProcessNamespace each container's process
// is PID 1 of a namespace of its own; with it, both containers see the
// same processes, and PID 1 is the pod's pause process, as with kubelet
// and containerd. Before, the field was ignored.
func TestShareProcessNamespace(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	c := shared.Client(t)
	shared.ImportBusybox(t, "busybox")
	ns := framework.NewNamespace(t, c, "pidns-")
	pod := func(name string, share bool) *corev1.Pod {
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec: corev1.PodSpec{
				TerminationGracePeriodSeconds: new(int64),
				ShareProcessNamespace:         &share,
				Containers: []corev1.Container{
					{Name: "test-container-1", Image: "busybox", Command: []string{"/bin/top"}},
					{Name: "test-container-2", Image: "busybox", Command: []string{"/bin/sleep"}, Args: []string{"10000"}},
				},
			},
		}
	}
	framework.RunPods(t, c, pod("isolated-pid-ns-test-pod", false), pod("shared-pid-ns-test-pod", true))
	exec := func(pod, container string, args ...string) string {
		t.Helper()
		out, err := shared.Kubectl(ctx, framework.Newest(), append([]string{"-n", ns, "exec", pod, "-c", container, "--"}, args...)...)
		if err != nil {
			t.Fatalf("exec %v in %s/%s: %v", args, pod, container, err)
		}
		return strings.TrimSpace(out)
	}

	t.Run("containers in pods using isolated PID namespaces should all receive PID 1", func(t *testing.T) {
		pid1 := exec("isolated-pid-ns-test-pod", "test-container-1", "/bin/pidof", "top")
		pid2 := exec("isolated-pid-ns-test-pod", "test-container-2", "/bin/pidof", "sleep")
		if pid1 != "1" || pid2 != "1" {
			t.Errorf("PIDs of different containers are not all 1: test-container-1=%v, test-container-2=%v", pid1, pid2)
		}
	})
	t.Run("processes in containers sharing a pod namespace should be able to see each other", func(t *testing.T) {
		pid1 := exec("shared-pid-ns-test-pod", "test-container-1", "/bin/pidof", "top")
		pid2 := exec("shared-pid-ns-test-pod", "test-container-2", "/bin/pidof", "top")
		if pid1 != pid2 || pid1 == "" || pid1 == "1" {
			t.Errorf("PIDs are not the same in different containers: test-container-1=%v, test-container-2=%v", pid1, pid2)
		}
		if got := exec("shared-pid-ns-test-pod", "test-container-2", "sh", "-c", `tr '\0' ' ' < /proc/1/cmdline`); got != "/pause pause" {
			t.Errorf("PID 1 is %q, want the pause process", got)
		}
	})
}

// TestAPIServerVerifiesKubelet (issue 13): the API server hands `kubectl
// logs`, exec and port-forward only to a kubelet whose serving
// certificate the cluster CA signed (--kubelet-certificate-authority).
// The node's real certificate verifies against the CA for every address
// the Node reports, the address type the API server dials included. A
// Node whose address leads to an impostor (a TLS server with a
// certificate of its own, as a process that took the kubelet's port
// would have) gets no request: before the fix the API server sent it the
// logs request, with its kubelet-client credentials, and relayed its
// answer as the container's log; now it answers 500 and logs the
// verification error.
//
// Not parallel: the impostor Node exists only while no other test runs,
// since several count the cluster's nodes.
func TestAPIServerVerifiesKubelet(t *testing.T) {
	ctx := t.Context()
	c := shared.Client(t)
	caPEM, err := os.ReadFile(filepath.Join(shared.DataDir, "pki", "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)

	// The shared cluster's node, once it reported its addresses.
	var node corev1.Node
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, framework.PodTimeout, true, func(ctx context.Context) (bool, error) {
		nodes, err := c.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil || len(nodes.Items) != 1 {
			return false, nil
		}
		node = nodes.Items[0]
		// With its pod CIDR: the impostor must not take the first one.
		return len(node.Status.Addresses) > 0 && node.Status.DaemonEndpoints.KubeletEndpoint.Port != 0 && node.Spec.PodCIDR != "", nil
	})
	if err != nil {
		t.Fatalf("no node with addresses: %v (%+v)", err, node.Status)
	}
	port := strconv.Itoa(int(node.Status.DaemonEndpoints.KubeletEndpoint.Port))
	var dialHost string
	for _, a := range node.Status.Addresses {
		if a.Type == corev1.NodeInternalIP {
			dialHost = a.Address
			break
		}
	}
	if dialHost == "" {
		t.Fatalf("node %s has no InternalIP: %v", node.Name, node.Status.Addresses)
	}
	// The certificate must name every address of the Node, whichever of
	// them the API server dials (--kubelet-preferred-address-types).
	for _, a := range node.Status.Addresses {
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", net.JoinHostPort(dialHost, port),
			&tls.Config{RootCAs: roots, ServerName: a.Address})
		if err != nil {
			t.Errorf("kubelet serving certificate for Node address %s %s: %v", a.Type, a.Address, err)
			continue
		}
		conn.Close()
	}

	// The impostor: httptest's certificate, from a CA of its own, for
	// 127.0.0.1.
	var requests atomic.Int32
	impostor := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		io.WriteString(w, "log from an impostor\n")
	}))
	impostor.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes
	impostor.StartTLS()
	defer impostor.Close()
	_, impostorPort, _ := net.SplitHostPort(impostor.Listener.Addr().String())
	portNum, _ := strconv.Atoi(impostorPort)

	fake := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "impostor-node"},
		// Never a candidate for the scheduler or DaemonSets.
		Spec: corev1.NodeSpec{Unschedulable: true, Taints: []corev1.Taint{{Key: "pocketkube.test/impostor", Effect: corev1.TaintEffectNoSchedule}}},
	}
	if fake, err = c.CoreV1().Nodes().Create(ctx, fake, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx := context.Background() // t.Context() is done by now
		zero := int64(0)
		c.CoreV1().Pods("default").Delete(ctx, "impostor-logs", metav1.DeleteOptions{GracePeriodSeconds: &zero})
		c.CoreV1().Nodes().Delete(ctx, "impostor-node", metav1.DeleteOptions{})
	})
	// The controller manager writes the new Node too (its taints): the
	// update retries on a conflict.
	if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		n, err := c.CoreV1().Nodes().Get(ctx, fake.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		n.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "127.0.0.1"}}
		n.Status.DaemonEndpoints.KubeletEndpoint.Port = int32(portNum)
		_, err = c.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "impostor-logs", Namespace: "default"},
		Spec: corev1.PodSpec{
			NodeName:    "impostor-node",
			Tolerations: []corev1.Toleration{{Operator: corev1.TolerationOpExists}},
			Containers:  []corev1.Container{{Name: "c", Image: "busybox"}},
		},
	}
	if _, err := c.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	out, err := c.CoreV1().Pods("default").GetLogs("impostor-logs", &corev1.PodLogOptions{}).DoRaw(ctx)
	if err == nil {
		t.Errorf("logs through a kubelet with a certificate the cluster CA did not sign: %q, want an error", out)
	}
	// The API server answers 500 "unknown" and logs why.
	if !waitOutput(shared, "127.0.0.1:"+impostorPort+"/containerLogs/default/impostor-logs/c", "certificate signed by unknown authority") {
		t.Errorf("logs through the impostor: %v; the API server logged no certificate verification error", err)
	}
	if n := requests.Load(); n != 0 {
		t.Errorf("the impostor got %d requests from the API server", n)
	}
}

// waitOutput waits up to 5 s for a line of c's output holding every one
// of words.
func waitOutput(c *framework.Cluster, words ...string) bool {
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		for _, line := range strings.Split(c.Output(), "\n") {
			found := true
			for _, w := range words {
				found = found && strings.Contains(line, w)
			}
			if found {
				return true
			}
		}
	}
	return false
}
