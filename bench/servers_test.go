//go:build bench

package bench

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/pocketkube/pocketkube/test/framework"
)

// BenchmarkServerJoin times a second server joining a running first one
// (issue 15): a first server (`up --cluster-init`) in a network namespace
// on a test segment; each iteration starts `up` with DIR/server-token's
// flags and a new data dir and node name in a namespace of its own on the
// segment, and measures its start → its own API server's /readyz answers
// 200 (discovery, the kubeadm-certs download, the PKI, etcd's
// MemberAddAsLearner, the learner's catch-up and promotion, the API
// server's start). The joining server runs no node (--disable-agent): the
// figure is the control plane's. Its etcd member is then removed
// (`pocketkube etcd remove-member`, while it runs: with two members, one
// stopped first would leave no quorum to remove it with), which ends it,
// so that every iteration joins a cluster of one member.
func BenchmarkServerJoin(b *testing.B) {
	stopPodsCluster()
	ctx := b.Context()
	seg, err := framework.NewSegment()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { seg.Remove() })
	c, err := framework.StartCluster(framework.ClusterConfig{
		Binary: binary, DataDir: filepath.Join(b.TempDir(), "s1"), NetNS: true, Segment: seg,
		Args: []string{"--cluster-init", "--node-name", "bench-s1"},
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		stopCluster(b, c)
		if err := c.Cleanup(); err != nil {
			b.Errorf("clean up the first server: %v", err)
		}
	})
	var flags []string
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
		data, err := os.ReadFile(filepath.Join(c.DataDir, "server-token"))
		flags = strings.Fields(string(data))
		return err == nil && len(flags) == 8, nil
	})
	if err != nil {
		b.Fatalf("server-token: %q, %v", flags, err)
	}
	caPEM, err := os.ReadFile(filepath.Join(c.DataDir, "pki", "ca.crt"))
	if err != nil {
		b.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	httpc := &http.Client{Timeout: time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}

	var toReady []time.Duration
	i := 0
	for b.Loop() {
		b.StopTimer()
		i++
		name := fmt.Sprintf("bench-s%d", i+1)
		ns, err := framework.NewNetNS()
		if err != nil {
			b.Fatal(err)
		}
		ip, err := seg.Attach(ns)
		if err != nil {
			b.Fatal(err)
		}
		dataDir := filepath.Join(b.TempDir(), "s")
		readyz := "https://" + ip + ":6443/readyz"
		b.StartTimer()
		start := time.Now()
		p, err := framework.StartIn(ns, binary, append([]string{"up", "--data-dir", dataDir, "--listen", ip + ":6443",
			"--node-name", name, "--disable-agent"}, flags...)...)
		if err != nil {
			b.Fatal(err)
		}
		removed := false
		b.Cleanup(func() {
			// After a failure: what this iteration left.
			if !removed {
				p.Stop(15 * time.Second)
				ns.Remove(dataDir)
			}
		})
		err = wait.PollUntilContextTimeout(ctx, 5*time.Millisecond, 2*time.Minute, true, func(context.Context) (bool, error) {
			resp, err := httpc.Get(readyz)
			if err != nil {
				return false, nil
			}
			resp.Body.Close()
			return resp.StatusCode == http.StatusOK, nil
		})
		if err != nil {
			b.Fatalf("server %s: /readyz: %v\n%s", name, err, framework.Tail(p.Output(), 40))
		}
		toReady = append(toReady, time.Since(start))
		b.StopTimer()
		if out, err := framework.Run(ctx, nil, binary, "etcd", "remove-member", name, "--data-dir", c.DataDir); err != nil {
			b.Fatalf("remove etcd member %s: %v\n%s", name, err, out)
		}
		// Removed from etcd, the server stops with an error.
		p.Stop(15 * time.Second)
		removed = true
		if err := ns.Remove(dataDir); err != nil {
			b.Errorf("clean up server %s: %v", name, err)
		}
		b.StartTimer()
	}
	noNsPerOp(b)
	reportQuantiles(b, "start-to-readyz", toReady, true)
}

