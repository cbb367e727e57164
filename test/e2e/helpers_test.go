//go:build e2e

package e2e

import (
	"errors"
	"os/exec"
	"strconv"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/pocketkube/pocketkube/test/framework"
)

// The helpers below only serve node_lifecycle_test.go, lifecycle_test.go
// and services_test.go, which predate test/framework's versions; new code
// calls those (Cluster.ApplyPod, framework.WaitPod, framework.PhaseIs,
// framework.ExitCode, strconv.Itoa) directly.

func applyPod(t *testing.T, c *framework.Cluster, name, manifest string) {
	t.Helper()
	c.ApplyPod(t, name, manifest)
}

func waitPod(t *testing.T, c kubernetes.Interface, name string, what string, cond func(*corev1.Pod) bool) *corev1.Pod {
	t.Helper()
	return framework.WaitPod(t, c, "default", name, what, cond)
}

func asExit(err error, target **exec.ExitError) bool { return errors.As(err, target) }

func itoa(i int) string { return strconv.Itoa(i) }
