package runtime

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	goruntime "runtime"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
	"k8s.io/klog/v2"
)

const defaultShmSize = 64 << 20

// podState is what RunPod records in StateDir/pods/<uid>/pod.json.
type podState struct {
	Config     PodConfig
	CgroupPath string // cgroupfs path of the pod cgroup
	IPCNS      string // "" = host
	UTSNS      string // "" = host
	Shm        string // host directory bind-mounted on /dev/shm
	// PIDNS is the pause process's PID namespace (/proc/<pid>/ns/pid)
	// for a SharePID pod, found again for each container: a pause that
	// died is replaced, with a new PID.
	PIDNS string `json:"-"`
}

func (r *Runtime) loadPod(uid string) (*podState, error) {
	var st podState
	if err := readJSON(filepath.Join(r.podDir(uid), "pod.json"), &st); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("load pod %s: %w", uid, ErrNotFound)
		}
		return nil, fmt.Errorf("load pod %s: %w", uid, err)
	}
	return &st, nil
}

// RunPod sets up the pod sandbox and is idempotent: the pod cgroup in
// kubelet's layout (Guaranteed /kubepods/pod<uid>, /kubepods/burstable/pod<uid>,
// /kubepods/besteffort/pod<uid>) with cfg.Resources applied (again on every
// call), an IPC namespace (unless HostIPC) and a UTS namespace with
// cfg.Hostname (unless host network) kept as bind mounts under
// StateDir/pods/<uid>/ns, and a /dev/shm tmpfs of cfg.ShmSize. The pod
// cgroup's pids.max is Config.PodPidsLimit unless cfg.Resources has one.
func (r *Runtime) RunPod(ctx context.Context, cfg PodConfig) error {
	if err := validID(cfg.UID); err != nil {
		return fmt.Errorf("run pod: UID: %w", err)
	}
	if cfg.ShmSize == 0 {
		cfg.ShmSize = defaultShmSize
	}
	if cfg.Resources.PidsLimit == 0 {
		// Without a limit, "max": a limit an earlier run set goes.
		cfg.Resources.PidsLimit = -1
		if r.cfg.PodPidsLimit > 0 {
			cfg.Resources.PidsLimit = r.cfg.PodPidsLimit
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	dir := r.podDir(cfg.UID)
	st := &podState{Config: cfg, CgroupPath: podCgroup(r.cfg.CgroupRoot, cfg.QOSClass, cfg.UID)}
	if err := os.MkdirAll(filepath.Join(dir, "ns"), 0o711); err != nil {
		return fmt.Errorf("create pod dir %s: %w", dir, err)
	}
	// Record first, so that RemovePod finds what a half-done RunPod left.
	if err := writeJSONAtomic(filepath.Join(dir, "pod.json"), st); err != nil {
		return fmt.Errorf("record pod %s: %w", cfg.UID, err)
	}
	if err := r.cgroups.apply(st.CgroupPath, cfg.Resources); err != nil {
		return fmt.Errorf("set up cgroup of pod %s: %w", cfg.UID, err)
	}
	var ipc, uts string
	if !cfg.HostIPC {
		ipc = filepath.Join(dir, "ns", "ipc")
	}
	if cfg.NetNS != "" {
		uts = filepath.Join(dir, "ns", "uts")
	}
	if err := ensureNamespaces(ipc, uts, cfg.Hostname); err != nil {
		return fmt.Errorf("create namespaces of pod %s: %w", cfg.UID, err)
	}
	st.IPCNS, st.UTSNS = ipc, uts
	st.Shm = "/dev/shm"
	if !cfg.HostIPC {
		st.Shm = filepath.Join(dir, "shm")
		if err := ensureShm(st.Shm, cfg.ShmSize); err != nil {
			return fmt.Errorf("mount /dev/shm of pod %s: %w", cfg.UID, err)
		}
	}
	if err := writeJSONAtomic(filepath.Join(dir, "pod.json"), st); err != nil {
		return fmt.Errorf("record pod %s: %w", cfg.UID, err)
	}
	if cfg.SharePID && !cfg.HostPID {
		if _, err := r.ensurePause(ctx, st); err != nil {
			return fmt.Errorf("run pause process of pod %s: %w", cfg.UID, err)
		}
	}
	klog.FromContext(ctx).V(4).Info("Pod sandbox ready", "podUID", cfg.UID, "cgroup", st.CgroupPath)
	return nil
}

// PodReady reports whether the pod's sandbox is whole, as CRI's
// PodSandboxStatus reports it ready: its network, IPC and UTS namespaces
// still mounted and, for a SharePID pod, its pause container running. A
// reboot, or a namespace removed behind pocketkube's back, leaves it not
// ready: kubelet then kills the pod's containers and makes a new sandbox
// (RunPod after the network's Setup). ErrNotFound for a pod that RunPod
// never set up or RemovePod removed.
func (r *Runtime) PodReady(ctx context.Context, uid string) (bool, error) {
	if err := validID(uid); err != nil {
		return false, fmt.Errorf("status of pod: %w", err)
	}
	st, err := r.loadPod(uid)
	if err != nil {
		return false, err
	}
	for _, ns := range []string{st.Config.NetNS, st.IPCNS, st.UTSNS} {
		if ns != "" && !isNSMount(ns) {
			return false, nil
		}
	}
	if st.Config.SharePID && !st.Config.HostPID {
		if s, err := r.runcStatus(ctx, pauseID(uid)); err != nil || s.Status != "running" {
			return false, nil
		}
	}
	return true, nil
}

func ensureShm(dir string, size int64) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if m, _ := mountinfo.Mounted(dir); m {
		return nil
	}
	return unix.Mount("shm", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC,
		fmt.Sprintf("mode=1777,size=%d", size))
}

func isNSMount(path string) bool {
	var st unix.Statfs_t
	return unix.Statfs(path, &st) == nil && st.Type == unix.NSFS_MAGIC
}

// ensureNamespaces creates new IPC and UTS namespaces (for the non-empty
// paths not yet mounted) on a throw-away OS thread and bind-mounts them on
// the paths, so they outlive every process.
func ensureNamespaces(ipc, uts, hostname string) error {
	var flags int
	var targets = map[string]string{}
	if ipc != "" && !isNSMount(ipc) {
		flags |= unix.CLONE_NEWIPC
		targets["ipc"] = ipc
	}
	if uts != "" && !isNSMount(uts) {
		flags |= unix.CLONE_NEWUTS
		targets["uts"] = uts
	}
	if flags == 0 {
		return nil
	}
	for _, t := range targets {
		f, err := os.OpenFile(t, os.O_CREATE|os.O_RDONLY, 0o444)
		if err != nil {
			return err
		}
		f.Close()
	}
	errc := make(chan error, 1)
	go func() {
		// The thread is never unlocked: Go ends it when this goroutine
		// returns, so its namespaces never leak to other goroutines.
		lockThreadForever()
		if err := unix.Unshare(flags); err != nil {
			errc <- fmt.Errorf("unshare: %w", err)
			return
		}
		if flags&unix.CLONE_NEWUTS != 0 && hostname != "" {
			if err := unix.Sethostname([]byte(hostname)); err != nil {
				errc <- fmt.Errorf("set hostname %q: %w", hostname, err)
				return
			}
		}
		tid := unix.Gettid()
		for kind, t := range targets {
			src := fmt.Sprintf("/proc/self/task/%d/ns/%s", tid, kind)
			if err := unix.Mount(src, t, "", unix.MS_BIND, ""); err != nil {
				errc <- fmt.Errorf("bind-mount %s namespace on %s: %w", kind, t, err)
				return
			}
		}
		errc <- nil
	}()
	return <-errc
}

// RemovePod stops and removes the pod's remaining containers, unmounts its
// namespaces and /dev/shm and removes its cgroup and state. It is
// idempotent and works on what a crash left half-done.
func (r *Runtime) RemovePod(ctx context.Context, uid string) error {
	if err := validID(uid); err != nil {
		return fmt.Errorf("remove pod: %w", err)
	}
	cs, err := r.ListContainers(ctx, uid)
	if err != nil {
		return fmt.Errorf("remove pod %s: %w", uid, err)
	}
	var errs []error
	for _, c := range cs {
		if err := r.RemoveContainer(ctx, c.ID); err != nil {
			errs = append(errs, err)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	dir := r.podDir(uid)
	st, err := r.loadPod(uid)
	var paths []string
	if err == nil {
		paths = []string{st.CgroupPath}
	} else {
		// Unknown QoS class: try every place kubelet's layout allows.
		for _, q := range []string{qosGuaranteed, qosBurstable, qosBestEffort} {
			paths = append(paths, podCgroup(r.cfg.CgroupRoot, q, uid))
		}
	}
	if err := r.removePause(ctx, uid); err != nil {
		errs = append(errs, err)
	}
	for _, m := range []string{filepath.Join(dir, "ns", "ipc"), filepath.Join(dir, "ns", "uts"), filepath.Join(dir, "shm")} {
		if err := unmountAll(m); err != nil {
			errs = append(errs, err)
		}
	}
	for _, p := range paths {
		if err := r.cgroups.remove(p); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("remove pod %s: %w", uid, err)
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove pod %s: %w", uid, err)
	}
	klog.FromContext(ctx).V(4).Info("Pod sandbox removed", "podUID", uid)
	return nil
}

// unmountAll lazily unmounts every mount stacked on path.
func unmountAll(path string) error {
	for i := 0; i < 16; i++ {
		err := unix.Unmount(path, unix.MNT_DETACH)
		if err == nil {
			continue
		}
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
			return nil
		}
		return fmt.Errorf("unmount %s: %w", path, err)
	}
	return nil
}

// ListPods returns the UIDs of pods with state on disk, including pods
// half-removed by a crash, so the agent can clean up after kill -9.
func (r *Runtime) ListPods(ctx context.Context) ([]string, error) {
	entries, err := os.ReadDir(filepath.Join(r.cfg.StateDir, "pods"))
	if err != nil {
		return nil, fmt.Errorf("list pods: %w", err)
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

// lockThreadForever wires the goroutine to its OS thread for good: Go ends
// the thread when the goroutine returns, so namespace changes die with it.
func lockThreadForever() { goruntime.LockOSThread() }
