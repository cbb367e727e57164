package logs

import (
	"bytes"
	"net/http"
	"runtime"
	"strings"
	"testing"

	"go.uber.org/zap/zapcore"
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
	if got := Tag(nil, pcs[:n]); got != "testing" {
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
	klog.SetOutput(NewWriter(&out, nil))
	klog.LogToStderr(false)
	defer klog.LogToStderr(true)
	klog.Info("hello from the test")
	klog.Flush()
	line := out.String()
	if !strings.HasPrefix(line, "testing ") || !strings.Contains(line, "hello from the test") {
		t.Errorf("line %q: want tag testing and the message", line)
	}
}

func TestTagOfComponent(t *testing.T) {
	pcs := make([]uintptr, 32)
	n := runtime.Callers(0, pcs)
	components := []Component{{Tag: "tests", Packages: []Packages{PackageOf(testing.Main)}}}
	if got := Tag(components, pcs[:n]); got != "tests" {
		t.Errorf("Tag = %q, want tests", got)
	}
}

func TestComponentOfLongestPackage(t *testing.T) {
	components := []Component{
		{Tag: "all", Packages: []Packages{{"example.com/x"}}},
		{Tag: "proxy", Packages: []Packages{{"example.com/x/node/proxy"}}},
		{Tag: "node", Packages: []Packages{{"example.com/x/node"}}},
		{Tag: "yaml", Packages: []Packages{{"gopkg.in/yaml.v3"}}},
	}
	tests := []struct{ fn, want string }{
		{"example.com/x/node/proxy.(*Proxier).Sync", "proxy"},
		{"example.com/x/node/proxy/sub.F.func1", "proxy"},
		{"example.com/x/node.Run", "node"},
		{"example.com/x/nodes.Run", "all"},
		{"example.com/x/cmd.main", "all"},
		{"example.com/xy.F", ""},
		{"gopkg.in/yaml%2ev3.Unmarshal", "yaml"},
		{"gopkg.in/yaml.v3/sub.F", "yaml"},
		{"net/http.(*conn).serve", ""},
	}
	for _, tt := range tests {
		if got := componentOf(components, tt.fn); got != tt.want {
			t.Errorf("componentOf(%q) = %q, want %q", tt.fn, got, tt.want)
		}
	}
}

// TestPackageOf checks that symbols name the packages the components are
// made of: their package, or their whole module.
func TestPackageOf(t *testing.T) {
	tests := []struct {
		name string
		got  Packages
		want string
	}{
		{"function", PackageOf(klog.Info), "k8s.io/klog/v2"},
		{"method", PackageOf((*klog.Verbose).Enabled), "k8s.io/klog/v2"},
		{"closure", PackageOf(func() {}), "github.com/pocketkube/pocketkube/internal/logs"},
		{"standard library", PackageOf(http.ListenAndServe), "net/http"},
		{"parent", PackageOf(http.ListenAndServe).Parent(), "net"},
		{"module of its root package", ModuleOf(klog.Info), "k8s.io/klog/v2"},
		{"module of a package below", ModuleOf(zapcore.NewCore), "go.uber.org/zap"},
		{"main module", ModuleOf(Tag), "github.com/pocketkube/pocketkube"},
	}
	for _, tt := range tests {
		if tt.got.String() != tt.want {
			t.Errorf("%s: %s, want %s", tt.name, tt.got, tt.want)
		}
	}
}
