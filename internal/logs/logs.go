// Package logs turns the process's log output into one stream in which every
// line says which component wrote it.
//
// Every embedded upstream component logs through klog's process-wide
// functions, so a line cannot carry its component in a logger value. Writer
// instead looks at the goroutine's stack when klog hands it a line: the
// innermost frame that belongs to a component (kube-apiserver,
// kube-controller-manager, kube-scheduler, etcd, pocketkube's own packages)
// names it. The caller says which packages make up each component (Component),
// from symbols of those packages (PackageOf, ModuleOf), so that the compiler
// checks the package paths. Lines written from shared libraries on goroutines
// of their own (client-go reflectors, say) are tagged with that library.
//
// Caveats: Writer must be called on the goroutine that logs, as klog does when
// it writes synchronously; it is not meant for buffered or async output.
package logs

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"log"
	"path"
	"reflect"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"

	"github.com/go-logr/logr"
	"github.com/go-logr/stdr"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	componentbaselogs "k8s.io/component-base/logs"
	"k8s.io/klog/v2"
)

// Packages is a package and the packages below it. It is derived from a
// symbol of the package (PackageOf, ModuleOf), never written as a string, so
// that a package upstream renames or moves fails to compile here instead of
// silently losing its tag.
type Packages struct {
	path string // an import path
}

// PackageOf returns the package that declares fn, a function value, and the
// packages below it.
func PackageOf(fn any) Packages {
	return Packages{path: funcPackage(runtime.FuncForPC(funcPC(fn)).Name())}
}

// ModuleOf returns every package of the module that holds fn's package. The
// go command compiles a module from the module cache with source paths that
// end in module@version/dir/file.go; dir is fn's package below the module.
// The main module's path comes from the binary's build information. ModuleOf
// falls back to fn's package alone.
func ModuleOf(fn any) Packages {
	pc := funcPC(fn)
	f := runtime.FuncForPC(pc)
	pkg := funcPackage(f.Name())
	file, _ := f.FileLine(pc)
	if at := strings.LastIndex(file, "@v"); at >= 0 {
		if i := strings.IndexByte(file[at:], '/'); i >= 0 {
			dir := path.Dir(file[at+i+1:])
			if dir == "." {
				return Packages{path: pkg}
			}
			if mod, ok := strings.CutSuffix(pkg, "/"+dir); ok {
				return Packages{path: mod}
			}
		}
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Path != "" && (Packages{path: bi.Main.Path}).has(pkg) {
		return Packages{path: bi.Main.Path}
	}
	return Packages{path: pkg}
}

// Parent returns the directory above p, for a tree such as
// k8s.io/kubernetes/pkg/registry that has no package with a symbol of its own.
func (p Packages) Parent() Packages {
	return Packages{path: path.Dir(p.path)}
}

// String returns p's import path.
func (p Packages) String() string { return p.path }

// has reports whether the package pkg is p or below it.
func (p Packages) has(pkg string) bool {
	return pkg == p.path || strings.HasPrefix(pkg, p.path+"/")
}

// holds reports whether the function named fn, as runtime.Frame.Function
// names it, is in p. Function names escape the dots in a package path's
// last element ("gopkg.in/yaml%2ev3.Unmarshal").
func (p Packages) holds(fn string) bool {
	if strings.HasPrefix(fn, p.path+"/") {
		return true
	}
	dir, last := path.Split(p.path)
	return strings.HasPrefix(fn, dir+strings.ReplaceAll(last, ".", "%2e")+".")
}

func funcPC(fn any) uintptr {
	v := reflect.ValueOf(fn)
	if v.Kind() != reflect.Func || v.IsNil() {
		panic(fmt.Sprintf("logs: %T is not a function", fn))
	}
	return v.Pointer()
}

// funcPackage returns the import path of the package of the function named
// fn: "k8s.io/klog/v2.(*Verbose).Info" → "k8s.io/klog/v2".
func funcPackage(fn string) string {
	if i := strings.IndexByte(fn, '['); i >= 0 {
		fn = fn[:i] // type parameters may hold slashes and dots
	}
	dir, last := path.Split(fn)
	if i := strings.IndexByte(last, '.'); i >= 0 {
		last = last[:i]
	}
	return dir + strings.ReplaceAll(last, "%2e", ".")
}

// A Component is a tag and the packages whose log lines carry it.
type Component struct {
	Tag      string
	Packages []Packages
}

// loggingPackages are the frames of the logging machinery itself.
var loggingPackages = []Packages{
	PackageOf(Verbosity), // this package; Tag would be an initialization cycle
	ModuleOf(klog.Info),
	PackageOf(componentbaselogs.InitLogs),
	ModuleOf(logr.Discard),
	ModuleOf(stdr.New),
	ModuleOf(zap.New),
	PackageOf(log.Print),
	PackageOf(runtime.Callers),
}

// Tag returns the component for a stack of program counters, innermost
// first, as runtime.Callers returns it: the tag of the innermost frame that
// one of components holds (the one with the longest package path if several
// do), else the library of the innermost frame outside the logging machinery.
func Tag(components []Component, pcs []uintptr) string {
	frames := runtime.CallersFrames(pcs)
	fallback := ""
	for {
		f, more := frames.Next()
		fn := f.Function
		if fn != "" && !inAny(fn, loggingPackages) {
			if tag := componentOf(components, fn); tag != "" {
				return tag
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

// componentOf returns the tag of the component that holds the function fn,
// the one with the longest package path if several do, or "".
func componentOf(components []Component, fn string) string {
	tag, longest := "", -1
	for _, c := range components {
		for _, p := range c.Packages {
			if len(p.path) > longest && p.holds(fn) {
				tag, longest = c.Tag, len(p.path)
			}
		}
	}
	return tag
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

func inAny(fn string, packages []Packages) bool {
	for _, p := range packages {
		if p.holds(fn) {
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

// NewWriter returns a Writer that tags lines by the caller's stack (Tag).
func NewWriter(out io.Writer, components []Component) *Writer {
	return &Writer{out: out, tag: func() string { return callerTag(components) }}
}

// NewTaggedWriter returns a Writer that gives every line the same tag.
func NewTaggedWriter(out io.Writer, tag string) *Writer {
	return &Writer{out: out, tag: func() string { return tag }}
}

func callerTag(components []Component) string {
	pcs := make([]uintptr, 64)
	n := runtime.Callers(4, pcs)
	return Tag(components, pcs[:n])
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
// components tag the lines (Tag).
func SetupKlog(klogFlags *flag.FlagSet, out io.Writer, components []Component) error {
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
	w := NewWriter(out, components)
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
