package agent

import (
	"fmt"
	"path/filepath"
	"strings"

	v1 "k8s.io/api/core/v1"
	"k8s.io/kubernetes/third_party/forked/golang/expansion"
)

// expandSubPath is kubelet's subPathExpr expansion
// (ExpandContainerVolumeMounts): a missing or empty variable is an error.
func expandSubPath(expr string, env []v1.EnvVar) (string, error) {
	m := make(map[string]string, len(env))
	for _, e := range env {
		m[e.Name] = e.Value
	}
	var missing []string
	out := expansion.Expand(expr, func(name string) string {
		v, ok := m[name]
		if !ok || v == "" {
			missing = append(missing, name)
		}
		return v
	})
	if len(missing) > 0 {
		return "", fmt.Errorf("missing value for %s", strings.Join(missing, ", "))
	}
	if filepath.IsAbs(out) {
		return "", fmt.Errorf("error SubPath `%s` must not be an absolute path", out)
	}
	return out, nil
}
