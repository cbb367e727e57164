package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// tools are what the build step leaves in dir, the cache of one k8s
// version: every path is in dir.
type tools struct {
	dir      string
	version  string // k8s.io/kubernetes's, v1.37.2
	moduleK8 string // the k8s.io/kubernetes module's directory in the module cache

	e2e, ginkgo, kubectl, agnhost, nnp, pause string
	sampleAPIServer, etcd                     string // the aggregator spec's images
	busybox                                   string // debian.sh
	nginxRoot                                 string // debian.sh: nginx-core and nginx-common unpacked
}

// goBuild is one program built from the module: out is built by args
// (after `go`) unless it exists.
type goBuild struct {
	out    *string
	static bool
	args   []string
}

// buildTools builds what is missing in cache/<version>. It runs in the
// harness's module (the working directory must be test/conformance): go
// builds with its go.mod, at the versions it pins.
func buildTools(ctx context.Context, cache string) (tools, error) {
	version, err := goOutput(ctx, "list", "-m", "-f", "{{.Version}}", "k8s.io/kubernetes")
	if err != nil {
		return tools{}, err
	}
	moduleDir, err := goOutput(ctx, "list", "-m", "-f", "{{.Dir}}", "k8s.io/kubernetes")
	if err != nil {
		return tools{}, err
	}
	t := tools{dir: filepath.Join(cache, version), version: version, moduleK8: moduleDir}
	if err := os.MkdirAll(t.dir, 0o755); err != nil {
		return t, err
	}
	t.e2e, t.ginkgo, t.kubectl = filepath.Join(t.dir, "e2e.test"), filepath.Join(t.dir, "ginkgo"), filepath.Join(t.dir, "kubectl")
	t.agnhost, t.nnp, t.pause = filepath.Join(t.dir, "agnhost"), filepath.Join(t.dir, "nnp"), filepath.Join(t.dir, "pause")
	t.busybox, t.nginxRoot = filepath.Join(t.dir, "busybox"), filepath.Join(t.dir, "nginx-root")
	t.sampleAPIServer, t.etcd = filepath.Join(t.dir, "sample-apiserver"), filepath.Join(t.dir, "etcd")

	// The version strings `make build` gives pocketkube: kubectl and
	// e2e.test report them (kubectl version, the suite's log).
	major, minor, _ := strings.Cut(strings.TrimPrefix(version, "v"), ".")
	minor, _, _ = strings.Cut(minor, ".")
	var ldflags []string
	for _, pkg := range []string{"k8s.io/component-base/version", "k8s.io/client-go/pkg/version"} {
		ldflags = append(ldflags, "-X", pkg+".gitVersion="+version, "-X", pkg+".gitMajor="+major,
			"-X", pkg+".gitMinor="+minor, "-X", pkg+".gitTreeState=clean")
	}
	ld := "-ldflags=-s -w " + strings.Join(ldflags, " ")
	// The programs that go into images are static (CGO_ENABLED=0: the
	// images have no libc for them). The others build as the product
	// does, so that the packages they share with it (client-go, api,
	// apimachinery…) come from the build cache.
	builds := []goBuild{
		{&t.pause, true, []string{"build", "-ldflags=-s -w", "-o", t.pause, "./pause"}},
		{&t.agnhost, true, []string{"build", "-ldflags=-s -w", "-o", t.agnhost, "k8s.io/kubernetes/test/images/agnhost"}},
		{&t.nnp, true, []string{"build", "-ldflags=-s -w", "-o", t.nnp, "k8s.io/kubernetes/test/images/nonewprivs"}},
		// test/images/sample-apiserver's Dockerfile: the module's main
		// package at the version of the staging repositories.
		{&t.sampleAPIServer, true, []string{"build", ld, "-o", t.sampleAPIServer, "k8s.io/sample-apiserver"}},
		// registry.k8s.io/etcd: etcd's own main package, at the version
		// the product embeds.
		{&t.etcd, true, []string{"build", "-ldflags=-s -w", "-o", t.etcd, "go.etcd.io/etcd/server/v3"}},
		{&t.ginkgo, false, []string{"build", "-o", t.ginkgo, "github.com/onsi/ginkgo/v2/ginkgo"}},
		{&t.kubectl, false, []string{"build", ld, "-o", t.kubectl, "k8s.io/kubernetes/cmd/kubectl"}},
		// Without -vet=off, go test -c of this package exits 0 and
		// writes nothing.
		{&t.e2e, false, []string{"test", "-c", "-vet=off", ld, "-o", t.e2e, "k8s.io/kubernetes/test/e2e"}},
	}
	for _, b := range builds {
		if _, err := os.Stat(*b.out); err == nil {
			continue
		}
		fmt.Fprintf(os.Stderr, "conformance: building %s\n", filepath.Base(*b.out))
		cmd := exec.CommandContext(ctx, "nice", append([]string{"-n", "19", "go"}, b.args...)...)
		cmd.Env = os.Environ()
		if b.static {
			cmd.Env = append(cmd.Env, "CGO_ENABLED=0")
		}
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return t, fmt.Errorf("build %s: %w", filepath.Base(*b.out), err)
		}
		if _, err := os.Stat(*b.out); err != nil {
			return t, fmt.Errorf("build %s: go wrote no binary: %w", filepath.Base(*b.out), err)
		}
	}
	deb := exec.CommandContext(ctx, "bash", "debian.sh", t.dir)
	deb.Stdout, deb.Stderr = os.Stderr, os.Stderr
	if err := deb.Run(); err != nil {
		return t, fmt.Errorf("debian.sh: %w", err)
	}
	return t, nil
}

// goOutput runs go with args and returns its trimmed stdout.
func goOutput(ctx context.Context, args ...string) (string, error) {
	out, err := exec.CommandContext(ctx, "go", args...).Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		return "", fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, stderr)
	}
	return strings.TrimSpace(string(out)), nil
}
