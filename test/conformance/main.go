package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"
)

// options are the command's flags.
type options struct {
	pocketkube string        // the binary under test
	cache      string        // the build cache; builds go to cache/<k8s version>
	out        string        // where the run's reports and summary go
	focus      string        // ginkgo --focus
	skip       string        // ginkgo --skip
	procs      int           // ginkgo --procs
	timeout    time.Duration // ginkgo --timeout, the whole suite's
	buildOnly  bool          // stop after the build and the images
	strict     bool          // a failed spec, or no spec passed, fails the command
	nodes      int           // nodes of the cluster: `up`'s, then `pocketkube agent`s
}

func (o *options) addFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.pocketkube, "pocketkube", "../../bin/pocketkube", "The pocketkube binary to test.")
	fs.StringVar(&o.cache, "cache", "/var/cache/pocketkube/conformance", "Build cache: e2e.test, tools and images go to CACHE/<k8s version>/.")
	fs.StringVar(&o.out, "out", "../../bin/conformance", "Directory for junit.xml, report.json, ginkgo.log, the cluster's log and summary.txt.")
	fs.StringVar(&o.focus, "focus", `\[Conformance\]`, "Regular expression of the specs to run (ginkgo --focus).")
	fs.StringVar(&o.skip, "skip", `\[Serial\]|\[Disruptive\]|\[Slow\]`, "Regular expression of the specs not to run (ginkgo --skip).")
	fs.IntVar(&o.procs, "procs", 2, "Parallel ginkgo processes; above the core count slow specs hit the suite timeout.")
	fs.DurationVar(&o.timeout, "timeout", 2*time.Hour, "Time limit of the whole suite (ginkgo --timeout).")
	fs.BoolVar(&o.buildOnly, "build-only", false, "Build the suite and the images, and run nothing.")
	fs.IntVar(&o.nodes, "nodes", 1, "Nodes of the cluster: up's own, and nodes-1 `pocketkube agent`s joined to it, each in a network namespace of its own on one L2 segment with the server's.")
	fs.BoolVar(&o.strict, "strict", false, "Exit 1 when a spec failed or none passed (CI); without it the run reports and exits 0.")
}

func (o *options) validate() error {
	if o.procs < 1 {
		return errors.New("-procs must be at least 1")
	}
	if o.nodes < 1 || o.nodes > 8 {
		return errors.New("-nodes must be from 1 to 8")
	}
	if os.Geteuid() != 0 {
		return errors.New("run as root: pocketkube up and its images need it")
	}
	for _, p := range []*string{&o.pocketkube, &o.cache, &o.out} {
		abs, err := filepath.Abs(*p)
		if err != nil {
			return err
		}
		*p = abs
	}
	if _, err := os.Stat(o.pocketkube); err != nil && !o.buildOnly {
		return fmt.Errorf("-pocketkube: %w (make build writes bin/pocketkube)", err)
	}
	return nil
}

func main() {
	var o options
	o.addFlags(flag.CommandLine)
	flag.Parse()
	if err := o.validate(); err != nil {
		fmt.Fprintln(os.Stderr, "conformance:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := o.run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "conformance:", err)
		os.Exit(1)
	}
}

func (o *options) run(ctx context.Context) error {
	t, err := buildTools(ctx, o.cache)
	if err != nil {
		return err
	}
	archive := filepath.Join(t.dir, "images.tar")
	if err := writeImages(t, archive); err != nil {
		return err
	}
	if o.buildOnly {
		return nil
	}
	return o.runSuite(ctx, t, archive)
}
