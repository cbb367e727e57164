//go:build e2e

package e2e

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

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

// stubbornPod ignores SIGTERM, so only SIGKILL ends it, and has a long
// grace period, so that Ctrl-C must cap it. It is ready while
// /tmp/unready does not exist: touching that file makes the agent write
// a new status, which only an agent that syncs the pod can do.
const stubbornPod = `apiVersion: v1
kind: Pod
metadata:
  name: survivor
spec:
  terminationGracePeriodSeconds: 30
  containers:
  - name: main
    image: busybox
    command: ["sh", "-c", "trap '' TERM; echo started; while true; do sleep 1; done"]
    readinessProbe:
      exec:
        command: ["sh", "-c", "! test -e /tmp/unready"]
      periodSeconds: 1
`

// Ctrl-C stops the node's pods and leaves nothing behind; `up` again runs
// them again, with the restart count kubelet reports after a node restart;
// after kill -9 the next `up` adopts the containers that kept running.
func TestNodeRestartAndCrash(t *testing.T) {
	ctx := context.Background()
	applyPod(t, shared, "survivor", stubbornPod)
	pod := waitPod(t, shared.Client(t), "survivor", "Running", framework.Running)
	uid := string(pod.UID)
	before := pod.Status.ContainerStatuses[0].RestartCount

	// The pod ignores SIGTERM and asks for 30 s: Ctrl-C gives it the 3 s
	// the node's shutdown grace period allows, then SIGKILLs it.
	took := stopCleanly(t, shared)
	if took < 3*time.Second {
		t.Errorf("Ctrl-C took %s with a pod that ignores SIGTERM: it did not wait the 3 s shutdown grace period", took)
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
	// The API still holds the status the killed agent wrote. Make the pod
	// unready: the status that says so is written by the new agent, after
	// it synced the pod and probed its container.
	// The exec works once the new agent knows the pod again.
	var execErr error
	if err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, framework.PodTimeout, true, func(ctx context.Context) (bool, error) {
		_, execErr = shared.Kubectl(ctx, framework.Newest(), "exec", "survivor", "--", "touch", "/tmp/unready")
		return execErr == nil, nil
	}); err != nil {
		t.Fatalf("exec after kill -9: %v", execErr)
	}
	pod = waitPod(t, shared.Client(t), "survivor", "unready after kill -9", func(p *corev1.Pod) bool {
		return len(p.Status.ContainerStatuses) == 1 && !p.Status.ContainerStatuses[0].Ready && p.Status.Phase == corev1.PodRunning
	})
	cs := pod.Status.ContainerStatuses[0]
	if cs.ContainerID != id || cs.RestartCount != before+1 || cs.State.Running == nil {
		t.Errorf("after kill -9: container %s restarts %d running %v, want adopted %s with %d", cs.ContainerID, cs.RestartCount, cs.State.Running, id, before+1)
	}
	out, err := shared.Kubectl(ctx, framework.Newest(), "exec", "survivor", "--", "cat", "/etc/hostname")
	if err != nil || out != "survivor\n" {
		t.Errorf("exec after adoption: %q, %v", out, err)
	}
	shared.Client(t).CoreV1().Pods("default").Delete(ctx, "survivor", metav1.DeleteOptions{GracePeriodSeconds: new(int64)})
}
