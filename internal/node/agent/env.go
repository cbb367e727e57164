package agent

import (
	v1 "k8s.io/api/core/v1"
	"k8s.io/kubernetes/third_party/forked/golang/expansion"
)

// The container environment itself is package downward's; what is left
// here is the agent's side of it: the argv expansion it does with the
// result.

func expandCommand(cmd []string, env []v1.EnvVar) []string {
	if len(cmd) == 0 {
		return nil
	}
	m := make(map[string]string, len(env))
	for _, e := range env {
		m[e.Name] = e.Value
	}
	mapping := expansion.MappingFuncFor(m)
	out := make([]string, len(cmd))
	for i, s := range cmd {
		out[i] = expansion.Expand(s, mapping)
	}
	return out
}
