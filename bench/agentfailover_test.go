//go:build bench

package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/pocketkube/pocketkube/test/framework"
)

// BenchmarkAgentFailover times an agent going on through another server
// when the one its API load balancer uses (internal/node/apilb) is killed
// -9 (issue 15): three servers (control planes only, --disable-agent) and
// one agent, each in a network namespace of its own on a test segment.
// Each iteration finds the server the agent's connections go to (`ss` in
// the agent's namespace), kills it, and measures kill → a pod created
// through a survivor and pinned to the agent's node Running (the agent's
// watch and status writes reached a survivor), and kill → the node's
// Lease renewed (every 10 s, as kubelet's: the figure is mostly that
// period). The killed server is started again before the next iteration.
func BenchmarkAgentFailover(b *testing.B) {
	stopPodsCluster()
	ctx := b.Context()
	seg, err := framework.NewSegment()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { seg.Remove() })
	servers := startServers(b, seg, 3)
	data, err := os.ReadFile(filepath.Join(servers[0].DataDir, "node-token"))
	if err != nil {
		b.Fatal(err)
	}
	flags := strings.Fields(string(data))
	ns, err := framework.NewNetNS()
	if err != nil {
		b.Fatal(err)
	}
	dataDir := filepath.Join(b.TempDir(), "agent")
	b.Cleanup(func() {
		if err := ns.Remove(dataDir); err != nil {
			b.Errorf("clean up the agent's namespace: %v", err)
		}
	})
	ip, err := seg.Attach(ns)
	if err != nil {
		b.Fatal(err)
	}
	tarPath := filepath.Join(b.TempDir(), "busybox.tar")
	if err := framework.BusyboxTar(tarPath, nil); err != nil {
		b.Fatal(err)
	}
	if _, err := framework.Run(ctx, nil, binary, "images", "import", "--data-dir", dataDir, "--name", "busybox", tarPath); err != nil {
		b.Fatal(err)
	}
	name := fmt.Sprintf("bench-failover-%d", os.Getpid())
	agent, err := framework.StartIn(ns, binary, append([]string{"agent", "--server", servers[0].Server, "--data-dir", dataDir,
		"--node-name", name, "--node-ip", ip, "--cgroup-root", ns.CgroupRoot}, flags...)...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := agent.Stop(15 * time.Second); err != nil {
			b.Errorf("stop the agent: %v", err)
		}
	})
	if err := waitNamedNodeReady(ctx, servers[0].Client(b), name, 50*time.Millisecond); err != nil {
		b.Fatalf("node %s not Ready: %v\n%s", name, err, framework.Tail(agent.Output(), 40))
	}
	// The agent learnt the three servers.
	if err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
		data, _ := os.ReadFile(filepath.Join(dataDir, "agent", "apiservers"))
		return len(strings.Fields(string(data))) == 3, nil
	}); err != nil {
		b.Fatalf("the agent's load balancer did not learn the three servers: %v", err)
	}

	var toPod, toLease []time.Duration
	i := 0
	for b.Loop() {
		b.StopTimer()
		i++
		used, err := agentServer(ctx, ns, servers)
		if err != nil {
			b.Fatal(err)
		}
		survivor := servers[(used+1)%len(servers)]
		client := writeClient(b, survivor, 10*time.Second)
		lease, err := client.CoordinationV1().Leases(corev1.NamespaceNodeLease).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			b.Fatal(err)
		}
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("failover-%d", i), Namespace: "default"},
			Spec: corev1.PodSpec{
				NodeName:                      name,
				TerminationGracePeriodSeconds: new(int64),
				Containers: []corev1.Container{{Name: "main", Image: "busybox", ImagePullPolicy: corev1.PullIfNotPresent,
					Command: []string{"sleep", "3600"}}},
			},
		}
		b.StartTimer()
		killed := time.Now()
		servers[used].Kill()
		var podAt, leaseAt time.Duration
		err = wait.PollUntilContextTimeout(ctx, 20*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
			if podAt == 0 {
				if _, err := client.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err == nil || strings.Contains(err.Error(), "already exists") {
					if p, err := client.CoreV1().Pods("default").Get(ctx, pod.Name, metav1.GetOptions{}); err == nil && framework.Running(p) {
						podAt = time.Since(killed)
					}
				}
			}
			if leaseAt == 0 {
				if l, err := client.CoordinationV1().Leases(corev1.NamespaceNodeLease).Get(ctx, name, metav1.GetOptions{}); err == nil && renewedSince(l, lease) {
					leaseAt = time.Since(killed)
				}
			}
			return podAt > 0 && leaseAt > 0, nil
		})
		b.StopTimer()
		if err != nil {
			b.Fatalf("iteration %d: with server %d killed, pod Running after %s, lease renewed after %s (0: not within a minute)\n%s",
				i, used+1, podAt, leaseAt, framework.Tail(agent.Output(), 40))
		}
		toPod, toLease = append(toPod, podAt), append(toLease, leaseAt)
		b.Logf("iteration %d: killed server %d, the agent's: pod Running after %s, lease renewed after %s",
			i, used+1, podAt.Round(time.Millisecond), leaseAt.Round(time.Millisecond))
		client.CoreV1().Pods("default").Delete(ctx, pod.Name, metav1.DeleteOptions{})
		n, err := servers[used].Restart()
		if err != nil {
			b.Fatalf("restart server %d: %v", used+1, err)
		}
		servers[used] = n
		b.StartTimer()
	}
	b.StopTimer()
	noNsPerOp(b)
	reportQuantiles(b, "kill-to-pod-running", toPod, true)
	reportQuantiles(b, "kill-to-lease-renewed", toLease, true)
}

// renewedSince says whether lease l was renewed after before was.
func renewedSince(l, before *coordinationv1.Lease) bool {
	return l.Spec.RenewTime != nil && before.Spec.RenewTime != nil && l.Spec.RenewTime.After(before.Spec.RenewTime.Time)
}

// agentServer returns the index of the server that the agent in ns holds
// established connections to (its load balancer's), by `ss` in ns.
func agentServer(ctx context.Context, ns *framework.NetNS, servers []*framework.Cluster) (int, error) {
	var out []byte
	var err error
	for range 50 {
		out, err = exec.CommandContext(ctx, "ip", "netns", "exec", ns.Name, "ss", "-Htn", "state", "established").CombinedOutput()
		if err != nil {
			return -1, fmt.Errorf("ss: %v: %s", err, out)
		}
		var used []int
		for _, line := range strings.Split(string(out), "\n") {
			f := strings.Fields(line)
			if len(f) < 4 {
				continue
			}
			for j, c := range servers {
				if f[3] == strings.TrimPrefix(c.Server, "https://") && !slices.Contains(used, j) {
					used = append(used, j)
				}
			}
		}
		if len(used) == 1 {
			return used[0], nil
		}
		time.Sleep(100 * time.Millisecond) // none yet, or a switch under way
	}
	return -1, fmt.Errorf("the agent's connections do not go to one server:\n%s", out)
}
