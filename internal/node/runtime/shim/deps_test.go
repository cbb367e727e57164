package shim

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDeps keeps the shim binary small: one runs per container, and each
// package's init (and k8s.io's above all) costs memory and start time in
// every one of them.
func TestDeps(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("needs the go tool in $PATH")
	}
	tests := []struct {
		name, pkg string
	}{
		{name: "package", pkg: "github.com/pocketkube/pocketkube/internal/node/runtime/shim"},
		{name: "binary", pkg: "github.com/pocketkube/pocketkube/cmd/pocketkube-shim"},
	}
	allowed := []string{
		"golang.org/x/sys/",
		"github.com/pocketkube/pocketkube/internal/node/runtime/shim",
		"github.com/pocketkube/pocketkube/cmd/pocketkube-shim",
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := exec.Command(goBin, "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", tt.pkg).Output()
			if err != nil {
				t.Fatalf("go list -deps %s: %v", tt.pkg, err)
			}
			for _, dep := range strings.Fields(string(out)) {
				ok := false
				for _, a := range allowed {
					ok = ok || strings.HasPrefix(dep, a)
				}
				if !ok || strings.HasPrefix(dep, "k8s.io/") {
					t.Errorf("%s depends on %s: the shim may use only the standard library and golang.org/x/sys", tt.pkg, dep)
				}
			}
		})
	}
}
