//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pocketkube/pocketkube/test/framework"
)

// restartShared starts the shared cluster again on its data dir and ports.
func restartShared(t *testing.T) {
	t.Helper()
	c, err := shared.Restart()
	if err != nil {
		t.Fatal(err)
	}
	shared = c
}

// shims counts the runtime shims running for containers of the cluster
// in dataDir (their bundles are under it).
func shims(dataDir string) int {
	out, _ := exec.Command("pgrep", "-f", "shim.*--bundle "+dataDir).Output()
	return len(strings.Fields(string(out)))
}

// Ctrl-C stops the node's pods and leaves nothing behind; `up` again runs
// them again, with the restart count kubelet reports after a node restart;
// after kill -9 the next `up` adopts the containers that kept running.
func TestNodeRestartAndCrash(t *testing.T) {
	ctx := context.Background()
	applyPod(t, shared, "survivor", fmt.Sprintf(sleeperPod, "survivor"))
	pod := waitPod(t, shared.Client(t), "survivor", "Running", framework.Running)
	uid := string(pod.UID)
	before := pod.Status.ContainerStatuses[0].RestartCount

	took, err := shared.Stop(10 * time.Second)
	if err != nil {
		t.Fatalf("Ctrl-C with a running pod: %v after %s", err, took)
	}
	t.Logf("stopped with a running pod in %s", took.Round(time.Millisecond))
	if n := shims(shared.DataDir); n != 0 {
		t.Errorf("%d runtime shims left after Ctrl-C", n)
	}
	for _, l := range checkNoPodLeftovers(shared.DataDir, uid) {
		if !strings.Contains(l, "/logs/") { // logs stay: they carry the restart count
			t.Error(l)
		}
	}

	restartShared(t)
	pod = waitPod(t, shared.Client(t), "survivor", "Running again", func(p *corev1.Pod) bool {
		return framework.Running(p) && p.Status.ContainerStatuses[0].RestartCount == before+1
	})
	if string(pod.UID) != uid {
		t.Fatalf("pod UID changed: %s", pod.UID)
	}
	id := pod.Status.ContainerStatuses[0].ContainerID

	// kill -9: the container keeps running under its shim, and the next
	// up adopts it: same container, no restart.
	shared.Kill()
	if n := shims(shared.DataDir); n == 0 {
		t.Errorf("no shim survived kill -9")
	}
	restartShared(t)
	time.Sleep(2 * time.Second) // a few syncs
	pod = waitPod(t, shared.Client(t), "survivor", "Running after kill -9", framework.Running)
	cs := pod.Status.ContainerStatuses[0]
	if cs.ContainerID != id || cs.RestartCount != before+1 {
		t.Errorf("after kill -9: container %s restarts %d, want adopted %s with %d", cs.ContainerID, cs.RestartCount, id, before+1)
	}
	out, err := shared.Kubectl(ctx, framework.Newest(), "exec", "survivor", "--", "cat", "/etc/hostname")
	if err != nil || out != "survivor\n" {
		t.Errorf("exec after adoption: %q, %v", out, err)
	}
	shared.Client(t).CoreV1().Pods("default").Delete(ctx, "survivor", metav1.DeleteOptions{})
}
