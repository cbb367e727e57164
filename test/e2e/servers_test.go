//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"

	"github.com/pocketkube/pocketkube/test/framework"
)

// serverToken reads DIR/server-token of server c: the flags of `up` that
// join another server.
func serverToken(t *testing.T, c *framework.Cluster) []string {
	t.Helper()
	file := filepath.Join(c.DataDir, "server-token")
	var flags []string
	err := wait.PollUntilContextTimeout(t.Context(), 100*time.Millisecond, framework.PodTimeout, true, func(context.Context) (bool, error) {
		data, err := os.ReadFile(file)
		flags = strings.Fields(string(data))
		return err == nil && len(flags) == 8, nil
	})
	if err != nil {
		t.Fatalf("%s: %q (%v)", file, flags, err)
	}
	return flags
}

// memberList is `pocketkube etcd member-list` on server c, a line per
// member (NAME ID PEER-URL LEARNER), sorted by name.
func memberList(t *testing.T, c *framework.Cluster) []string {
	t.Helper()
	out, err := exec.Command(Binary, "etcd", "member-list", "--data-dir", c.DataDir).CombinedOutput()
	if err != nil {
		t.Fatalf("pocketkube etcd member-list: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")[1:]
	for i, l := range lines {
		lines[i] = strings.Join(strings.Fields(l), " ")
	}
	sort.Strings(lines)
	return lines
}

// timeoutClient is an admin client of server c whose requests give up
// after d.
func timeoutClient(t *testing.T, c *framework.Cluster, d time.Duration) kubernetes.Interface {
	t.Helper()
	cfg, err := c.RESTConfig()
	if err != nil {
		t.Fatal(err)
	}
	cfg.Timeout = d
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return client
}

// TestServers runs three servers (`up --cluster-init`, then `up --server`
// twice), each in a network namespace of its own on one L2 segment:
// every write through one API server is read through the others; with
// one server killed (kill -9) the others keep taking writes and the
// killed one, started again, rejoins as the same etcd member and catches
// up; with two killed the survivor refuses writes (no quorum) and, once
// they are back, every write that was acknowledged is there.
func TestServers(t *testing.T) {
	seg, err := framework.NewSegment()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { seg.Remove() })
	s1 := startNodeClusterConfig(t, framework.ClusterConfig{Segment: seg, Args: []string{"--cluster-init", "--node-name", "server-1"}})
	flags := serverToken(t, s1)
	if flags[0] != "--server" || flags[1] != s1.Server || flags[6] != "--certificate-key" {
		t.Fatalf("server-token holds %q, want --server %s … --certificate-key KEY", flags, s1.Server)
	}
	if fi, err := os.Stat(filepath.Join(s1.DataDir, "server-token")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("server-token: %v, mode %v, want 0600", err, fi.Mode())
	}

	// A wrong certificate key is refused, and nothing is written.
	t.Run("wrong certificate key", func(t *testing.T) {
		wrong := append([]string(nil), flags...)
		wrong[7] = strings.Repeat("0", 64)
		refusedServer(t, seg, wrong, "certificate key does not decrypt")
	})

	s2 := startNodeClusterConfig(t, framework.ClusterConfig{Segment: seg, Args: append([]string{"--node-name", "server-2"}, flags...)})
	s3 := startNodeClusterConfig(t, framework.ClusterConfig{Segment: seg, Args: append([]string{"--node-name", "server-3"}, flags...)})
	servers := []*framework.Cluster{s1, s2, s3}
	for i := range servers {
		waitNodeReady(t, s1.Client(t), fmt.Sprintf("server-%d", i+1), time.Time{})
	}
	members := memberList(t, s1)
	if len(members) != 3 {
		t.Fatalf("etcd members: %q, want server-1, -2 and -3", members)
	}
	for _, m := range members {
		if !strings.HasPrefix(m, "server-") || !strings.HasSuffix(m, "false") {
			t.Errorf("etcd member %q: want a started voting member server-N", m)
		}
	}

	ctx := t.Context()
	var acked []string // ConfigMaps whose create was acknowledged
	write := func(c *framework.Cluster, name string) error {
		_, err := timeoutClient(t, c, 10*time.Second).CoreV1().ConfigMaps("default").Create(ctx,
			&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}, Data: map[string]string{"v": name}}, metav1.CreateOptions{})
		if err == nil {
			acked = append(acked, name)
		}
		return err
	}
	readAll := func(c *framework.Cluster, what string) {
		t.Helper()
		for _, name := range acked {
			cm, err := timeoutClient(t, c, 10*time.Second).CoreV1().ConfigMaps("default").Get(ctx, name, metav1.GetOptions{})
			if err != nil || cm.Data["v"] != name {
				t.Errorf("%s: ConfigMap %s through %s: %v %v", what, name, c.Server, cm, err)
			}
		}
	}

	// Each server's writes are read through the others.
	for i, c := range servers {
		if err := write(c, fmt.Sprintf("through-%d", i+1)); err != nil {
			t.Fatalf("write through server-%d: %v", i+1, err)
		}
	}
	for i, c := range servers {
		readAll(c, fmt.Sprintf("three servers, read through server-%d", i+1))
	}
	// One servicelb leads; each claim is provisioned by its own node.
	t.Run("servicelb and local-path", func(t *testing.T) { checkServersPlatform(t, servers) })
	// Each server serves cluster DNS at its address, and kube-dns has
	// an endpoint for each.
	t.Run("kube-dns endpoints", func(t *testing.T) { checkDNSEndpoints(t, s1.Client(t), len(servers)) })
	// Each server runs metrics-server, and each has an EndpointSlice.
	t.Run("metrics-server endpoints", func(t *testing.T) { checkMetricsSlices(t, s1.Client(t), len(servers)) })

	// kill -9 one: the others keep taking writes.
	s3.Kill()
	for i, c := range servers[:2] {
		if err := write(c, fmt.Sprintf("one-down-%d", i+1)); err != nil {
			t.Fatalf("write through server-%d with server-3 killed: %v", i+1, err)
		}
	}
	// Started again, it rejoins as the member it was and catches up.
	s3 = restartNode(t, s3)
	if got := memberList(t, s3); strings.Join(got, "\n") != strings.Join(members, "\n") {
		t.Errorf("etcd members after server-3's restart:\n%s\nwant the same as before:\n%s", strings.Join(got, "\n"), strings.Join(members, "\n"))
	}
	readAll(s3, "server-3 after its restart")
	if err := write(s3, "after-rejoin"); err != nil {
		t.Fatalf("write through the restarted server-3: %v", err)
	}
	readAll(s1, "server-1 after server-3 rejoined")

	// kill -9 two: the survivor has no quorum and refuses writes.
	s2.Kill()
	s3.Kill()
	start := time.Now()
	if err := write(s1, "no-quorum"); err == nil {
		t.Errorf("a write through server-1 without quorum was acknowledged")
	} else {
		t.Logf("without quorum, a write through server-1 failed after %s: %v", time.Since(start).Round(time.Millisecond), err)
	}
	// Both at once: either makes a quorum with server-1, and the two
	// make one without it. One after the other, the first could wait
	// for ever for server-1, which may stop meanwhile (below).
	var wg sync.WaitGroup
	restarted := make([]*framework.Cluster, 2)
	errs := make([]error, 2)
	for i, c := range []*framework.Cluster{s2, s3} {
		wg.Go(func() { restarted[i], errs[i] = c.Restart() })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("restart server-%d: %v", i+2, err)
		}
	}
	s2, s3 = restarted[0], restarted[1]
	// server-1 may have stopped meanwhile, or be stopping: a
	// controller-manager or scheduler that lost its lease ends the
	// server, as upstream's exit, some seconds after the quorum went.
	// Whichever it is, it ends with kill -9 (a clean stop would leave
	// the etcd cluster) and is started again, as a supervisor would.
	if err := s1.Exited(); err != nil {
		t.Logf("server-1 stopped without quorum: %v", err)
	} else {
		s1.Kill()
	}
	s1 = restartNode(t, s1)
	for i, c := range []*framework.Cluster{s1, s2, s3} {
		readAll(c, fmt.Sprintf("after the quorum came back, server-%d", i+1))
	}
	if err := write(s1, "quorum-back"); err != nil {
		t.Errorf("write through server-1 once the quorum is back: %v", err)
	}

	// A clean stop (Ctrl-C) leaves: the server removes its own etcd
	// member, so that the two left count only each other in their quorum.
	took, err := s3.Stop(30 * time.Second)
	if err != nil {
		t.Fatalf("stop server-3: %v", err)
	}
	t.Logf("server-3 stopped (and left) in %s", took.Round(time.Millisecond))
	if got := memberList(t, s2); len(got) != 2 || !strings.HasPrefix(got[0], "server-1 ") || !strings.HasPrefix(got[1], "server-2 ") {
		t.Errorf("etcd members after server-3 stopped: %q, want server-1 and server-2", got)
	}
	if out, err := exec.Command(Binary, "etcd", "remove-member", "server-9", "--data-dir", s1.DataDir).CombinedOutput(); err == nil || !strings.Contains(string(out), "no such etcd member") {
		t.Errorf("remove-member of an unknown member: %v\n%s", err, out)
	}
	for i, c := range []*framework.Cluster{s1, s2} {
		if err := write(c, fmt.Sprintf("two-left-%d", i+1)); err != nil {
			t.Errorf("write through server-%d after server-3 left: %v", i+1, err)
		}
	}
	// Started again on its data dir, it joins as a new member and reads
	// what was written meanwhile.
	s3 = restartNode(t, s3)
	assertRejoined(t, s1, "server-3", members)
	readAll(s3, "server-3 after it rejoined")
	if err := write(s3, "rejoined-3"); err != nil {
		t.Errorf("write through server-3 after it rejoined: %v", err)
	}

	// The first server (--cluster-init) leaves the same way; started
	// again with --cluster-init, it joins the two that stayed instead
	// of starting a cluster of its own.
	if took, err = s1.Stop(30 * time.Second); err != nil {
		t.Fatalf("stop server-1: %v", err)
	}
	t.Logf("server-1 stopped (and left) in %s", took.Round(time.Millisecond))
	if got := memberList(t, s2); len(got) != 2 || !strings.HasPrefix(got[0], "server-2 ") || !strings.HasPrefix(got[1], "server-3 ") {
		t.Errorf("etcd members after server-1 stopped: %q, want server-2 and server-3", got)
	}
	if err := write(s2, "server-1-left"); err != nil {
		t.Errorf("write through server-2 after server-1 left: %v", err)
	}
	s1 = restartNode(t, s1)
	assertRejoined(t, s2, "server-1", members)
	readAll(s1, "server-1 after it rejoined")
	readAll(s3, "server-3 after server-1 rejoined")

	t.Run("agent", func(t *testing.T) { checkAgentFailover(t, seg, []*framework.Cluster{s1, s2, s3}) })
}

