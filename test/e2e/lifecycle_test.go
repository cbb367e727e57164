//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/pocketkube/pocketkube/internal/pki"
	"github.com/pocketkube/pocketkube/test/framework"
)

func startOwnCluster(t *testing.T, dataDir string, extra ...string) *framework.Cluster {
	t.Helper()
	port, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return startOwnClusterOnPort(t, dataDir, port, extra...)
}

// startOwnClusterOnPort starts a control-plane-only cluster, beside the
// shared one on the host's network: these tests are about the control
// plane. Tests of a node that stops or restarts use startNodeCluster.
func startOwnClusterOnPort(t *testing.T, dataDir string, port int, extra ...string) *framework.Cluster {
	t.Helper()
	c, err := StartClusterOnPort(dataDir, port, append([]string{"--disable-agent"}, extra...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		select {
		case <-c.Done():
		default:
			c.Kill()
		}
		if t.Failed() {
			t.Logf("cluster output:\n%s", framework.Tail(c.Output(), 80))
		}
	})
	return c
}

// startNodeCluster starts a cluster with its node agent in a network
// namespace of its own (framework.ClusterConfig.NetNS), beside the shared
// cluster, with extra flags of `up`. Its cleanup stops it and removes the
// namespace, and fails the test if anything of it was left to kill,
// unmount or remove.
func startNodeCluster(t *testing.T, extra ...string) *framework.Cluster {
	t.Helper()
	return startNodeClusterConfig(t, framework.ClusterConfig{Args: extra})
}

// startNodeClusterConfig is startNodeCluster with more of cfg (the
// binary, data dir and NetNS are filled in).
func startNodeClusterConfig(t *testing.T, cfg framework.ClusterConfig) *framework.Cluster {
	t.Helper()
	cfg.Binary, cfg.DataDir, cfg.NetNS = Binary, filepath.Join(t.TempDir(), "c"), true
	c, err := framework.StartCluster(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("node cluster output:\n%s", framework.Tail(c.Current().Output(), 80))
		}
		if err := c.Cleanup(); err != nil {
			t.Errorf("clean up the node cluster: %v", err)
		}
	})
	return c
}

