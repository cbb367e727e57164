//go:build e2e

package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/pocketkube/pocketkube/test/framework"
)

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
	applyPod(t, c, "logger", `apiVersion: v1
kind: Pod
metadata:
  name: logger
spec:
  containers:
  - name: main
    image: busybox
    command: ["sh", "-c", "echo hello; sleep 3600"]
`)
	pod := waitPod(t, c.Client(t), "logger", "Running", framework.Running)
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
	for _, d := range private {
		fi, err := os.Stat(filepath.Join(c.DataDir, d))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o700 {
			t.Errorf("%s/ is %v after up, want 0700", d, fi.Mode().Perm())
		}
	}
	waitPod(t, c.Client(t), "logger", "Running again", func(p *corev1.Pod) bool {
		return framework.Running(p) && p.Status.ContainerStatuses[0].RestartCount == 1
	})
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