// checkAgentFailover joins an agent to the three servers and kills -9 the
// server its kubeconfig names (the one kube-public/cluster-info names): its
// node stays Ready, its lease renewed and a new pod started through the
// other servers, which its load balancer learnt from the `kubernetes`
// endpoints (internal/node/apilb); started again while that server is
// still down, the agent comes up through the servers it saved.
// kube-public/cluster-info then names a live server, and a new agent joins
// while the killed one is down. The killed server is started again at the
// end.
func checkAgentFailover(t *testing.T, seg *framework.Segment, servers []*framework.Cluster) {
	tok, hash := nodeToken(t, servers[0])
	// The agent's Node is deleted through the last server, never the
	// one killed below (cluster-info names the first).
	n := newJoinedNodeOn(t, servers[len(servers)-1], "agent-failover", seg)
	n.importBusybox(t)
	joinFlags := []string{"--token", tok, "--discovery-token-ca-cert-hash", hash}
	started := time.Now()
	n.start(t, joinFlags...)
	waitNodeReady(t, servers[0].Client(t), n.name, started)

	// The balancer saved the three servers.
	var want, saved []string
	for _, c := range servers {
		want = append(want, strings.TrimPrefix(c.Server, "https://"))
	}
	slices.Sort(want)
	file := filepath.Join(n.dataDir, "agent", "apiservers")
	err := wait.PollUntilContextTimeout(t.Context(), 200*time.Millisecond, framework.PodTimeout, true, func(context.Context) (bool, error) {
		data, _ := os.ReadFile(file)
		saved = strings.Fields(string(data))
		return slices.Equal(saved, want), nil
	})
	if err != nil {
		t.Fatalf("%s holds %q, want the three servers %q", file, saved, want)
	}

	// kill -9 the server the agent joined through.
	kubeconfig, err := clientcmd.LoadFromFile(filepath.Join(n.dataDir, "agent", "kubelet.conf"))
	if err != nil {
		t.Fatal(err)
	}
	joined := kubeconfig.Clusters[kubeconfig.Contexts[kubeconfig.CurrentContext].Cluster].Server
	victim := slices.IndexFunc(servers, func(c *framework.Cluster) bool { return c.Server == joined })
	if victim < 0 {
		t.Fatalf("the agent's kubelet.conf names %s, none of the servers", joined)
	}
	others := slices.Delete(slices.Clone(servers), victim, victim+1)
	servers[victim].Kill()
	killed := time.Now()
	admin := others[0].Client(t)
	waitNodeReady(t, admin, n.name, killed)
	t.Logf("with %s killed, node %s renewed its lease %s later", joined, n.name, time.Since(killed).Round(time.Millisecond))
	ns := framework.NewNamespace(t, admin, "agent-failover")
	pod := busyboxSleeper(ns, "after-kill")
	pod.Spec.NodeName = n.name
	framework.RunPods(t, admin, pod)

	// Started again with that server still down.
	if err := n.proc.Stop(15 * time.Second); err != nil {
		t.Fatalf("stop the agent: %v", err)
	}
	restarted := time.Now()
	n.start(t, joinFlags...)
	waitNodeReady(t, admin, n.name, restarted)
	t.Logf("restarted with %s down, node %s Ready %s later", joined, n.name, time.Since(restarted).Round(time.Millisecond))

	// cluster-info named the killed server; once its endpoint expires,
	// it names a live one, and a new agent joins through the others.
	var named string
	err = wait.PollUntilContextTimeout(t.Context(), 200*time.Millisecond, 2*framework.PodTimeout, true, func(ctx context.Context) (bool, error) {
		cm, err := admin.CoreV1().ConfigMaps("kube-public").Get(ctx, "cluster-info", metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		info, err := clientcmd.Load([]byte(cm.Data["kubeconfig"]))
		if err != nil || len(info.Clusters) != 1 {
			return false, nil
		}
		for _, c := range info.Clusters {
			named = c.Server
		}
		return named != joined, nil
	})
	if err != nil || !slices.ContainsFunc(others, func(c *framework.Cluster) bool { return c.Server == named }) {
		t.Fatalf("with %s killed, cluster-info names %s (%v), want one of the live servers", joined, named, err)
	}
	t.Logf("with %s killed, cluster-info names %s %s later", joined, named, time.Since(killed).Round(time.Millisecond))
	n2 := newJoinedNodeOn(t, others[len(others)-1], "agent-failover-2", seg)
	started = time.Now()
	n2.start(t, joinFlags...)
	waitNodeReady(t, admin, n2.name, started)

	servers[victim] = restartNode(t, servers[victim])
}

// refusedServer starts `up` with args in a network namespace on seg and
// wants it refused: an exit other than 0, saying want, and no data dir.
func refusedServer(t *testing.T, seg *framework.Segment, args []string, want string) {
	t.Helper()
	ns, err := framework.NewNetNS()
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Remove("")
	if _, err := seg.Attach(ns); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "x")
	p, err := framework.StartIn(ns, Binary, append([]string{"up", "--data-dir", dir, "--node-name", "server-x", "--cgroup-root", ns.CgroupRoot}, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Wait(2 * time.Minute); err == nil {
		t.Fatalf("up %q exited 0:\n%s", args, p.Output())
	}
	if !strings.Contains(p.Output(), want) {
		t.Errorf("the refusal does not say %q:\n%s", want, framework.Tail(p.Output(), 20))
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("the refused server wrote its data dir %s: %v", dir, err)
	}
}

// TestServersExternalEtcd runs two servers on one external etcd
// (Debian's, in a network namespace of its own on the servers' segment):
// the second joins with the first's server-token and the same
// --etcd-servers, and has no etcd of its own; what is written through
// either is read through the other. A joining server with its embedded
// etcd is refused, and so is one on another etcd, and neither writes
// anything. Killed -9, the first leaves the second taking writes, and
// the second's controller-manager takes over.
func TestServersExternalEtcd(t *testing.T) {
	if _, err := exec.LookPath("etcd"); err != nil {
		t.Skip("etcd (Debian etcd-server) is not installed")
	}
	seg, err := framework.NewSegment()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { seg.Remove() })
	etcdNS, err := framework.NewNetNS()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { etcdNS.Remove("") })
	etcdIP, err := seg.Attach(etcdNS)
	if err != nil {
		t.Fatal(err)
	}
	etcdURL := startEtcdIn(t, etcdNS, etcdIP, 2379)
	other := startEtcdIn(t, etcdNS, etcdIP, 2479)

	s1 := startNodeClusterConfig(t, framework.ClusterConfig{Segment: seg, Args: []string{"--cluster-init", "--node-name", "server-1", "--disable-agent", "--etcd-servers", etcdURL}})
	flags := serverToken(t, s1)
	t.Run("embedded etcd refused", func(t *testing.T) {
		refusedServer(t, seg, append([]string{"--disable-agent"}, flags...), "its servers share an external etcd: give this one the same --etcd-servers")
	})
	t.Run("another etcd refused", func(t *testing.T) {
		refusedServer(t, seg, append([]string{"--disable-agent", "--etcd-servers", other}, flags...), "does not hold its cluster")
	})
	s2 := startNodeClusterConfig(t, framework.ClusterConfig{Segment: seg, Args: append([]string{"--node-name", "server-2", "--disable-agent", "--etcd-servers", etcdURL}, flags...)})
	for _, c := range []*framework.Cluster{s1, s2} {
		if _, err := os.Stat(filepath.Join(c.DataDir, "etcd")); !os.IsNotExist(err) {
			t.Errorf("%s has an etcd data dir with --etcd-servers: %v", c.Server, err)
		}
	}

	ctx := t.Context()
	for i, c := range []*framework.Cluster{s1, s2} {
		name := fmt.Sprintf("through-%d", i+1)
		if _, err := timeoutClient(t, c, 10*time.Second).CoreV1().ConfigMaps("default").Create(ctx,
			&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
			t.Fatalf("write through server-%d: %v", i+1, err)
		}
	}
	for i, c := range []*framework.Cluster{s1, s2} {
		for _, name := range []string{"through-1", "through-2"} {
			if _, err := timeoutClient(t, c, 10*time.Second).CoreV1().ConfigMaps("default").Get(ctx, name, metav1.GetOptions{}); err != nil {
				t.Errorf("read %s through server-%d: %v", name, i+1, err)
			}
		}
	}

	// kill -9 the first: the second takes writes, and a controller-manager
	// (the second's, whichever led) makes a Deployment's ReplicaSet.
	s1.Kill()
	client := timeoutClient(t, s2, 10*time.Second)
	if _, err := client.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "first-killed"}}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("write through server-2 with server-1 killed: %v", err)
	}
	killed := time.Now()
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "after-kill", Namespace: "default"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](1),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "after-kill"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "after-kill"}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
			},
		},
	}
	if _, err := client.AppsV1().Deployments("default").Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 2*framework.PodTimeout, true, func(ctx context.Context) (bool, error) {
		rs, err := client.AppsV1().ReplicaSets("default").List(ctx, metav1.ListOptions{LabelSelector: "app=after-kill"})
		return err == nil && len(rs.Items) == 1, nil
	})
	if err != nil {
		t.Fatalf("with server-1 killed, no controller-manager made the Deployment's ReplicaSet: %v", err)
	}
	t.Logf("with server-1 killed, the Deployment's ReplicaSet was made %s later", time.Since(killed).Round(time.Millisecond))
	s1 = restartNode(t, s1)
	if _, err := timeoutClient(t, s1, 10*time.Second).CoreV1().ConfigMaps("default").Get(ctx, "first-killed", metav1.GetOptions{}); err != nil {
		t.Errorf("server-1 started again does not read what server-2 wrote meanwhile: %v", err)
	}
}