// startServers starts n servers on seg, each in a network namespace of
// its own with --disable-agent (the figures are the control plane's): the
// first with --cluster-init, the others with its DIR/server-token. They
// are stopped and cleaned up when b ends.
func startServers(b *testing.B, seg *framework.Segment, n int) []*framework.Cluster {
	b.Helper()
	var servers []*framework.Cluster
	var flags []string
	for i := range n {
		args := []string{"--node-name", fmt.Sprintf("bench-s%d", i+1), "--disable-agent"}
		if i == 0 {
			args = append(args, "--cluster-init")
		} else {
			args = append(args, flags...)
		}
		c, err := framework.StartCluster(framework.ClusterConfig{
			Binary: binary, DataDir: filepath.Join(b.TempDir(), fmt.Sprintf("s%d", i+1)), NetNS: true, Segment: seg, Args: args,
		})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() {
			c = c.Current()
			stopCluster(b, c)
			if err := c.Cleanup(); err != nil {
				b.Errorf("clean up server %d: %v", i+1, err)
			}
		})
		servers = append(servers, c)
		if i == 0 {
			err := wait.PollUntilContextTimeout(b.Context(), 100*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
				data, err := os.ReadFile(filepath.Join(c.DataDir, "server-token"))
				flags = strings.Fields(string(data))
				return err == nil && len(flags) == 8, nil
			})
			if err != nil {
				b.Fatalf("server-token: %q, %v", flags, err)
			}
		}
	}
	return servers
}

// etcdStatus is what server c's etcd member says of itself: its ID and
// the leader's it knows (0: none).
func etcdStatus(ctx context.Context, c *framework.Cluster) (id, leader uint64, err error) {
	endpoint := (&url.URL{Scheme: "unix", Path: filepath.Join(c.DataDir, "etcd", "etcd.sock")}).String()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: time.Second, Logger: zap.NewNop()})
	if err != nil {
		return 0, 0, err
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	st, err := cli.Status(ctx, endpoint)
	if err != nil {
		return 0, 0, err
	}
	return st.Header.MemberId, st.Leader, nil
}

// etcdLeader waits until every server's etcd member has been a voting
// member of a settled cluster for 2 s: each answers, all name the same
// leader, and nobody is a learner; it returns the index of the leader's
// server.
func etcdLeader(b *testing.B, servers []*framework.Cluster) int {
	b.Helper()
	leaderAt, since := -1, time.Time{}
	err := wait.PollUntilContextTimeout(b.Context(), 50*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		at, lead := -1, uint64(0)
		for i, c := range servers {
			id, l, err := etcdStatus(ctx, c)
			if err != nil || l == 0 || (lead != 0 && l != lead) {
				since = time.Time{}
				return false, nil
			}
			lead = l
			if id == l {
				at = i
			}
		}
		if at < 0 {
			since = time.Time{}
			return false, nil
		}
		if since.IsZero() || at != leaderAt {
			leaderAt, since = at, time.Now()
		}
		// etcd counts a peer as healthy once it has been connected for
		// a while (etcdserver.HealthInterval, 5 s for reconfiguration;
		// the leader's view of a restarted follower settles sooner).
		return time.Since(since) >= 2*time.Second, nil
	})
	if err != nil {
		b.Fatalf("the etcd members of %d servers do not agree on a leader: %v", len(servers), err)
	}
	return leaderAt
}

// writeClient is an admin client of c without client-side throttling,
// whose requests give up after timeout.
func writeClient(b *testing.B, c *framework.Cluster, timeout time.Duration) kubernetes.Interface {
	b.Helper()
	cfg, err := c.RESTConfig()
	if err != nil {
		b.Fatal(err)
	}
	cfg.QPS, cfg.Burst, cfg.Timeout = 1000, 1000, timeout
	return kubernetes.NewForConfigOrDie(cfg)
}

// createConfigMap creates ConfigMap default/name (a small write, one etcd
// transaction) and returns how long the API server took to acknowledge it.
func createConfigMap(ctx context.Context, client kubernetes.Interface, name string) (time.Duration, error) {
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}, Data: map[string]string{"v": name}}
	start := time.Now()
	_, err := client.CoreV1().ConfigMaps("default").Create(ctx, cm, metav1.CreateOptions{})
	return time.Since(start), err
}

