package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/pocketkube/pocketkube/test/framework"
)

// runSuite starts a cluster in a network namespace of its own, loads the
// images, runs the suite in that namespace with ginkgo and writes the
// summary. A suite with failed specs is not an error: the summary says
// which; an error is a run that could not be made or read.
func (o *options) runSuite(ctx context.Context, t tools, archive string) error {
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return err
	}
	dataDir, err := os.MkdirTemp("/var/tmp", "pk-conformance-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dataDir)
	fmt.Fprintf(os.Stderr, "conformance: starting pocketkube up in a network namespace, data dir %s\n", dataDir)
	cfg := framework.ClusterConfig{Binary: o.pocketkube, DataDir: dataDir, NetNS: true, Timeout: 3 * time.Minute}
	if o.nodes > 1 {
		seg, err := framework.NewSegment()
		if err != nil {
			return err
		}
		defer seg.Remove()
		cfg.Segment = seg
	}
	c, err := framework.StartCluster(cfg)
	if err != nil {
		return err
	}
	defer func() {
		if err := c.Cleanup(); err != nil {
			fmt.Fprintln(os.Stderr, "conformance: cleanup:", err)
		}
		os.WriteFile(filepath.Join(o.out, "pocketkube.log"), []byte(c.Output()), 0o644)
	}()
	if _, err := framework.Run(ctx, nil, o.pocketkube, "images", "load", "--data-dir", dataDir, "-i", archive); err != nil {
		return err
	}
	for i := 1; i < o.nodes; i++ {
		stop, err := o.joinNode(ctx, c, cfg.Segment, fmt.Sprintf("agent-%d", i), archive)
		if err != nil {
			return err
		}
		defer stop()
	}

	// Reports of an earlier run must not be read as this one's.
	for _, f := range []string{"junit.xml", "report.json", "summary.txt"} {
		os.Remove(filepath.Join(o.out, f))
	}
	log, err := os.Create(filepath.Join(o.out, "ginkgo.log"))
	if err != nil {
		return err
	}
	defer log.Close()
	// nsenter enters the cluster's network namespace only: the suite
	// reaches the API server, node and pod addresses as on the node.
	args := []string{"--net=" + c.NetNS.Path(), "--", t.ginkgo,
		"--procs=" + strconv.Itoa(o.procs), "--focus=" + o.focus, "--skip=" + o.skip,
		"--timeout=" + o.timeout.String(), "--no-color", "--silence-skips",
		"--output-dir=" + o.out, "--junit-report=junit.xml", "--json-report=report.json",
		t.e2e, "--",
		"--kubeconfig=" + c.Kubeconfig, "--provider=skeleton", "--kubectl-path=" + t.kubectl,
		"--disable-log-dump", "--e2e-output-dir=" + o.out}
	cmd := exec.CommandContext(ctx, "nsenter", args...)
	cmd.Stdout = io.MultiWriter(os.Stdout, log)
	cmd.Stderr = cmd.Stdout
	fmt.Fprintf(os.Stderr, "conformance: ginkgo --procs=%d --focus=%q --skip=%q\n", o.procs, o.focus, o.skip)
	start := time.Now()
	runErr := cmd.Run()
	wall := time.Since(start)
	usage := readUsage(c.Pid())
	var exit *exec.ExitError
	if runErr != nil && !errors.As(runErr, &exit) {
		return fmt.Errorf("run ginkgo: %w", runErr)
	}

	res, err := readJUnit(filepath.Join(o.out, "junit.xml"))
	if err != nil {
		return fmt.Errorf("ginkgo exited with %v and left no report: %w", runErr, err)
	}
	version, _ := framework.Run(ctx, nil, o.pocketkube, "version")
	s := summary{
		Date: start.UTC(), Pocketkube: strings.TrimSpace(version), Suite: t.version,
		Focus: o.focus, Skip: o.skip, Procs: o.procs, Wall: wall, Usage: usage, Result: res,
	}
	text := s.String()
	fmt.Print(text)
	if err := os.WriteFile(filepath.Join(o.out, "summary.txt"), []byte(text), 0o644); err != nil {
		return err
	}
	if o.strict {
		return res.strictErr()
	}
	return nil
}

