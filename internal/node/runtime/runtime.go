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
	"strconv"
	"strings"
	"sync"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
	"k8s.io/klog/v2"

	"github.com/pocketkube/pocketkube/internal/atomicfile"
)

// Config configures a Runtime. StateDir is required; zero values of the other
// fields mean their defaults.
type Config struct {
	// StateDir holds bundles, overlay upper/work dirs, runc's --root
	// (StateDir/runc), exit files and pod namespaces. It must be on a
	// filesystem that can be an overlayfs upperdir (not overlayfs itself).
	StateDir string
	// RuncPath defaults to the runc beside the running executable (the
	// one `make build` builds into bin/), else exec.LookPath("runc").
	RuncPath string
	// OCIRuntime is the OCI runtime that creates containers: Runc (the
	// default, "") or Crun. Containers stay with the runtime that made
	// them, so either may be chosen on a StateDir that has containers of
	// the other. With Crun, a container crun cannot run as runc would
	// (see crunRefuses) is created by runc, and runc is needed only then:
	// New fails without crun, not without runc.
	OCIRuntime string
	// CrunPath defaults to exec.LookPath("crun").
	CrunPath string
	// CgroupRoot is the top of the pod cgroups (default "/kubepods"), the
	// cgroup kubelet calls the node allocatable cgroup. Runtimes of two
	// nodes on one machine need their own: the QoS-level cgroups under it
	// are shared by the pods.
	CgroupRoot string
	// PodPidsLimit is the pids.max of every pod cgroup, kubelet's
	// podPidsLimit (--pod-max-pids), applied as kubelet's pod container
	// manager does unless PodConfig.Resources sets a PidsLimit: positive
	// values limit the processes and threads of a pod's containers
	// together; zero or negative sets none ("max"), kubelet's -1.
	PodPidsLimit int64
	// ShimPath and ShimArgs start the shim: ShimPath ShimArgs... --bundle DIR.
	// Default: the shim binary embedded by `make build`, extracted to
	// StateDir/bin/pocketkube-shim-<sha256 prefix>, with no ShimArgs; when
	// none is embedded, os.Executable() with ["runtime-shim"]. Tests re-exec
	// their own binary.
	ShimPath string
	ShimArgs []string
	// OnExit is called, from a goroutine, with the ID of each container
	// whose init process exited, also for containers created by an earlier
	// Runtime on the same StateDir. It must not block for long.
	OnExit func(containerID string)
}

// Runtime runs pods and containers with runc. Its state lives on disk, so
// several Runtimes (one after the other) may use the same StateDir.
type Runtime struct {
	cfg     Config
	cgroups *cgroupFS
	// runcRT and crun are the two OCI runtimes, each with its root under
	// StateDir (runc/, crun/); a path is "" when that binary was not
	// needed and not found.
	runcRT, crun ociRuntime
	caps         []string // bounding set of this process: "all capabilities"
	// minOOMScoreAdj is the lowest oom_score_adj containers get: without
	// CAP_SYS_RESOURCE no process may go below its parent's score, so
	// containers then get at least this process's own (containerd's
	// restrict_oom_score_adj, as in kind and rootless nodes); -1000
	// otherwise.
	minOOMScoreAdj int
	// pauseBin is the static shim binary that SharePID pods' pause
	// containers run; "" when none is embedded.
	pauseBin string

	mu    sync.Mutex // serialises pod setup and teardown
	metas sync.Map   // container ID → *containerMeta, read once
	// hostDevices lists the devices privileged containers get (tests
	// replace it: the host's /dev is not a golden file's business).
	hostDevices func() ([]specs.LinuxDevice, error)
	watch       *os.File
	closeOne    sync.Once
	done        chan struct{}
	// standby is the shim started ahead for the next container.
	standby standbys
}