// startEtcdIn runs Debian's etcd, a cluster of one, in ns at ip, clients
// on port and peers on port+1, plain HTTP, and returns its client URL.
func startEtcdIn(t *testing.T, ns *framework.NetNS, ip string, port int) string {
	t.Helper()
	clientURL := fmt.Sprintf("http://%s:%d", ip, port)
	peerURL := fmt.Sprintf("http://%s:%d", ip, port+1)
	name := fmt.Sprintf("e2e-%d", port)
	p, err := framework.StartIn(ns, "etcd", "--name", name, "--data-dir", filepath.Join(t.TempDir(), "etcd"),
		"--listen-client-urls", clientURL, "--advertise-client-urls", clientURL,
		"--listen-peer-urls", peerURL, "--initial-advertise-peer-urls", peerURL,
		"--initial-cluster", name+"="+peerURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Kill)
	err = wait.PollUntilContextTimeout(t.Context(), 100*time.Millisecond, 20*time.Second, true, func(context.Context) (bool, error) {
		return strings.Contains(p.Output(), "ready to serve client requests"), nil
	})
	if err != nil {
		t.Fatalf("etcd not ready:\n%s", framework.Tail(p.Output(), 20))
	}
	return clientURL
}

// assertRejoined checks, through server c, that the etcd member name is
// back among three voting members with an ID other than the one it had
// in before (member-list lines).
func assertRejoined(t *testing.T, c *framework.Cluster, name string, before []string) {
	t.Helper()
	got := memberList(t, c)
	if len(got) != 3 {
		t.Errorf("etcd members after %s rejoined: %q, want three", name, got)
		return
	}
	for _, m := range got {
		if !strings.HasSuffix(m, "false") {
			t.Errorf("etcd member %q is a learner", m)
		}
		if strings.HasPrefix(m, name+" ") && slices.Contains(before, m) {
			t.Errorf("%s rejoined as the member it was (%q): want a new member", name, m)
		}
	}
	if !slices.ContainsFunc(got, func(m string) bool { return strings.HasPrefix(m, name+" ") }) {
		t.Errorf("etcd members after %s rejoined: %q, no %s", name, got, name)
	}
}

