// Package logs turns the process's log output into one stream in which every
// line says which component wrote it.
//
// Every embedded upstream component logs through klog's process-wide
// functions, so a line cannot carry its component in a logger value. Writer
// instead looks at the goroutine's stack when klog hands it a line: the
// outermost frame that belongs to a known component (kube-apiserver,
// kube-controller-manager, kube-scheduler, etcd, pocketkube's own packages)
// names it. Lines written from shared libraries on goroutines of their own
// (client-go reflectors, say) are tagged with that library.
//
// Caveats: Writer must be called on the goroutine that logs, as klog does when
// it writes synchronously; it is not meant for buffered or async output.
package logs

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"runtime"
	"strconv"
	"strings"
	"sync"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"k8s.io/klog/v2"
)

// components maps package path prefixes to the tag of their component. The
// first prefix that matches wins, so longer ones come first.
var components = []struct{ prefix, tag string }{
	{"github.com/pocketkube/pocketkube/internal/node/serviceproxy", "kube-proxy"},
	{"github.com/pocketkube/pocketkube/internal/node/coredns", "dns"},
	{"github.com/pocketkube/pocketkube/internal/node", "node"},
	{"github.com/pocketkube/pocketkube", "pocketkube"},
	{"go.etcd.io/etcd/server", "etcd"},
	{"go.etcd.io/raft", "etcd"},
	{"k8s.io/kubernetes/cmd/kube-apiserver", "apiserver"},
	{"k8s.io/kubernetes/pkg/controlplane", "apiserver"},
	{"k8s.io/kubernetes/pkg/registry", "apiserver"},
	{"k8s.io/kubernetes/pkg/kubeapiserver", "apiserver"},
	{"k8s.io/kubernetes/pkg/serviceaccount", "apiserver"},
	{"k8s.io/kubernetes/plugin/pkg", "apiserver"},
	{"k8s.io/apiserver", "apiserver"},
	{"k8s.io/kube-aggregator", "apiserver"},
	{"k8s.io/apiextensions-apiserver", "apiserver"},
	{"k8s.io/kubernetes/cmd/kube-controller-manager", "controller-manager"},
	{"k8s.io/kubernetes/pkg/controller", "controller-manager"},
	{"k8s.io/controller-manager", "controller-manager"},
	{"k8s.io/cloud-provider", "controller-manager"},
	{"k8s.io/kubernetes/cmd/kube-scheduler", "scheduler"},
	{"k8s.io/kubernetes/pkg/scheduler", "scheduler"},
	{"k8s.io/kube-scheduler", "scheduler"},
	{"k8s.io/kubernetes/pkg/proxy", "kube-proxy"},
	{"sigs.k8s.io/knftables", "kube-proxy"},
	{"github.com/coredns/coredns", "dns"},
	{"github.com/coredns/caddy", "dns"},
}

// loggingPackages are the frames of the logging machinery itself.
var loggingPackages = []string{
	"github.com/pocketkube/pocketkube/internal/logs.",
	"k8s.io/klog/",
	"k8s.io/component-base/logs",
	"github.com/go-logr/",
	"go.uber.org/zap",
	"log.",
	"runtime.",
}

// Tag returns the component for a stack of program counters, innermost
// first, as runtime.Callers returns it.
func Tag(pcs []uintptr) string {
	frames := runtime.CallersFrames(pcs)
	fallback := ""
	for {
		f, more := frames.Next()
		fn := f.Function
		if fn != "" && !hasAnyPrefix(fn, loggingPackages) {
			for _, c := range components {
				if strings.HasPrefix(fn, c.prefix) {
					return c.tag
				}
			}
			if fallback == "" {
				fallback = library(fn)
			}
		}
		if !more {
			break
		}
	}
	if fallback == "" {
		return "unknown"
	}
	return fallback
}

// library names the module of a function for lines no component claims:
// "k8s.io/client-go/tools/cache.(*Reflector).Run" → "client-go".
func library(fn string) string {
	parts := strings.Split(fn, "/")
	if len(parts) >= 2 {
		name := parts[1]
		if i := strings.IndexByte(name, '.'); i >= 0 {
			name = name[:i]
		}
		return name
	}
	if i := strings.IndexByte(fn, '.'); i >= 0 {
		return fn[:i]
	}
	return fn
}

func hasAnyPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// tagWidth aligns the messages of the common tags.
const tagWidth = len("controller-manager")

// Writer prefixes each line written to it with the writing component.
type Writer struct {
	mu  sync.Mutex
	out io.Writer
	tag func() string
}

// NewWriter returns a Writer that tags lines by the caller's stack.
func NewWriter(out io.Writer) *Writer {
	return &Writer{out: out, tag: callerTag}
}

// NewTaggedWriter returns a Writer that gives every line the same tag.
func NewTaggedWriter(out io.Writer, tag string) *Writer {
	return &Writer{out: out, tag: func() string { return tag }}
}

func callerTag() string {
	pcs := make([]uintptr, 64)
	n := runtime.Callers(3, pcs)
	return Tag(pcs[:n])
}

// benign are upstream messages logged as errors on every healthy start; the
// Writer drops them so that a quiet start prints nothing.
var benign = []string{
	// component-base/metrics: no --allow-metric-labels-manifest was given.
	"] The manifest file is empty, ignoring.\n",
}

// Write writes p, which may hold several lines, with each line tagged.
func (w *Writer) Write(p []byte) (int, error) {
	for _, b := range benign {
		if bytes.HasSuffix(p, []byte(b)) {
			return len(p), nil
		}
	}
	prefix := fmt.Sprintf("%-*s ", tagWidth, w.tag())
	var buf bytes.Buffer
	for line := range bytes.Lines(p) {
		buf.WriteString(prefix)
		buf.Write(line)
	}
	if len(p) > 0 && p[len(p)-1] != '\n' {
		buf.WriteByte('\n')
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, err := w.out.Write(buf.Bytes()); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Zap returns a zap logger for etcd that writes console lines tagged "etcd"
// to out: errors only at verbosity 0, warnings from 1, everything from 4.
func Zap(out io.Writer, verbosity int) *zap.Logger {
	level := zapcore.ErrorLevel
	switch {
	case verbosity >= 4:
		level = zapcore.DebugLevel
	case verbosity >= 2:
		level = zapcore.InfoLevel
	case verbosity >= 1:
		level = zapcore.WarnLevel
	}
	enc := zap.NewProductionEncoderConfig()
	enc.EncodeTime = zapcore.ISO8601TimeEncoder
	core := zapcore.NewCore(zapcore.NewConsoleEncoder(enc), zapcore.AddSync(NewTaggedWriter(out, "etcd")), level)
	return zap.New(core)
}

// SetupKlog sends klog's output, which every embedded upstream component
// writes to, through a tagging Writer on out. At -v 0 only errors are shown
// (upstream warns about every API version it skips on each start); from -v 1
// on, warnings and info lines up to that verbosity too.
// klogFlags are the flags klog.InitFlags registered; their -v is the user's.
func SetupKlog(klogFlags *flag.FlagSet, out io.Writer) error {
	for name, value := range map[string]string{
		"logtostderr":     "false",
		"alsologtostderr": "false",
		"one_output":      "true",
		// Every severity goes through the Writer; nothing straight to stderr.
		"stderrthreshold": "FATAL",
	} {
		if err := klogFlags.Set(name, value); err != nil {
			return fmt.Errorf("set klog flag %s: %w", name, err)
		}
	}
	w := NewWriter(out)
	info, warning := io.Writer(w), io.Writer(w)
	if Verbosity(klogFlags) == 0 {
		info, warning = io.Discard, io.Discard
	}
	klog.SetOutputBySeverity("INFO", info)
	klog.SetOutputBySeverity("WARNING", warning)
	klog.SetOutputBySeverity("ERROR", w)
	klog.SetOutputBySeverity("FATAL", w)
	return nil
}

// Verbosity returns klog's -v.
func Verbosity(klogFlags *flag.FlagSet) int {
	f := klogFlags.Lookup("v")
	if f == nil {
		return 0
	}
	v, _ := strconv.Atoi(f.Value.String())
	return v
}