// New checks cfg, fills defaults, creates the state layout and starts
// watching for container exits until ctx is done or Close is called.
func New(ctx context.Context, cfg Config) (*Runtime, error) {
	if cfg.StateDir == "" {
		return nil, errors.New("create runtime: StateDir is required")
	}
	switch cfg.OCIRuntime {
	case "":
		cfg.OCIRuntime = Runc
	case Runc, Crun:
	default:
		return nil, fmt.Errorf("create runtime: unknown OCI runtime %q (want %s or %s)", cfg.OCIRuntime, Runc, Crun)
	}
	if cfg.OCIRuntime == Crun && cfg.CrunPath == "" {
		p, err := findCrun()
		if err != nil {
			return nil, err
		}
		cfg.CrunPath = p
		klog.FromContext(ctx).Info("Using crun", "path", p)
	}
	if cfg.RuncPath == "" {
		exe, _ := os.Executable()
		p, err := findRunc(exe)
		if err != nil && cfg.OCIRuntime == Runc {
			return nil, err
		}
		cfg.RuncPath = p
		if err == nil {
			klog.FromContext(ctx).Info("Using runc", "path", p)
		}
	}
	if cfg.CgroupRoot == "" {
		cfg.CgroupRoot = defaultCgroupTop
	}
	abs, err := filepath.Abs(cfg.StateDir)
	if err != nil {
		return nil, fmt.Errorf("resolve state dir %s: %w", cfg.StateDir, err)
	}
	cfg.StateDir = abs
	for _, d := range []string{"runc", "crun", "pods", "containers", "exits"} {
		if err := os.MkdirAll(filepath.Join(cfg.StateDir, d), 0o711); err != nil {
			return nil, fmt.Errorf("create state dir: %w", err)
		}
	}
	if cfg.ShimPath == "" {
		if err := defaultShim(ctx, &cfg); err != nil {
			return nil, err
		}
	}
	cg, err := detectCgroups()
	if err != nil {
		return nil, err
	}
	if err := cg.createQOSCgroups(cfg.CgroupRoot); err != nil {
		return nil, err
	}
	caps, err := CurrentCaps()
	if err != nil {
		return nil, err
	}
	minOOM, err := minOOMScoreAdj(caps)
	if err != nil {
		return nil, err
	}
	r := &Runtime{cfg: cfg, cgroups: cg, caps: caps, minOOMScoreAdj: minOOM, done: make(chan struct{}), hostDevices: hostDevices,
		runcRT: ociRuntime{name: Runc, path: cfg.RuncPath, root: filepath.Join(cfg.StateDir, "runc")},
		crun:   ociRuntime{name: Crun, path: cfg.CrunPath, root: filepath.Join(cfg.StateDir, "crun"), hideMount: hideCgroup2(cg)},
	}
	if cfg.OCIRuntime == Crun && r.crun.path != "" && r.crun.hideMount != "" {
		klog.FromContext(ctx).Info("Running crun without the hybrid layout's cgroup2 mount, which it refuses", "mount", r.crun.hideMount)
	}
	if r.crun.path == "" {
		// Containers crun made on this StateDir before need it.
		r.crun.path, _ = exec.LookPath(Crun)
	}
	if bin := embeddedShim(); len(bin) > 0 {
		// The same file as the default shim's (installShim keeps it).
		if r.pauseBin, err = installShim(filepath.Join(cfg.StateDir, "bin"), bin); err != nil {
			return nil, err
		}
	}
	if err := r.startWatch(ctx); err != nil {
		return nil, err
	}
	go r.watchLostShims(ctx)
	go r.refillStandby(ctx)
	return r, nil
}

// findRunc returns the runc beside exe (the running executable), when
// there is an executable file of that name, else $PATH's. `make build`
// puts a runc built from its Go module (hack/runc: newer than Debian 12's
// 1.1.5, which copies itself into a memfd on every `runc init`) beside
// bin/pocketkube.
func findRunc(exe string) (string, error) {
	if exe != "" {
		p := filepath.Join(filepath.Dir(exe), "runc")
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0 {
			return p, nil
		}
	}
	p, err := exec.LookPath("runc")
	if err != nil {
		return "", fmt.Errorf("find runc: %w", err)
	}
	return p, nil
}