// TestServersFromSingle turns the data dir of a plain `up` into the first
// of several servers: started again with --cluster-init, it keeps what
// was written before (its etcd member's peer URL is updated to its
// address, its data kept), and a second server joins it and reads it.
func TestServersFromSingle(t *testing.T) {
	seg, err := framework.NewSegment()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { seg.Remove() })
	s1 := startNodeClusterConfig(t, framework.ClusterConfig{Segment: seg, Args: []string{"--node-name", "server-1"}})
	ctx := t.Context()
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "before-cluster-init"}, Data: map[string]string{"v": "single"}}
	if _, err := s1.Client(t).CoreV1().ConfigMaps("default").Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s1.Stop(30 * time.Second); err != nil {
		t.Fatalf("stop the single server: %v", err)
	}
	s1, err = s1.RestartWith("--node-name", "server-1", "--cluster-init")
	if err != nil {
		t.Fatal(err)
	}
	members := memberList(t, s1)
	if len(members) != 1 || !strings.HasPrefix(members[0], "server-1 ") || !strings.Contains(members[0], "https://"+s1.Host+":2380") {
		t.Errorf("etcd members after --cluster-init: %q, want server-1 at https://%s:2380", members, s1.Host)
	}
	flags := serverToken(t, s1)
	s2 := startNodeClusterConfig(t, framework.ClusterConfig{Segment: seg, Args: append([]string{"--node-name", "server-2"}, flags...)})
	for _, c := range []*framework.Cluster{s1, s2} {
		got, err := timeoutClient(t, c, 10*time.Second).CoreV1().ConfigMaps("default").Get(ctx, "before-cluster-init", metav1.GetOptions{})
		if err != nil || got.Data["v"] != "single" {
			t.Errorf("the ConfigMap written before --cluster-init, through %s: %v %v", c.Server, got, err)
		}
	}
	if got := memberList(t, s2); len(got) != 2 {
		t.Errorf("etcd members after server-2 joined: %q, want two", got)
	}
	waitNodeReady(t, s1.Client(t), "server-2", time.Time{})
	// The single server's kube-dns endpoint (no node named) gave way to
	// one per server, and its metrics-server EndpointSlice to one per
	// server.
	checkDNSEndpoints(t, s1.Client(t), 2)
	checkMetricsSlices(t, s1.Client(t), 2)
}

