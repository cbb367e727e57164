package runtime

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
	"k8s.io/klog/v2"
)

// The OCI runtimes a Runtime can create containers with (Config.OCIRuntime).
const (
	// Runc is runc (bin/runc, built by `make build`, or $PATH's).
	Runc = "runc"
	// Crun is crun (Debian's 1.8.1 or newer): a C program, one process
	// per create where runc runs two Go ones (`runc create` and the
	// `runc init` it re-executes), about a third of the CPU and half the
	// wall time per container start (docs/BENCHMARKS.md, "crun vs runc").
	Crun = "crun"
)

// crunSpecVersion is the ociVersion written for crun: crun 1.8.1 refuses
// any that does not contain "1.0" ("unknown version specified"), though it
// knows every field up to runtime-spec 1.1 (errnoRet, cgroup v2).
// crunRefuses keeps the newer fields away from it.
const crunSpecVersion = "1.0.2"

// hybridCgroup2 is where a hybrid cgroup v1 layout mounts cgroup2.
const hybridCgroup2 = "/sys/fs/cgroup/unified"

// ociRuntime is one OCI runtime binary with its state directory (--root).
// A container stays with the runtime that created it: its state is in
// that runtime's root, so a Runtime whose Config names another one still
// starts, execs into, stops and deletes it with its own (ociOf).
type ociRuntime struct {
	name, path, root string
	// hideMount is a mount point that `create` must not see: the cgroup2
	// mount of a hybrid layout whose cgroup2 has a controller, for crun
	// (see hideCgroup2).
	hideMount string
}

// command returns the runtime's command line with its root.
func (o ociRuntime) command(ctx context.Context, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, o.path, append([]string{"--root", o.root}, args...)...)
}

// run runs the runtime and returns its stdout; errors carry its stderr.
func (o ociRuntime) run(ctx context.Context, args ...string) ([]byte, error) {
	if o.path == "" {
		return nil, fmt.Errorf("%s %s: no %s binary found", o.name, args[0], o.name)
	}
	cmd := o.command(ctx, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), fmt.Errorf("%s %s: %w: %s", o.name, args[0], err, strings.TrimSpace(stderr.String()))
	}
	return stdout.Bytes(), nil
}

// runc runs the OCI runtime of container id (ociOf) with args.
func (r *Runtime) runc(ctx context.Context, id string, args ...string) ([]byte, error) {
	return r.ociOf(id).run(ctx, args...)
}

// ociOf returns the runtime that holds container id's state: crun when
// crun's root has it, else runc (also for an ID neither knows).
func (r *Runtime) ociOf(id string) ociRuntime {
	if _, err := os.Stat(filepath.Join(r.crun.root, id)); err == nil {
		return r.crun
	}
	return r.runcRT
}

// ociFor returns the runtime that creates a container of spec s: the
// configured one, unless crun cannot run s as runc would (crunRefuses),
// then runc. For crun it sets s.Version to one crun accepts.
func (r *Runtime) ociFor(ctx context.Context, s *specs.Spec) ociRuntime {
	if r.cfg.OCIRuntime != Crun {
		return r.runcRT
	}
	if why := crunRefuses(s, r.crun.hideMount != ""); why != "" {
		klog.FromContext(ctx).V(2).Info("Creating the container with runc", "reason", why)
		return r.runcRT
	}
	s.Version = crunSpecVersion
	return r.crun
}

// crunRefuses says why a container of spec s must be created by runc
// rather than crun ("" when crun can create it): a field crun 1.8.1 does
// not know (runtime-spec 1.2 and later), which it would drop without a
// word, or, when crun runs in a mount namespace of its own (hidden, see
// hideCgroup2), mounts that must propagate back to the host.
func crunRefuses(s *specs.Spec, hidden bool) string {
	if s.Process != nil && s.Process.ExecCPUAffinity != nil {
		return "process.execCPUAffinity is newer than crun 1.8.1"
	}
	if l := s.Linux; l != nil {
		switch {
		case len(l.NetDevices) > 0:
			return "linux.netDevices is newer than crun 1.8.1"
		case l.MemoryPolicy != nil:
			return "linux.memoryPolicy is newer than crun 1.8.1"
		case l.IntelRdt != nil:
			return "linux.intelRdt is not set by pocketkube"
		case hidden && l.RootfsPropagation == "rshared":
			return "a Bidirectional mount must propagate to the host, and crun runs in a mount namespace of its own here"
		}
	}
	for _, m := range s.Mounts {
		if len(m.UIDMappings) > 0 || len(m.GIDMappings) > 0 || slices.Contains(m.Options, "idmap") || slices.Contains(m.Options, "ridmap") {
			return "idmapped mounts are newer than crun 1.8.1"
		}
		if hidden && (slices.Contains(m.Options, "rshared") || slices.Contains(m.Options, "shared")) {
			return "a Bidirectional mount must propagate to the host, and crun runs in a mount namespace of its own here"
		}
	}
	return ""
}

