//go:build e2e

package e2e

import "strconv"

// podYAML is the manifest of pod name in the default namespace, with
// terminationGracePeriodSeconds grace and the rest of its spec: spec is
// YAML indented as under "spec:" (containers, volumes, restartPolicy…).
func podYAML(name string, grace int, spec string) string {
	return "apiVersion: v1\nkind: Pod\nmetadata:\n  name: " + name + "\nspec:\n  terminationGracePeriodSeconds: " + strconv.Itoa(grace) + "\n" + spec
}