// processUsage is what `pocketkube up` used during the run.
type processUsage struct {
	PeakRSSKiB int64         // VmHWM
	CPU        time.Duration // user and system time
}

// readUsage reads the process's peak RSS and CPU time from /proc; zero
// values when it is gone.
func readUsage(pid int) processUsage {
	var u processUsage
	status, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, line := range strings.Split(string(status), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
			u.PeakRSSKiB, _ = strconv.ParseInt(f[1], 10, 64)
		}
	}
	stat, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	// The fields after the command name, which is in parentheses:
	// utime and stime are the 12th and 13th of them, in clock ticks
	// (100 per second on Linux).
	if i := strings.LastIndexByte(string(stat), ')'); i > 0 {
		f := strings.Fields(string(stat)[i+1:])
		if len(f) > 13 {
			ut, _ := strconv.ParseInt(f[11], 10, 64)
			st, _ := strconv.ParseInt(f[12], 10, 64)
			u.CPU = time.Duration(ut+st) * 10 * time.Millisecond
		}
	}
	return u
}

// joinNode joins a `pocketkube agent` named name to c, in a network
// namespace of its own attached to seg, with the suite's images loaded
// into its store, and waits until its Node is Ready. stop stops the agent
// and removes its namespace and data dir.
func (o *options) joinNode(ctx context.Context, c *framework.Cluster, seg *framework.Segment, name, archive string) (stop func(), err error) {
	token, err := os.ReadFile(filepath.Join(c.DataDir, "node-token"))
	if err != nil {
		return nil, err
	}
	ns, err := framework.NewNetNS()
	if err != nil {
		return nil, err
	}
	dataDir, err := os.MkdirTemp("/var/tmp", "pk-conformance-agent-")
	if err != nil {
		ns.Remove("")
		return nil, err
	}
	ip, err := seg.Attach(ns)
	if err != nil {
		ns.Remove(dataDir)
		return nil, err
	}
	if _, err := framework.Run(ctx, nil, o.pocketkube, "images", "load", "--data-dir", dataDir, "-i", archive); err != nil {
		ns.Remove(dataDir)
		return nil, err
	}
	args := append([]string{"agent", "--server", c.Server, "--data-dir", dataDir, "--node-name", name,
		"--node-ip", ip, "--cgroup-root", ns.CgroupRoot}, strings.Fields(string(token))...)
	fmt.Fprintf(os.Stderr, "conformance: joining node %s (%s)\n", name, ip)
	p, err := framework.StartIn(ns, o.pocketkube, args...)
	if err != nil {
		ns.Remove(dataDir)
		return nil, err
	}
	stop = func() {
		if err := p.Stop(30 * time.Second); err != nil {
			fmt.Fprintf(os.Stderr, "conformance: stop node %s: %v\n", name, err)
		}
		os.WriteFile(filepath.Join(o.out, "pocketkube-"+name+".log"), []byte(p.Output()), 0o644)
		if err := ns.Remove(dataDir); err != nil {
			// Something was left mounted (a hostPath bind mount, maybe):
			// keep the data dir rather than remove through a mount.
			fmt.Fprintf(os.Stderr, "conformance: clean up node %s (data dir %s kept): %v\n", name, dataDir, err)
			return
		}
		// Each agent's store holds the suite's images (~550 MB): a data
		// dir left behind per run fills /var/tmp, and the next run's
		// image GC then removes the images the specs need.
		if err := os.RemoveAll(dataDir); err != nil {
			fmt.Fprintf(os.Stderr, "conformance: remove data dir of node %s: %v\n", name, err)
		}
	}
	kubectl := func(args ...string) (string, error) {
		return c.Kubectl(ctx, framework.Newest(), args...)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		out, err := kubectl("wait", "--for=condition=Ready", "node/"+name, "--timeout=10s")
		if err == nil {
			return stop, nil
		}
		if time.Now().After(deadline) {
			stop()
			return nil, fmt.Errorf("node %s not Ready: %v: %s\n%s", name, err, out, framework.Tail(p.Output(), 40))
		}
		time.Sleep(time.Second)
	}
}