// BenchmarkServerWrites compares the write latency of three servers (`up
// --cluster-init`, two `up --server`; issue 15) with a single server's
// (plain `up`), in one run: all four run at once (--disable-agent), each
// in a network namespace of its own, the three on one test segment. An
// iteration creates one ConfigMap through the single server, one through
// the server whose etcd member is the leader, and one through a server
// whose member is a follower (its etcd forwards the proposal to the
// leader), one after the other, so that the machine's load weighs on the
// three the same; 10 creates through each first are not counted.
func BenchmarkServerWrites(b *testing.B) {
	stopPodsCluster()
	ctx := b.Context()
	seg, err := framework.NewSegment()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { seg.Remove() })
	servers := startServers(b, seg, 3)
	single, err := framework.StartCluster(framework.ClusterConfig{
		Binary: binary, DataDir: filepath.Join(b.TempDir(), "single"), NetNS: true, Args: []string{"--disable-agent"},
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		stopCluster(b, single)
		if err := single.Cleanup(); err != nil {
			b.Errorf("clean up the single server: %v", err)
		}
	})
	leader := etcdLeader(b, servers)
	follower := (leader + 1) % len(servers)
	targets := []struct {
		name   string
		client kubernetes.Interface
		d      []time.Duration
	}{
		{name: "single", client: writeClient(b, single, 10*time.Second)},
		{name: "three-leader", client: writeClient(b, servers[leader], 10*time.Second)},
		{name: "three-follower", client: writeClient(b, servers[follower], 10*time.Second)},
	}
	for i := range 10 {
		for _, t := range targets {
			if _, err := createConfigMap(ctx, t.client, fmt.Sprintf("%s-warm-%d", t.name, i)); err != nil {
				b.Fatalf("warm-up write through %s: %v", t.name, err)
			}
		}
	}
	i := 0
	for b.Loop() {
		i++
		for j := range targets {
			d, err := createConfigMap(ctx, targets[j].client, fmt.Sprintf("%s-w-%d", targets[j].name, i))
			if err != nil {
				b.Fatalf("write %d through %s: %v", i, targets[j].name, err)
			}
			targets[j].d = append(targets[j].d, d)
		}
	}
	b.StopTimer()
	if now := etcdLeader(b, servers); now != leader {
		b.Logf("the etcd leader moved from server %d to %d during the run", leader+1, now+1)
	}
	noNsPerOp(b)
	for _, t := range targets {
		reportQuantiles(b, t.name+"-write", t.d, false)
	}
	for _, t := range targets[1:] {
		b.ReportMetric(float64(quantile(t.d, 0.5))/float64(quantile(targets[0].d, 0.5)), t.name+"-vs-single-p50-x")
		b.ReportMetric(float64(quantile(t.d, 0.99))/float64(quantile(targets[0].d, 0.99)), t.name+"-vs-single-p99-x")
	}
}

// failover is one kill -9 of the etcd leader's server, as the two
// survivors saw it: when each first acknowledged a write after the kill,
// and from when its /readyz answered 200 for good.
type failover struct {
	write, readyz [2]time.Duration
	// readyzFailed counts the /readyz polls that did not answer 200;
	// failedWrites the creates that failed before one was acknowledged.
	readyzFailed [2]int
	failedWrites int
}

// readyzWindow is how long after the kill BenchmarkServerFailover watches
// the survivors' /readyz: the API server's etcd readiness check is a
// linearizable read given 2 s, run at most once a second (answers in
// between repeat the last one), so a survivor may answer 200 at first and
// fail only later.
const readyzWindow = 8 * time.Second

