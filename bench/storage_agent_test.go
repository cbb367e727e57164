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

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/pocketkube/pocketkube/test/framework"
)

// BenchmarkPVCStartAgent is BenchmarkPVCStart on a joined node: one
// `pocketkube agent` (a network namespace of its own, busybox imported)
// joins a new `up`, and each iteration's pod is put on it by a
// nodeSelector, so that the agent's own local-path provisioner makes its
// claim's volume (internal/node/localpath). It reports create → claim
// Bound and create → pod Running (Ready), p50/p99; the pod, the claim and
// its PV are gone (the directory removed on the agent) before the next
// iteration.
func BenchmarkPVCStartAgent(b *testing.B) {
	c := startCluster(b)
	client := highQPSClient(b, c)
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
	name := fmt.Sprintf("bench-lp-agent-%d", os.Getpid())
	ns, err := framework.NewNetNS()
	if err != nil {
		b.Fatal(err)
	}
	dataDir := filepath.Join(b.TempDir(), "agent")
	if _, err := framework.Run(ctx, nil, binary, "images", "import", "--data-dir", dataDir, "--name", "busybox", tarPath); err != nil {
		b.Fatal(err)
	}
	p, err := framework.StartIn(ns, binary, append([]string{"agent", "--server", c.Server, "--data-dir", dataDir, "--node-name", name,
		"--node-ip", ns.Addr, "--cgroup-root", ns.CgroupRoot}, flags...)...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := p.Stop(15 * time.Second); err != nil {
			b.Errorf("stop agent %s: %v", name, err)
		}
		client.CoreV1().Nodes().Delete(context.Background(), name, metav1.DeleteOptions{})
		if err := ns.Remove(dataDir); err != nil {
			b.Errorf("clean up agent %s: %v", name, err)
		}
	})
	if err := waitNamedNodeReady(ctx, client, name, 50*time.Millisecond); err != nil {
		b.Fatalf("node %s not Ready: %v\n%s", name, err, framework.Tail(p.Output(), 40))
	}
	var bound, running []time.Duration
	run := 0
	for b.Loop() {
		bnd, rn, err := pvcStartRun(ctx, client, fmt.Sprintf("bench-pvc-agent-%d-%d", time.Now().UnixNano(), run), name)
		if err != nil {
			b.Fatalf("%v\nagent output:\n%s", err, framework.Tail(p.Output(), 40))
		}
		run++
		bound, running = append(bound, bnd), append(running, rn)
	}
	noNsPerOp(b)
	reportQuantiles(b, "create-bound", bound, false)
	reportQuantiles(b, "create-running", running, false)
}
