package agent

import (
	"testing"

	v1 "k8s.io/api/core/v1"
)

func TestExpandSubPath(t *testing.T) {
	env := []v1.EnvVar{{Name: "POD_NAME", Value: "p1"}, {Name: "EMPTY", Value: ""}, {Name: "UP", Value: ".."}, {Name: "ABS", Value: "/tmp"}}
	for _, tc := range []struct{ expr, want, err string }{
		{"$(POD_NAME)", "p1", ""},
		{"logs/$(POD_NAME)", "logs/p1", ""},
		{"$(EMPTY)/$(MISSING)", "", "missing value for EMPTY, MISSING"},
		{"$(ABS)", "", "error SubPath `/tmp` must not be an absolute path"},
	} {
		t.Run(tc.expr, func(t *testing.T) {
			got, err := expandSubPath(tc.expr, env)
			if tc.err != "" {
				if err == nil || err.Error() != tc.err {
					t.Errorf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("= %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}
