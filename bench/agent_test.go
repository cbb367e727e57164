//go:build bench

package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/pocketkube/pocketkube/test/framework"
)

// BenchmarkAgentJoin times a `pocketkube agent` joining a running `up`
// (issue 15's figures): each iteration starts an agent with a new data
// dir (busybox imported beforehand) and a new node name in a network
// namespace of its own, and measures agent start → Node Ready (discovery,
// TLS bootstrap, registration, podCIDR, first Ready status) and agent
// start → a pod pinned to the node Running and Ready. The agent is then
// stopped and its Node deleted.
func BenchmarkAgentJoin(b *testing.B) {
	c := startCluster(b)
	client := c.Client(b)
	ctx := b.Context()
	var flags []string
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
		data, err := os.ReadFile(filepath.Join(c.DataDir, "node-token"))
		flags = strings.Fields(string(data))
		return err == nil && len(flags) == 4, nil
	})
	if err != nil {
		b.Fatalf("node-token: %q, %v", flags, err)
	}
	tarPath := filepath.Join(b.TempDir(), "busybox.tar")
	if err := framework.BusyboxTar(tarPath, nil); err != nil {
		b.Fatal(err)
	}
	var toReady, toPod []time.Duration
	i := 0
	for b.Loop() {
		b.StopTimer()
		i++
		name := fmt.Sprintf("bench-agent-%d-%d", os.Getpid(), i)
		ns, err := framework.NewNetNS()
		if err != nil {
			b.Fatal(err)
		}
		dataDir := filepath.Join(b.TempDir(), "agent")
		if _, err := framework.Run(ctx, nil, binary, "images", "import", "--data-dir", dataDir, "--name", "busybox", tarPath); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start := time.Now()
		p, err := framework.StartIn(ns, binary, append([]string{"agent", "--server", c.Server, "--data-dir", dataDir, "--node-name", name,
			"--node-ip", ns.Addr, "--cgroup-root", ns.CgroupRoot}, flags...)...)
		if err != nil {
			b.Fatal(err)
		}
		// Polled every 5 ms: the time to Ready is the figure.
		if err := waitNamedNodeReady(ctx, client, name, 5*time.Millisecond); err != nil {
			b.Fatalf("node %s not Ready: %v\n%s", name, err, framework.Tail(p.Output(), 40))
		}
		toReady = append(toReady, time.Since(start))
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
			Spec: corev1.PodSpec{
				NodeName:                      name,
				TerminationGracePeriodSeconds: new(int64),
				Containers: []corev1.Container{{Name: "main", Image: "busybox", ImagePullPolicy: corev1.PullIfNotPresent,
					Command: []string{"sleep", "3600"}}},
			},
		}
		if _, err := client.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			b.Fatal(err)
		}
		if _, err := framework.WaitPodIn(ctx, client, "default", name, time.Minute, func(p *corev1.Pod) (bool, error) { return framework.Running(p), nil }); err != nil {
			b.Fatalf("pod on %s: %v\n%s", name, err, framework.Tail(p.Output(), 40))
		}
		toPod = append(toPod, time.Since(start))
		b.StopTimer()
		client.CoreV1().Pods("default").Delete(ctx, name, metav1.DeleteOptions{})
		wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
			_, err := client.CoreV1().Pods("default").Get(ctx, name, metav1.GetOptions{})
			return err != nil, nil
		})
		if err := p.Stop(15 * time.Second); err != nil {
			b.Errorf("stop agent %s: %v", name, err)
		}
		client.CoreV1().Nodes().Delete(ctx, name, metav1.DeleteOptions{})
		if err := ns.Remove(dataDir); err != nil {
			b.Errorf("clean up agent %s: %v", name, err)
		}
		b.StartTimer()
	}
	noNsPerOp(b)
	reportQuantiles(b, "start-to-node-ready", toReady, true)
	reportQuantiles(b, "start-to-pod-running", toPod, true)
}

// waitNamedNodeReady polls the Node name every interval, for a minute at
// most, until its Ready condition is True.
func waitNamedNodeReady(ctx context.Context, client kubernetes.Interface, name string, interval time.Duration) error {
	return wait.PollUntilContextTimeout(ctx, interval, time.Minute, true, func(ctx context.Context) (bool, error) {
		n, err := client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		for _, cond := range n.Status.Conditions {
			if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
				return true, nil
			}
		}
		return false, nil
	})
}
