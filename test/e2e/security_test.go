//go:build e2e

package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/apimachinery/pkg/util/wait"

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
	tcp := listeners(t, "-ltnp", pid)
	udp := listeners(t, "-lunp", pid)
	t.Logf("pocketkube (pid %d) listens on TCP %v, UDP %v", pid, tcp, udp)

	known := map[int]string{shared.Port: "API server", shared.KubeletPort: "kubelet API", 53: "cluster DNS"}
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
		role := &rbacv1.ClusterRole{
			ObjectMeta: metav1.ObjectMeta{Name: user},
			Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"nodes/pods"}, Verbs: []string{"get"}}},
		}
		binding := &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: user},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: user},
			Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: user}},
		}
		if _, err := c.RbacV1().ClusterRoles().Create(t.Context(), role, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			// t.Context() is canceled before cleanups run.
			c.RbacV1().ClusterRoleBindings().Delete(context.Background(), user, metav1.DeleteOptions{})
			c.RbacV1().ClusterRoles().Delete(context.Background(), user, metav1.DeleteOptions{})
		})
		if _, err := c.RbacV1().ClusterRoleBindings().Create(t.Context(), binding, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
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