// checkDNSEndpoints waits for kube-system/kube-dns-pocketkube to hold one
// ready endpoint per server node, at that Node's InternalIP and naming it:
// n servers, whose nodes are named server-N.
func checkDNSEndpoints(t *testing.T, client kubernetes.Interface, n int) {
	t.Helper()
	ctx := t.Context()
	var got, want map[string]string
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, framework.PodTimeout, true, func(ctx context.Context) (bool, error) {
		ips, ok := serverIPs(ctx, client, n)
		if !ok {
			return false, nil
		}
		want = ips
		slice, err := client.DiscoveryV1().EndpointSlices("kube-system").Get(ctx, "kube-dns-pocketkube", metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		got = map[string]string{}
		for _, ep := range slice.Endpoints {
			name := "(no node)"
			if ep.NodeName != nil {
				name = *ep.NodeName
			}
			ready := ep.Conditions.Ready != nil && *ep.Conditions.Ready
			got[name] = strings.Join(ep.Addresses, ",") + map[bool]string{true: "", false: " (not ready)"}[ready]
		}
		return maps.Equal(got, want), nil
	})
	if err != nil {
		t.Errorf("kube-dns endpoints by node: %v, want %v", got, want)
	}
}

// serverIPs gives the InternalIP of each of the Nodes server-1 … server-n,
// by name; false while one of them is not there.
func serverIPs(ctx context.Context, client kubernetes.Interface, n int) (map[string]string, bool) {
	ips := map[string]string{}
	for i := 1; i <= n; i++ {
		node, err := client.CoreV1().Nodes().Get(ctx, fmt.Sprintf("server-%d", i), metav1.GetOptions{})
		if err != nil {
			return nil, false
		}
		for _, a := range node.Status.Addresses {
			if a.Type == corev1.NodeInternalIP {
				ips[node.Name] = a.Address
			}
		}
	}
	return ips, true
}

