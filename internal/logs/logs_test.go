package logs

import (
	"bytes"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"k8s.io/klog/v2"
)

func TestLibrary(t *testing.T) {
	tests := []struct{ fn, want string }{
		{"k8s.io/client-go/tools/cache.(*Reflector).Run", "client-go"},
		{"google.golang.org/grpc.(*ClientConn).Close", "grpc"},
		{"net/http.(*conn).serve", "http"},
		{"main.main", "main"},
	}
	for _, tt := range tests {
		t.Run(tt.fn, func(t *testing.T) {
			if got := library(tt.fn); got != tt.want {
				t.Errorf("library(%q) = %q, want %q", tt.fn, got, tt.want)
			}
		})
	}
}

func TestTagOwnPackage(t *testing.T) {
	pcs := make([]uintptr, 32)
	n := runtime.Callers(0, pcs)
	// This test runs in the logs package, which Tag skips as logging
	// machinery; the testing package is what remains.
	if got := Tag(pcs[:n]); got != "testing" {
		t.Errorf("Tag = %q, want testing", got)
	}
}

func TestWriterTagsEveryLine(t *testing.T) {
	var out bytes.Buffer
	w := NewTaggedWriter(&out, "etcd")
	w.Write([]byte("one\ntwo\nthree"))
	want := "etcd               one\netcd               two\netcd               three\n"
	if out.String() != want {
		t.Errorf("got %q, want %q", out.String(), want)
	}
}

func TestKlogThroughWriter(t *testing.T) {
	var out bytes.Buffer
	klog.SetOutput(NewWriter(&out))
	klog.LogToStderr(false)
	defer klog.LogToStderr(true)
	klog.Info("hello from the test")
	klog.Flush()
	line := out.String()
	if !strings.HasPrefix(line, "testing ") || !strings.Contains(line, "hello from the test") {
		t.Errorf("line %q: want tag testing and the message", line)
	}
}

// TestComponentPrefixesExist fails when a package the components table names
// is renamed or leaves the module graph: Tag would then silently tag its
// lines with a library name instead of the component.
func TestComponentPrefixesExist(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("needs the go tool in $PATH")
	}
	for _, c := range components {
		t.Run(c.prefix, func(t *testing.T) {
			pattern := c.prefix + "/..."
			out, err := exec.Command(goBin, "list", "-find", "-f", "{{.ImportPath}}", pattern).Output()
			if err != nil {
				t.Fatalf("go list %s: %v", pattern, err)
			}
			if len(strings.Fields(string(out))) == 0 {
				t.Errorf("no package matches %s (tag %s)", c.prefix, c.tag)
			}
		})
	}
}