// restartNode starts the stopped cluster c again; the test's cleanup
// (startNodeCluster) stops the new one.
func restartNode(t *testing.T, c *framework.Cluster) *framework.Cluster {
	t.Helper()
	n, err := c.Restart()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// stopCleanly sends Ctrl-C and checks what the contract promises: exit 0
// within 10 s, and nothing left running. It returns how long the stop took.
// The pods the API holds when Ctrl-C comes are the ones whose processes,
// mounts and cgroups must be gone afterwards.
func stopCleanly(t *testing.T, c *framework.Cluster) time.Duration {
	t.Helper()
	var uids []string
	if pods, err := c.Client(t).CoreV1().Pods("").List(context.Background(), metav1.ListOptions{}); err == nil {
		for _, p := range pods.Items {
			uids = append(uids, string(p.UID))
		}
	} else {
		t.Errorf("list pods before Ctrl-C: %v", err)
	}
	took, err := c.Stop(10 * time.Second)
	if err != nil {
		t.Fatalf("stop: %v (after %s)", err, took)
	}
	t.Logf("stopped in %s with %d pods", took.Round(time.Millisecond), len(uids))
	for _, l := range clusterLeftovers(c.DataDir, uids) {
		t.Error(l)
	}
	if _, err := os.Stat(filepath.Join(c.DataDir, "etcd", "etcd.sock")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("etcd socket left behind: %v", err)
	}
	if conn, err := net.Dial("tcp", net.JoinHostPort(c.Host, strconv.Itoa(c.Port))); err == nil {
		conn.Close()
		t.Errorf("port %d still accepts connections", c.Port)
	}
	return took
}

// clusterLeftovers lists what a stopped cluster on dataDir left on the
// host: processes that name dataDir (shims: --bundle DIR) or sit in the
// cgroup of one of the pods uids (containers, runc init, exec sessions),
// mounts under dataDir (rootfs, volumes, netns) or named for a pod, and
// the pods' cgroups.
func clusterLeftovers(dataDir string, uids []string) []string {
	var out []string
	ofPod := func(s string) bool {
		for _, uid := range uids {
			if strings.Contains(s, uid) || strings.Contains(s, strings.ReplaceAll(uid, "-", "_")) {
				return true
			}
		}
		return false
	}
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, dir := range procs {
		cmdline, err := os.ReadFile(filepath.Join(dir, "cmdline"))
		if err != nil || len(cmdline) == 0 {
			continue // gone meanwhile, or a kernel thread
		}
		cmd := strings.TrimSpace(strings.ReplaceAll(string(cmdline), "\x00", " "))
		cgroup, _ := os.ReadFile(filepath.Join(dir, "cgroup"))
		if strings.Contains(cmd, dataDir) || ofPod(string(cgroup)) {
			out = append(out, fmt.Sprintf("process left: %s %s (cgroup %s)", filepath.Base(dir), cmd, strings.TrimSpace(string(cgroup))))
		}
	}
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	for _, line := range strings.Split(string(mounts), "\n") {
		if strings.Contains(line, dataDir) || ofPod(line) {
			out = append(out, "mount left: "+line)
		}
	}
	filepath.WalkDir("/sys/fs/cgroup", func(path string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() && ofPod(d.Name()) {
			out = append(out, "cgroup left: "+path)
			return filepath.SkipDir
		}
		return nil
	})
	return out
}

func TestRestartResumesObjects(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "c")
	c := startOwnCluster(t, dir)
	cs := c.Client(t)
	cm, err := cs.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "survives"},
		Data:       map[string]string{"key": "value"},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig, _ := os.ReadFile(c.Kubeconfig)
	ca, _ := os.ReadFile(filepath.Join(dir, "pki", "ca.crt"))
	stopCleanly(t, c)

	c = startOwnClusterOnPort(t, dir, c.Port)
	// The kubeconfig written before the restart still works: same CA, same
	// admin certificate.
	cs = c.Client(t)
	got, err := cs.CoreV1().ConfigMaps("default").Get(ctx, "survives", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.UID != cm.UID || got.Data["key"] != "value" {
		t.Errorf("after restart: uid %s data %v, want uid %s and key=value", got.UID, got.Data, cm.UID)
	}
	if ca2, _ := os.ReadFile(filepath.Join(dir, "pki", "ca.crt")); !bytes.Equal(ca, ca2) {
		t.Error("the cluster CA changed across a restart")
	}
	if k2, _ := os.ReadFile(c.Kubeconfig); !bytes.Equal(kubeconfig, k2) {
		t.Error("the admin kubeconfig changed across a restart")
	}
	stopCleanly(t, c)
}

func TestSecondUpOnSameDirIsRefused(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	port, _ := FreePort()
	out, err := exec.CommandContext(ctx, Binary, "up", "--data-dir", shared.DataDir, "--listen", fmt.Sprintf("127.0.0.1:%d", port)).CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("second up: %v, want exit code 1\n%s", err, out)
	}
	want := fmt.Sprintf("data directory in use: pocketkube (pid %d) holds %s", shared.Pid(), filepath.Join(shared.DataDir, "lock"))
	if !strings.Contains(string(out), want) {
		t.Errorf("second up said:\n%s\nwant it to say %q", out, want)
	}
	// The running cluster is untouched.
	if _, err := shared.Client(t).CoreV1().Namespaces().Get(context.Background(), "default", metav1.GetOptions{}); err != nil {
		t.Errorf("shared cluster after the refused start: %v", err)
	}
}