// BenchmarkServerFailover times the failover of three servers (issue 15's
// figure): each iteration finds the server whose etcd member leads (all
// three settled for 2 s), kills it (SIGKILL, the whole process: its etcd,
// API server and controllers), and through each of the two survivors
// starts a ConfigMap create every 20 ms (each given 10 s) until one is
// acknowledged, while it polls their /readyz every 5 ms for readyzWindow.
// The figures are kill → the survivor's first acknowledged write (the
// earliest-completing of its creates; both survivors are samples) and
// kill → the first of the survivor's /readyz answers that were 200 until
// the end of the window (near zero when /readyz never failed; how often
// it failed is reported too). The killed server is then started again on
// its data dir and rejoins as the same member before the next iteration.
func BenchmarkServerFailover(b *testing.B) {
	stopPodsCluster()
	ctx := b.Context()
	seg, err := framework.NewSegment()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { seg.Remove() })
	servers := startServers(b, seg, 3)
	caPEM, err := os.ReadFile(filepath.Join(servers[0].DataDir, "pki", "ca.crt"))
	if err != nil {
		b.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	// /readyz answers anonymous clients (system:public-info-viewer).
	httpc := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	var writes, readyz []time.Duration
	failedWrites, readyzFailed := 0, 0
	i := 0
	for b.Loop() {
		b.StopTimer()
		i++
		leader := etcdLeader(b, servers)
		var survivors []*framework.Cluster
		for j, c := range servers {
			if j != leader {
				survivors = append(survivors, c)
			}
		}
		clients := []kubernetes.Interface{writeClient(b, survivors[0], 10*time.Second), writeClient(b, survivors[1], 10*time.Second)}
		b.StartTimer()
		f := killLeader(ctx, servers[leader], survivors, clients, httpc, i)
		b.StopTimer()
		for k := range 2 {
			if f.write[k] < 0 || f.readyz[k] < 0 {
				b.Fatalf("iteration %d: survivor %s: no acknowledged write or /readyz within a minute of the kill (write %s, readyz %s)",
					i, survivors[k].Server, f.write[k], f.readyz[k])
			}
			writes, readyz = append(writes, f.write[k]), append(readyz, f.readyz[k])
			if f.readyzFailed[k] > 0 {
				readyzFailed++
			}
		}
		failedWrites += f.failedWrites
		b.Logf("iteration %d: killed server %d (etcd leader): first write acknowledged after %s / %s, /readyz 200 for good after %s / %s (%d / %d polls failed), %d creates failed meanwhile",
			i, leader+1, f.write[0].Round(time.Millisecond), f.write[1].Round(time.Millisecond),
			f.readyz[0].Round(time.Millisecond), f.readyz[1].Round(time.Millisecond), f.readyzFailed[0], f.readyzFailed[1], f.failedWrites)
		n, err := servers[leader].Restart()
		if err != nil {
			b.Fatalf("restart server %d: %v", leader+1, err)
		}
		servers[leader] = n
		b.StartTimer()
	}
	b.StopTimer()
	noNsPerOp(b)
	reportQuantiles(b, "kill-to-write", writes, true)
	reportQuantiles(b, "kill-to-readyz", readyz, true)
	b.ReportMetric(float64(readyzFailed)/float64(len(readyz)), "readyz-failed-fraction")
	b.ReportMetric(float64(failedWrites)/float64(i), "failed-creates/kill")
}

// killLeader kills server leader and measures the failover through the
// survivors (BenchmarkServerFailover); a figure not reached within a
// minute is negative.
func killLeader(ctx context.Context, leader *framework.Cluster, survivors []*framework.Cluster, clients []kubernetes.Interface, httpc *http.Client, iter int) failover {
	f := failover{write: [2]time.Duration{-1, -1}, readyz: [2]time.Duration{-1, -1}}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var mu sync.Mutex
	var wg sync.WaitGroup
	start := time.Now()
	leader.Kill()
	for k := range survivors {
		wg.Add(2)
		go func() {
			defer wg.Done()
			// A new create every 20 ms, each with a name of its own,
			// until one is acknowledged: the first to complete is the
			// figure.
			wctx, stop := context.WithCancel(ctx)
			var creates sync.WaitGroup
			defer func() {
				stop()
				creates.Wait()
			}()
			acked := make(chan time.Duration, 1)
			tick := time.NewTicker(20 * time.Millisecond)
			defer tick.Stop()
			for n := 0; ; n++ {
				creates.Add(1)
				go func() {
					defer creates.Done()
					_, err := createConfigMap(wctx, clients[k], fmt.Sprintf("failover-%d-%d-%d", iter, k, n))
					if err != nil {
						if wctx.Err() == nil {
							mu.Lock()
							f.failedWrites++
							mu.Unlock()
						}
						return
					}
					select {
					case acked <- time.Since(start):
					default:
					}
				}()
				select {
				case d := <-acked:
					mu.Lock()
					f.write[k] = d
					mu.Unlock()
					return
				case <-wctx.Done():
					return
				case <-tick.C:
				}
			}
		}()
		go func() {
			defer wg.Done()
			readyzURL := survivors[k].Server + "/readyz"
			good, failed := time.Duration(-1), 0
			for ctx.Err() == nil && (good < 0 || time.Since(start) < readyzWindow) {
				ok := false
				if resp, err := httpc.Get(readyzURL); err == nil {
					resp.Body.Close()
					ok = resp.StatusCode == http.StatusOK
				}
				switch {
				case !ok:
					good = -1
					failed++
				case good < 0:
					good = time.Since(start)
				}
				time.Sleep(5 * time.Millisecond)
			}
			mu.Lock()
			f.readyz[k], f.readyzFailed[k] = good, failed
			mu.Unlock()
		}()
	}
	wg.Wait()
	return f
}
