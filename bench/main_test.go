//go:build bench

package bench

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/pocketkube/pocketkube/test/framework"
)

// binary is the pocketkube binary under test (POCKETKUBE_BIN).
var binary string

// listenHost is an address of this machine pods can reach, where the
// clusters listen (framework.ListenAddress).
var listenHost string

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	env, err := framework.NewEnv("..", "pk-bench-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer env.Close()
	binary, listenHost = env.Binary, env.Host
	code := m.Run()
	stopPodsCluster()
	return code
}

// startCluster starts a cluster of its own for b in a temporary
// directory and stops it (Ctrl-C) when b ends.
func startCluster(b *testing.B, extra ...string) *framework.Cluster {
	b.Helper()
	stopPodsCluster()
	c, err := framework.StartCluster(framework.ClusterConfig{
		Binary: binary, DataDir: filepath.Join(b.TempDir(), "data"), Host: listenHost, Args: extra,
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { stopCluster(b, c) })
	waitNodeReady(b, c)
	return c
}

// stopCluster stops c if it runs and logs its output's end if b failed.
func stopCluster(tb testing.TB, c *framework.Cluster) {
	if c.Exited() == nil {
		if took, err := c.Stop(30 * time.Second); err != nil {
			tb.Errorf("stop cluster: %v after %s", err, took)
		}
	}
	if tb.Failed() {
		tb.Logf("cluster output:\n%s", framework.Tail(c.Output(), 60))
	}
}

// podsNetNS runs the pod benchmarks' cluster in a network namespace of
// its own (framework.ClusterConfig.NetNS, as BenchmarkSoak's), beside
// whatever else runs on the machine, without the e2e lock.
var podsNetNS = flag.Bool("pods-netns", false, "BenchmarkPodStart, BenchmarkPodMemory: run the cluster in a network namespace of its own (no e2e lock needed)")

// sharedPods is the one cluster the pod benchmarks share, in the order
// bench/pods.sh measured on one cluster: starts, then memory.
var sharedPods struct {
	c   *framework.Cluster
	dir string
}

// podsCluster returns the cluster BenchmarkPodStart and BenchmarkPodMemory
// share, starting it with the busybox image on first use. A benchmark that
// starts a cluster of its own stops it first (stopPodsCluster): two node
// agents on one machine clash (node name, bridge, cgroups).
func podsCluster(b *testing.B) *framework.Cluster {
	b.Helper()
	if sharedPods.c != nil && sharedPods.c.Exited() == nil {
		return sharedPods.c
	}
	dir, err := os.MkdirTemp("", "pk-bench-pods-")
	if err != nil {
		b.Fatal(err)
	}
	cfg := framework.ClusterConfig{Binary: binary, DataDir: filepath.Join(dir, "data"), Host: listenHost}
	if *podsNetNS {
		cfg.Host, cfg.NetNS = "", true
	}
	c, err := framework.StartCluster(cfg)
	if err != nil {
		os.RemoveAll(dir)
		b.Fatal(err)
	}
	sharedPods.c, sharedPods.dir = c, dir
	waitNodeReady(b, c)
	c.ImportBusybox(b, "busybox")
	return c
}

func stopPodsCluster() {
	stopPeerCluster()
	if sharedPods.c == nil {
		return
	}
	if sharedPods.c.Exited() == nil {
		sharedPods.c.Stop(30 * time.Second)
	}
	if sharedPods.c.NetNS != nil {
		if err := sharedPods.c.Cleanup(); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
	}
	if err := removeUnlessMounted(sharedPods.dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	sharedPods.c = nil
}

// waitNodeReady waits until the cluster's node is Ready and the default
// namespace's service account exists (pods need it to be admitted), as
// bench/lib.sh's wait_node_ready did.
func waitNodeReady(b *testing.B, c *framework.Cluster) {
	b.Helper()
	client := c.Client(b)
	err := wait.PollUntilContextTimeout(b.Context(), 200*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		nodes, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil || len(nodes.Items) != 1 {
			return false, nil
		}
		ready := false
		for _, cond := range nodes.Items[0].Status.Conditions {
			if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
				ready = true
			}
		}
		if !ready {
			return false, nil
		}
		_, err = client.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{})
		return err == nil, nil
	})
	if err != nil {
		b.Fatalf("node not Ready: %v", err)
	}
}

// removeUnlessMounted removes dir unless something is still mounted under
// it: a cluster that did not stop cleanly leaves mounts, and removing
// through them would reach into what they mount.
func removeUnlessMounted(dir string) error {
	mounts, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return err
	}
	if strings.Contains(string(mounts), " "+dir+"/") {
		return fmt.Errorf("mounts left under %s: not removed", dir)
	}
	return os.RemoveAll(dir)
}