func TestBadFlagsAreRefused(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"listen without port", []string{"--listen", "127.0.0.1"}, `--listen "127.0.0.1"`},
		{"listen host name", []string{"--listen", "example.com:6443"}, "host must be an IP address"},
		{"advertise not an IP", []string{"--advertise-address", "nope"}, `--advertise-address "nope" is not an IP address`},
		{"etcd TLS without servers", []string{"--etcd-cafile", "/x"}, "need --etcd-servers"},
		{"extra argument", []string{"now"}, `unknown command "now"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "d")
			out, err := exec.Command(Binary, append([]string{"up", "--data-dir", dir}, tt.args...)...).CombinedOutput()
			if err == nil || !strings.Contains(string(out), tt.want) {
				t.Errorf("err %v, output:\n%s\nwant it to contain %q", err, out, tt.want)
			}
		})
	}
}

// startEtcd runs Debian's etcd on free loopback ports with extra flags and
// returns its client URL.
func startEtcd(t *testing.T, scheme string, extra ...string) string {
	t.Helper()
	if _, err := exec.LookPath("etcd"); err != nil {
		t.Skip("etcd (Debian etcd-server) is not installed")
	}
	clientPort, _ := FreePort()
	peerPort, _ := FreePort()
	clientURL := fmt.Sprintf("%s://127.0.0.1:%d", scheme, clientPort)
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", peerPort)
	args := append([]string{
		"--name", "e2e", "--data-dir", filepath.Join(t.TempDir(), "etcd"),
		"--listen-client-urls", clientURL, "--advertise-client-urls", clientURL,
		"--listen-peer-urls", peerURL, "--initial-advertise-peer-urls", peerURL,
		"--initial-cluster", "e2e=" + peerURL,
	}, extra...)
	cmd := exec.Command("etcd", args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.Env = append(os.Environ(), "ETCD_UNSUPPORTED_ARCH=")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(out.String(), "ready to serve client requests") {
		if time.Now().After(deadline) {
			t.Fatalf("etcd not ready:\n%s", out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	return clientURL
}

func TestExternalEtcd(t *testing.T) {
	certDir := t.TempDir()
	ca, err := pki.Ensure(pki.Config{Dir: certDir, ServiceIP: net.ParseIP("10.96.0.1")})
	if err != nil {
		t.Fatal(err)
	}
	authority, err := pki.LoadAuthority(ca.CA, ca.CAKey)
	if err != nil {
		t.Fatal(err)
	}
	issue := func(name string, spec pki.Spec) (string, string) {
		crt, key, err := authority.Issue(spec, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		crtFile, keyFile := filepath.Join(certDir, name+".crt"), filepath.Join(certDir, name+".key")
		os.WriteFile(crtFile, crt, 0o644)
		os.WriteFile(keyFile, key, 0o600)
		return crtFile, keyFile
	}
	serverCrt, serverKey := issue("etcd-server", pki.Spec{CommonName: "etcd", IPs: []net.IP{net.ParseIP("127.0.0.1")}, Server: true})
	clientCrt, clientKey := issue("etcd-client", pki.Spec{CommonName: "kube-apiserver-etcd-client"})

	tests := []struct {
		name       string
		scheme     string
		etcdFlags  []string
		upFlags    []string
		etcdctlTLS []string
	}{
		{name: "plain", scheme: "http"},
		{
			name:       "mutual TLS",
			scheme:     "https",
			etcdFlags:  []string{"--cert-file", serverCrt, "--key-file", serverKey, "--trusted-ca-file", ca.CA, "--client-cert-auth"},
			upFlags:    []string{"--etcd-cafile", ca.CA, "--etcd-certfile", clientCrt, "--etcd-keyfile", clientKey},
			etcdctlTLS: []string{"--cacert", ca.CA, "--cert", clientCrt, "--key", clientKey},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			endpoint := startEtcd(t, tt.scheme, tt.etcdFlags...)
			dir := filepath.Join(t.TempDir(), "c")
			c := startOwnCluster(t, dir, append([]string{"--etcd-servers", endpoint}, tt.upFlags...)...)
			_, err := c.Client(t).CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "in-external-etcd"}}, metav1.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			args := append([]string{"--endpoints", endpoint, "get", "/registry/configmaps/default/in-external-etcd", "--keys-only"}, tt.etcdctlTLS...)
			cmd := exec.Command("etcdctl", args...)
			cmd.Env = append(os.Environ(), "ETCDCTL_API=3")
			out, err := cmd.CombinedOutput()
			if err != nil || !strings.Contains(string(out), "/registry/configmaps/default/in-external-etcd") {
				t.Errorf("etcdctl get: %v\n%s", err, out)
			}
			if _, err := os.Stat(filepath.Join(dir, "etcd")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("embedded etcd data dir exists with --etcd-servers: %v", err)
			}
			stopCleanly(t, c)
		})
	}
}

// Ctrl-C soon after `up` printed that it is up, while the node is still
// starting (registering, setting up the pod network, the Service proxy,
// waiting for cluster DNS's RBAC), is a stop like any other: exit 0 and
// nothing left. The cluster has a network namespace of its own, stopped
// and started again on its data dir; the shared cluster is not touched.
func TestCtrlCEarlyAfterUp(t *testing.T) {
	c := startNodeCluster(t)
	stopCleanly(t, c)
	for _, delay := range []time.Duration{0, 500 * time.Millisecond, time.Second, 2 * time.Second, 3 * time.Second} {
		c = restartNode(t, c)
		time.Sleep(delay)
		took, err := c.Stop(15 * time.Second)
		if err != nil {
			t.Errorf("Ctrl-C %s after up: %v (after %s); its last output:\n%s", delay, err, took, framework.Tail(c.Output(), 30))
			continue
		}
		t.Logf("Ctrl-C %s after up: exit 0 in %s", delay, took.Round(time.Millisecond))
		for _, l := range earlyStopLeftovers(t, c) {
			t.Errorf("Ctrl-C %s after up: %s", delay, l)
		}
	}
}

// earlyStopLeftovers lists what a stopped cluster c left: processes and
// mounts of its data dir, processes in its network namespace, the etcd
// socket, listening API and kubelet ports, and kube-proxy's nftables
// tables.
func earlyStopLeftovers(t *testing.T, c *framework.Cluster) []string {
	out := clusterLeftovers(c.DataDir, nil)
	if _, err := os.Stat(filepath.Join(c.DataDir, "etcd", "etcd.sock")); !errors.Is(err, os.ErrNotExist) {
		out = append(out, "etcd socket left")
	}
	if pids := c.NetNS.Pids(); len(pids) != 0 {
		out = append(out, fmt.Sprintf("processes left in %s: %v", c.NetNS.Name, pids))
	}
	for _, port := range []int{c.Port, c.KubeletPort} {
		addr := net.JoinHostPort(c.Host, strconv.Itoa(port))
		if conn, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			conn.Close()
			out = append(out, addr+" still accepts connections")
		}
	}
	if tables := kubeProxyTables(t, c.NetNS); len(tables) != 0 {
		out = append(out, fmt.Sprintf("kube-proxy nftables tables left: %q", tables))
	}
	return out
}

// flagsImage is busybox under a tag that is not "latest", so that the pod
// starts without a pull: in a network namespace the host's nameserver is
// out of reach, and each pull of busybox:latest (pull policy Always)
// waits ~35 s for the resolver to time out before the agent falls back
// to the imported image.
const flagsImage = "pocketkube.test/busybox:flags"

// `pocketkube up --node-name N --kubelet-port P --cluster-dns A,B`, the
// node flags kubelet has under the same names: the Node is N and pods are
// bound to it and run; the kubelet API serves on P (and not on 10250),
// the Node says so in status.daemonEndpoints, and the API server reaches
// it there (logs, exec); pods' resolv.conf names A and B, in that order,
// as kubelet writes it from its --cluster-dns. A DNS server of the
// user's: the node serves none and publishes no kube-dns Service (`up
// --help`). The cluster is the test's own, in a network namespace, so
// that the ports are free and its node is the only one.
func TestUpNodeFlags(t *testing.T) {
	const (
		nodeName    = "pk-flags-node"
		kubeletPort = 10351
	)
	dnsIPs := []string{"10.96.0.53", "192.0.2.53"}
	c := startNodeClusterConfig(t, framework.ClusterConfig{
		KubeletPort: kubeletPort,
		Args:        []string{"--node-name", nodeName, "--cluster-dns", strings.Join(dnsIPs, ",")},
	})
	ctx := t.Context()
	cs := c.Client(t)

	var node *corev1.Node
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, framework.PodTimeout, true, func(ctx context.Context) (bool, error) {
		n, err := cs.CoreV1().Nodes().Get(ctx, nodeName, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		node = n
		for _, cond := range n.Status.Conditions {
			if cond.Type == corev1.NodeReady {
				return cond.Status == corev1.ConditionTrue, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("node %s never Ready: %v (%+v)", nodeName, err, node)
	}
	nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(nodes.Items) != 1 {
		var names []string
		for _, n := range nodes.Items {
			names = append(names, n.Name)
		}
		t.Errorf("nodes %q, want only %s", names, nodeName)
	}
	if got := node.Labels[corev1.LabelHostname]; got != nodeName {
		t.Errorf("label %s=%q, want %q (kubelet labels the node with its name)", corev1.LabelHostname, got, nodeName)
	}
	if got := node.Status.DaemonEndpoints.KubeletEndpoint.Port; got != kubeletPort {
		t.Errorf("status.daemonEndpoints.kubeletEndpoint.Port %d, want %d", got, kubeletPort)
	}
	listening, err := c.NetNS.Exec("ss", "-Hltn")
	if err != nil {
		t.Fatal(err)
	}
	if !listensOn(listening, kubeletPort) {
		t.Errorf("nothing listens on %d in %s:\n%s", kubeletPort, c.NetNS.Name, listening)
	}
	if listensOn(listening, 10250) {
		t.Errorf("something listens on 10250 in %s with --kubelet-port %d:\n%s", c.NetNS.Name, kubeletPort, listening)
	}

	importTaggedBusybox(t, c, flagsImage)
	ns := framework.NewNamespace(t, cs, "flags-")
	pod := dnsPod(ns, "flagged", flagsImage, func(s *corev1.PodSpec) {
		s.Containers[0].Command = []string{"sh", "-c", "echo hello from " + nodeName + "; exec sleep 3600"}
	})
	pod = framework.RunPods(t, cs, pod)[pod.Name]
	if pod.Spec.NodeName != nodeName {
		t.Errorf("pod bound to %q, want %q", pod.Spec.NodeName, nodeName)
	}

	// The API server reaches the kubelet API at the port the Node gives.
	logs, err := c.Kubectl(ctx, framework.Newest(), "-n", ns, "logs", pod.Name)
	if err != nil || logs != "hello from "+nodeName+"\n" {
		t.Errorf("kubectl logs: %q, %v", logs, err)
	}
	resolv, err := c.PodExec(ctx, ns, pod.Name, "cat", "/etc/resolv.conf")
	if err != nil {
		t.Fatalf("kubectl exec: %v", err)
	}
	hostFile, err := os.ReadFile("/etc/resolv.conf")
	if err != nil {
		t.Fatal(err)
	}
	want := resolvConf{
		nameservers: dnsIPs,
		searches:    dedup(append([]string{ns + ".svc.cluster.local", "svc.cluster.local", "cluster.local"}, parseResolv(string(hostFile)).searches...)),
		options:     []string{"ndots:5"},
	}
	if got := parseResolv(resolv); !slices.Equal(got.nameservers, want.nameservers) || !slices.Equal(got.searches, want.searches) || !slices.Equal(got.options, want.options) {
		t.Errorf("resolv.conf:\n%s\nwant %+v", resolv, want)
	}

	// A DNS server of the user's: none published, none served here.
	if _, err := cs.CoreV1().Services("kube-system").Get(ctx, "kube-dns", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("kube-system/kube-dns with --cluster-dns: %v, want NotFound", err)
	}
	if listensOn(listening, 53) {
		t.Errorf("something listens on 53 in %s with --cluster-dns:\n%s", c.NetNS.Name, listening)
	}
	stopCleanly(t, c)
}

// listensOn reports whether `ss -Hltn` output has a socket listening on
// port.
func listensOn(ss string, port int) bool {
	for _, line := range strings.Split(ss, "\n") {
		// State Recv-Q Send-Q Local:Port Peer:Port
		if f := strings.Fields(line); len(f) >= 4 && strings.HasSuffix(f[3], ":"+strconv.Itoa(port)) {
			return true
		}
	}
	return false
}

// TestDataDirAcrossRestart (issue 13): what `up` finds in an existing
// data dir. Directories holding keys, etcd's socket and the pods' secrets
// (pki/, etcd/, node/) made looser while the cluster was down are 0700
// again once it is up; the log directory of a pod deleted meanwhile (its
// UID is no pod's) is removed at start, the running pod's logs stay; and
// with the CA key gone `up` refuses to start, naming the file, instead of
// minting a new CA under every kubeconfig.
func TestDataDirAcrossRestart(t *testing.T) {
	c := startNodeCluster(t)
	c.ImportBusybox(t, "busybox")
	c.ApplyPod(t, "logger", `apiVersion: v1
kind: Pod
metadata:
  name: logger
spec:
  containers:
  - name: main
    image: busybox
    command: ["sh", "-c", "echo hello; sleep 3600"]
`)
	pod := framework.WaitPod(t, c.Client(t), "default", "logger", "Running", framework.Running)
	podLogs := filepath.Join(c.DataDir, "node", "logs", "default_logger_"+string(pod.UID))
	stopCleanly(t, c)

	private := []string{"pki", "etcd", "node"}
	for _, d := range private {
		if err := os.Chmod(filepath.Join(c.DataDir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	ghost := filepath.Join(c.DataDir, "node", "logs", "default_ghost_0d7c5a52-5e1f-4c1e-9a55-ghost0000000")
	for _, f := range []string{"main/0.log", "main/0.log.20261201-100000.000000001"} {
		p := filepath.Join(ghost, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("left\n"), 0o640); err != nil {
			t.Fatal(err)
		}
	}

	c = restartNode(t, c)
	// `up` says it is up before its node has started: the node's dir is
	// looked at once the node has run the pod again.
	framework.WaitPod(t, c.Client(t), "default", "logger", "Running again", func(p *corev1.Pod) bool {
		return framework.Running(p) && p.Status.ContainerStatuses[0].RestartCount == 1
	})
	for _, d := range private {
		fi, err := os.Stat(filepath.Join(c.DataDir, d))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o700 {
			t.Errorf("%s/ is %v after up, want 0700", d, fi.Mode().Perm())
		}
	}
	if _, err := os.Stat(ghost); !os.IsNotExist(err) {
		t.Errorf("logs of a pod deleted while the node was down: %v, want removed", err)
	}
	if _, err := os.Stat(filepath.Join(podLogs, "main", "0.log")); err != nil {
		t.Errorf("logs of the running pod's first attempt: %v", err)
	}
	stopCleanly(t, c)

	caKey := filepath.Join(c.DataDir, "pki", "ca.key")
	if err := os.Rename(caKey, caKey+".saved"); err != nil {
		t.Fatal(err)
	}
	_, err := c.Restart()
	if err == nil || !strings.Contains(err.Error(), caKey+" is missing") {
		t.Errorf("up without the CA key: %v, want a refusal naming %s", err, caKey)
	}
	if _, err := os.Stat(caKey); !os.IsNotExist(err) {
		t.Errorf("up without the CA key made a new one: %v", err)
	}
}

// TestCtrlCRightAfterPodDeletion stops the node at once after its pods
// were deleted, while the agent is still tearing them down: with a
// grace period (the agent kills, then deletes the API object) and forced
// (the object is gone first, the agent kills what it still runs). The
// stop must finish what the deletion started: no pod's sandbox (its
// mounts, namespaces, processes) is left behind.
func TestCtrlCRightAfterPodDeletion(t *testing.T) {
	c := startNodeCluster(t)
	c.ImportBusybox(t, "busybox")
	for _, force := range []bool{false, true} {
		client := c.Client(t)
		framework.WaitServiceAccount(t, client, "default")
		var pods []*corev1.Pod
		for i := range 3 {
			pods = append(pods, busyboxSleeper("default", fmt.Sprintf("doomed-%t-%d", force, i)))
		}
		framework.RunPods(t, client, pods...)
		opts := metav1.DeleteOptions{}
		if force {
			opts.GracePeriodSeconds = new(int64)
		}
		for _, p := range pods {
			if err := client.CoreV1().Pods("default").Delete(t.Context(), p.Name, opts); err != nil {
				t.Fatal(err)
			}
		}
		took, err := c.Stop(15 * time.Second)
		if err != nil {
			t.Fatalf("force %t: Ctrl-C right after the deletion: %v (after %s)", force, err, took)
		}
		for _, l := range earlyStopLeftovers(t, c) {
			t.Errorf("force %t: Ctrl-C right after the deletion: %s", force, l)
		}
		if !force {
			c = restartNode(t, c)
		}
	}
}