// checkMetricsSlices waits for kube-system's metrics-server EndpointSlices
// to be one per server node, metrics-server-server-N, each with one ready
// endpoint at that Node's InternalIP naming it (n servers), and for the
// metrics API to answer through the aggregator.
func checkMetricsSlices(t *testing.T, client kubernetes.Interface, n int) {
	t.Helper()
	ctx := t.Context()
	var got, want map[string]string
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, framework.PodTimeout, true, func(ctx context.Context) (bool, error) {
		ips, ok := serverIPs(ctx, client, n)
		if !ok {
			return false, nil
		}
		want = map[string]string{}
		for node, ip := range ips {
			want["metrics-server-"+node] = ip + " " + node + " ready"
		}
		list, err := client.DiscoveryV1().EndpointSlices("kube-system").List(ctx, metav1.ListOptions{LabelSelector: "kubernetes.io/service-name=metrics-server"})
		if err != nil {
			return false, nil
		}
		got = map[string]string{}
		for _, s := range list.Items {
			var eps []string
			for _, ep := range s.Endpoints {
				node, ready := "(no node)", "ready"
				if ep.NodeName != nil {
					node = *ep.NodeName
				}
				if ep.Conditions.Ready != nil && !*ep.Conditions.Ready {
					ready = "not ready"
				}
				eps = append(eps, strings.Join(ep.Addresses, ",")+" "+node+" "+ready)
			}
			got[s.Name] = strings.Join(eps, "; ")
		}
		return maps.Equal(got, want), nil
	})
	if err != nil {
		t.Errorf("metrics-server EndpointSlices: %v, want %v", got, want)
	}
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, framework.PodTimeout, true, func(ctx context.Context) (bool, error) {
		return client.CoreV1().RESTClient().Get().AbsPath("/apis/metrics.k8s.io/v1beta1/nodes").Do(ctx).Error() == nil, nil
	})
	if err != nil {
		t.Errorf("GET /apis/metrics.k8s.io/v1beta1/nodes through the aggregator: %v", err)
	}
}