// hideCgroup2 returns the mount that crun must not see on this host: the
// cgroup2 mount of a hybrid layout when its cgroup2 has a controller
// (here hugetlb, which no v1 hierarchy holds). crun refuses that layout
// ("cgroups in hybrid mode not supported, drop all controllers from
// cgroupv2", every version to 1.21), and takes a layout without that
// mount for cgroup v1, which runc's own handling of it amounts to: crun
// then runs in a mount namespace of its own, a slave of the host's,
// without it (shim.Config.HideMount). "" on v2, v1 without cgroup2, or a
// cgroup2 with no controller.
func hideCgroup2(c *cgroupFS) string {
	if c.v2 || c.mounts["unified"] != hybridCgroup2 {
		return ""
	}
	b, err := os.ReadFile(filepath.Join(hybridCgroup2, "cgroup.controllers"))
	if err != nil || len(bytes.TrimSpace(b)) == 0 {
		return ""
	}
	return hybridCgroup2
}

// crunNotFound is crun's error for a missing executable.
var crunNotFound = regexp.MustCompile("executable file `([^`]*)` not found in \\$PATH(: No such file or directory)?")

// runcWords rewrites crun's error for a missing executable in runc's
// words, which kubelet users know from containerd and which pocketkube
// showed before crun (`exec: "nope": executable file not found in $PATH`).
func runcWords(msg string) string {
	return crunNotFound.ReplaceAllString(msg, `exec: "$1": executable file not found in $$PATH`)
}

// findCrun returns $PATH's crun.
func findCrun() (string, error) {
	p, err := exec.LookPath(Crun)
	if err != nil {
		return "", fmt.Errorf("find crun: %w", err)
	}
	return p, nil
}

// crunStatus reads crun's ROOT/<id>/status (its pid and the process's
// start time), as `crun state` does; ok is false when there is none.
func crunStatus(root, id string) (pid int, start uint64, ok bool, err error) {
	b, err := os.ReadFile(filepath.Join(root, id, "status"))
	if errors.Is(err, os.ErrNotExist) {
		return 0, 0, false, nil
	}
	if err != nil {
		return 0, 0, false, fmt.Errorf("read crun status of %s: %w", id, err)
	}
	var st struct {
		Pid   int    `json:"pid"`
		Start uint64 `json:"process-start-time"`
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return 0, 0, false, fmt.Errorf("parse crun status of %s: %w", id, err)
	}
	return st.Pid, st.Start, true, nil
}

// startCrunCreated is `crun start` of a created container without the
// crun process: crun's init waits reading its exec FIFO, and `crun start`
// opens it for writing, removes it and writes one byte
// (libcrun_status_write_exec_fifo). The open does not block: with no
// reader left (the init died) it fails with ENXIO, where crun's would
// wait for ever. ok is false when there is no FIFO (not created, or
// started already): then crun itself says what is wrong.
func startCrunCreated(path string) (ok bool, err error) {
	f, err := os.OpenFile(path, os.O_WRONLY|unix.O_NONBLOCK, 0)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if errors.Is(err, unix.ENXIO) {
		return true, errors.New("container process is already dead")
	}
	if err != nil {
		return true, fmt.Errorf("open exec fifo: %w", err)
	}
	defer f.Close()
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return true, err
	}
	if _, err := f.Write([]byte{0}); err != nil {
		return true, fmt.Errorf("write exec fifo: %w", err)
	}
	return true, nil
}

// execProcessFile writes the process of an exec in container id for
// `crun exec --process`: the container's own process (user, groups,
// env, capabilities, no_new_privs, rlimits, working directory) with
// cmd as its argv, which is what `runc exec` without --process runs.
// crun exec without --process would run cmd as root, with no_new_privs
// set and the env only of its -e flags.
// It also returns the container's oom_score_adj, which crun exec does not
// give the process (see Exec).
func (r *Runtime) execProcessFile(id string, cmd []string, tty bool) (string, *int, error) {
	var s specs.Spec
	if err := readJSON(filepath.Join(r.containerDir(id), "config.json"), &s); err != nil {
		return "", nil, fmt.Errorf("read spec: %w", err)
	}
	if s.Process == nil {
		return "", nil, errors.New("read spec: no process")
	}
	p := *s.Process
	p.Args, p.Terminal, p.ConsoleSize = cmd, tty, nil
	b, err := json.Marshal(p)
	if err != nil {
		return "", nil, err
	}
	dir := filepath.Join(r.cfg.StateDir, "exec")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", nil, fmt.Errorf("create exec state dir: %w", err)
	}
	f, err := os.CreateTemp(dir, id+"-*.json")
	if err != nil {
		return "", nil, fmt.Errorf("create exec process file: %w", err)
	}
	defer f.Close()
	if _, err := f.Write(b); err != nil {
		os.Remove(f.Name())
		return "", nil, fmt.Errorf("write exec process file: %w", err)
	}
	return f.Name(), s.Process.OOMScoreAdj, nil
}