// Close stops watching for exits and lets the shim that waits for the
// next container go. Containers keep running.
func (r *Runtime) Close() error {
	var err error
	r.closeOne.Do(func() {
		close(r.done)
		r.closeStandby()
		err = r.watch.Close()
	})
	return err
}

// defaultShim sets cfg.ShimPath (and ShimArgs when nil) to the embedded shim
// binary, extracted under StateDir/bin, or else to this binary's hidden
// `runtime-shim` command.
func defaultShim(ctx context.Context, cfg *Config) error {
	if bin := embeddedShim(); len(bin) > 0 {
		p, err := installShim(filepath.Join(cfg.StateDir, "bin"), bin)
		if err != nil {
			return err
		}
		cfg.ShimPath = p
		if cfg.ShimArgs == nil {
			cfg.ShimArgs = []string{}
		}
		return nil
	}
	p, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find own executable for the shim: %w", err)
	}
	klog.FromContext(ctx).V(1).Info("No shim binary embedded (built without make build), using the runtime-shim command of this binary", "path", p)
	cfg.ShimPath = p
	if cfg.ShimArgs == nil {
		cfg.ShimArgs = []string{"runtime-shim"}
	}
	return nil
}

func (r *Runtime) allCaps() []string {
	if r.caps == nil {
		return knownCaps
	}
	return r.caps
}

func (r *Runtime) runcRoot() string         { return filepath.Join(r.cfg.StateDir, "runc") }
func (r *Runtime) podDir(uid string) string { return filepath.Join(r.cfg.StateDir, "pods", uid) }
func (r *Runtime) containerDir(id string) string {
	return filepath.Join(r.cfg.StateDir, "containers", id)
}

// LayerDir returns the writable layer of container id: the upper directory
// of its overlay rootfs, which holds what the container wrote.
func (r *Runtime) LayerDir(id string) string {
	return filepath.Join(r.containerDir(filepath.Base(id)), "upper")
}

func (r *Runtime) exitFile(id string) string { return filepath.Join(r.cfg.StateDir, "exits", id) }

// startWatch calls OnExit for every exit file that appears. Exit files are
// written to a temporary name and renamed, so IN_MOVED_TO sees whole files.
func (r *Runtime) startWatch(ctx context.Context) error {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return fmt.Errorf("watch exits: %w", err)
	}
	dir := filepath.Join(r.cfg.StateDir, "exits")
	if _, err := unix.InotifyAddWatch(fd, dir, unix.IN_MOVED_TO); err != nil {
		unix.Close(fd)
		return fmt.Errorf("watch exits in %s: %w", dir, err)
	}
	r.watch = os.NewFile(uintptr(fd), "inotify")
	logger := klog.FromContext(ctx)
	go func() {
		select {
		case <-ctx.Done():
			_ = r.Close()
		case <-r.done:
		}
	}()
	go func() {
		buf := make([]byte, 64*1024)
		for {
			n, err := r.watch.Read(buf)
			if err != nil {
				return
			}
			for off := 0; off+unix.SizeofInotifyEvent <= n; {
				ev := (*unix.InotifyEvent)(unsafePointer(&buf[off]))
				nameBytes := buf[off+unix.SizeofInotifyEvent : off+unix.SizeofInotifyEvent+int(ev.Len)]
				off += unix.SizeofInotifyEvent + int(ev.Len)
				name := string(bytes.TrimRight(nameBytes, "\x00"))
				if name == "" || strings.HasPrefix(name, ".") {
					continue
				}
				logger.V(4).Info("Container exited", "containerID", name)
				if r.cfg.OnExit != nil {
					r.cfg.OnExit(name)
				}
			}
		}
	}()
	return nil
}

type runcState struct {
	Status string `json:"status"`
	Pid    int    `json:"pid"`
}

