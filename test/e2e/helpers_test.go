//go:build e2e

package e2e

import (
	"strconv"
	"testing"

	"github.com/pocketkube/pocketkube/test/framework"
	"k8s.io/client-go/kubernetes"
)

// podYAML is the manifest of pod name in the default namespace, with
// terminationGracePeriodSeconds grace and the rest of its spec: spec is
// YAML indented as under "spec:" (containers, volumes, restartPolicy…).
func podYAML(name string, grace int, spec string) string {
	return "apiVersion: v1\nkind: Pod\nmetadata:\n  name: " + name + "\nspec:\n  terminationGracePeriodSeconds: " + strconv.Itoa(grace) + "\n" + spec
}

// busyboxNamespace readies the shared cluster for a test's own pods: it
// imports the busybox image and makes a namespace for the test
// (framework.NewNamespace with prefix). It returns an admin client and
// the namespace.
func busyboxNamespace(t *testing.T, prefix string) (kubernetes.Interface, string) {
	t.Helper()
	c := shared.Client(t)
	shared.ImportBusybox(t, "busybox")
	return c, framework.NewNamespace(t, c, prefix)
}