// runcStatus returns runc's view of a container, as `runc state` reports it
// ("" when runc has none), without running runc: a status check happens on
// every sync of every pod, and a runc process per running container was most
// of the agent's CPU with many pods. It reads what `runc state` reads —
// ROOT/<id>/state.json's init pid and start time — and decides as runc's
// libcontainer does (linuxContainer.runType): stopped when the pid is gone,
// reused (another start time), a zombie or dead; created while the exec fifo
// is there; running after that. Pocketkube never pauses containers.
//
// A container of crun has its ROOT/<id>/status instead (crunStatus),
// which crun reads and decides on the same way (libcrun_check_pid_valid,
// and the exec FIFO for "created").
func (r *Runtime) runcStatus(_ context.Context, id string) (runcState, error) {
	dir := filepath.Join(r.runcRoot(), id)
	b, err := os.ReadFile(filepath.Join(dir, "state.json"))
	if errors.Is(err, os.ErrNotExist) {
		return r.crunState(id)
	}
	if err != nil {
		return runcState{}, fmt.Errorf("read runc state of %s: %w", id, err)
	}
	var st struct {
		Pid   int    `json:"init_process_pid"`
		Start uint64 `json:"init_process_start"`
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return runcState{}, fmt.Errorf("parse runc state of %s: %w", id, err)
	}
	return initState(dir, st.Pid, st.Start), nil
}

// crunState is runcStatus of a container of crun.
func (r *Runtime) crunState(id string) (runcState, error) {
	pid, start, ok, err := crunStatus(r.crun.root, id)
	if err != nil || !ok {
		return runcState{}, err
	}
	return initState(filepath.Join(r.crun.root, id), pid, start), nil
}

// initState decides a container's status from its init's pid and start
// time and whether the exec FIFO is still in its state directory dir.
func initState(dir string, pid int, wantStart uint64) runcState {
	state, start, err := procStat(pid)
	if err != nil || start != wantStart || state == 'Z' || state == 'X' {
		return runcState{Status: "stopped"}
	}
	if _, err := os.Stat(filepath.Join(dir, execFifo)); err == nil {
		return runcState{Status: "created", Pid: pid}
	}
	return runcState{Status: "running", Pid: pid}
}

// procStat returns a process's state letter and start time (clock ticks
// after boot) from /proc/<pid>/stat, as runc's system.Stat does.
func procStat(pid int) (state byte, start uint64, err error) {
	if pid <= 0 {
		return 0, 0, fmt.Errorf("invalid pid %d", pid)
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	// "pid (comm) state ppid ...": comm may hold spaces and parentheses, so
	// the fields start after the last ')'. starttime is field 22, the 20th
	// after comm.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	fields := strings.Fields(string(b[i+1:]))
	if len(fields) < 20 {
		return 0, 0, fmt.Errorf("parse /proc/%d/stat: %d fields", pid, len(fields))
	}
	start, err = strconv.ParseUint(fields[19], 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("parse /proc/%d/stat: %w", pid, err)
	}
	return fields[0][0], start, nil
}

// Version returns the version of the OCI runtime that creates
// containers, for the node's containerRuntimeVersion runc://<version>:
// runc's ("1.1.5+ds1"), or crun's after "crun-" ("crun-1.8.1").
func (r *Runtime) Version(ctx context.Context) (string, error) {
	o := r.runcRT
	if r.cfg.OCIRuntime == Crun {
		o = r.crun
	}
	out, err := exec.CommandContext(ctx, o.path, "--version").Output()
	if err != nil {
		return "", fmt.Errorf("run %s --version: %w", o.name, err)
	}
	first, _, _ := strings.Cut(string(out), "\n")
	v, ok := strings.CutPrefix(first, o.name+" version ")
	if !ok {
		return "", fmt.Errorf("parse %s version %q", o.name, first)
	}
	if o.name == Crun {
		return "crun-" + strings.TrimSpace(v), nil
	}
	return strings.TrimSpace(v), nil
}

func writeJSONAtomic(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "\t")
	if err != nil {
		return err
	}
	return writeFileAtomic(path, b)
}

// writeFileAtomic writes the runtime's state files unsynced: they are written
// on every container start, and no container outlives a reboot. They are
// the owner's only: a bundle's config.json holds the container's env,
// secret values included.
func writeFileAtomic(path string, b []byte) error {
	return atomicfile.WriteUnsynced(path, b, 0o600)
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}
