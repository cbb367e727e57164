package runtime

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
	"k8s.io/klog/v2"

	"github.com/pocketkube/pocketkube/internal/node/runtime/shim"
)

const (
	defaultTerminationMessagePath = "/dev/termination-log"
	maxTerminationMessage         = 4096 // kubelet's maxMsgSize
)

// containerMeta is what CreateContainer records in StateDir/containers/<id>/meta.json.
type containerMeta struct {
	ID, PodUID, Name string
	Attempt          uint32
	Image, LogPath   string
	Labels           map[string]string
	CreatedAt        time.Time
	CgroupPath       string
	// Resources are the cgroup values last applied: at creation, then
	// by each UpdateContainerResources (CRI's ContainerStatus resources).
	Resources *Resources `json:",omitempty"`
}

func newID() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

// podDescription is kubelet's format.Pod: name_namespace(uid).
func podDescription(p PodConfig) string {
	return fmt.Sprintf("%s_%s(%s)", p.Name, p.Namespace, p.UID)
}

// buildSpec turns a container config into its OCI spec; rootfs is the host
// path of the container's root filesystem, termLog the host file mounted on
// the termination message path.
func (r *Runtime) buildSpec(pod *podState, cfg ContainerConfig, id, rootfs, termLog string) (*specs.Spec, error) {
	s := DefaultSpec(rootfs, pod.Shm)
	tmp := cfg.TerminationMessagePath
	if tmp == "" {
		tmp = defaultTerminationMessagePath
	}
	mounts := append([]Mount{{Source: termLog, Destination: tmp}}, cfg.Mounts...)
	var devices []specs.LinuxDevice
	if cfg.Privileged {
		var err error
		if devices, err = r.hostDevices(); err != nil {
			return nil, err
		}
	}
	opts := []SpecOpts{
		WithProcessArgs(cfg.Args...),
		WithEnv(cfg.Env),
		WithWorkingDir(cfg.WorkingDir),
		WithUser(cfg.User),
		WithTTY(cfg.TTY),
		WithNoNewPrivileges(cfg.NoNewPrivileges),
		WithRootfsReadonly(cfg.ReadOnlyRootfs),
		WithCapabilities(cfg.CapAdd, cfg.CapDrop, r.allCaps()),
		WithPrivileged(cfg.Privileged, r.allCaps(), devices),
		WithSeccomp(cfg.Seccomp, cfg.Privileged),
		WithMounts(mounts),
		WithResources(cfg.Resources),
		WithSysctls(pod.Config.Sysctls),
		WithOOMScoreAdj(r.restrictOOMScoreAdj(cfg.OOMScoreAdj)),
		WithCgroupsPath(filepath.Join(pod.CgroupPath, id)),
	}
	if pod.Config.NetNS != "" {
		opts = append(opts, WithNamespace(specs.NetworkNamespace, pod.Config.NetNS))
	}
	if pod.IPCNS != "" {
		opts = append(opts, WithNamespace(specs.IPCNamespace, pod.IPCNS))
	}
	if pod.UTSNS != "" {
		opts = append(opts, WithNamespace(specs.UTSNamespace, pod.UTSNS), WithHostname(pod.Config.Hostname))
	}
	if pod.Config.HostPID {
		opts = append(opts, WithoutNamespace(specs.PIDNamespace))
	} else if pod.PIDNS != "" {
		opts = append(opts, WithNamespace(specs.PIDNamespace, pod.PIDNS))
	}
	if r.cgroups.v2 {
		opts = append(opts, WithNamespace(specs.CgroupNamespace, ""))
	}
	if err := ApplyOpts(s, opts...); err != nil {
		return nil, err
	}
	return s, nil
}

// CreateContainer builds the container's bundle (config.json, an overlayfs
// rootfs over cfg.Rootfs, a termination message file), and runs `runc
// create` under a new shim. The pod must have been set up by RunPod. It
// returns runc's error text when runc fails (e.g. `exec: "nope": executable
// file not found in $PATH`), and leaves nothing behind on error.
func (r *Runtime) CreateContainer(ctx context.Context, cfg ContainerConfig) (id string, err error) {
	steps := newStepTimer(ctx)
	pod, err := r.loadPod(cfg.PodUID)
	if err != nil {
		return "", fmt.Errorf("create container %s: %w", cfg.Name, err)
	}
	if cfg.RunAsNonRoot && cfg.User.UID == 0 {
		return "", fmt.Errorf("container has runAsNonRoot and image will run as root (pod: %q, container: %s): %w",
			podDescription(pod.Config), cfg.Name, ErrRunAsRoot)
	}
	if cfg.Rootfs == "" {
		return "", fmt.Errorf("create container %s: Rootfs is required", cfg.Name)
	}
	if pod.Config.SharePID && !pod.Config.HostPID {
		r.mu.Lock()
		pod.PIDNS, err = r.ensurePause(ctx, pod)
		r.mu.Unlock()
		if err != nil {
			return "", fmt.Errorf("create container %s: pause process of pod %s: %w", cfg.Name, cfg.PodUID, err)
		}
	}
	if cfg.TargetContainerID != "" && !pod.Config.SharePID && !pod.Config.HostPID {
		target, err := r.ContainerStatus(ctx, cfg.TargetContainerID)
		if err != nil {
			return "", fmt.Errorf("create container %s: target container: %w", cfg.Name, err)
		}
		if target.State != StateRunning || target.Pid == 0 {
			return "", fmt.Errorf("create container %s: target container %s is not running", cfg.Name, target.Name)
		}
		// pod is this call's own copy, read from disk: the target's
		// namespace goes in this container's spec only.
		pod.PIDNS = fmt.Sprintf("/proc/%d/ns/pid", target.Pid)
	}
	newid, err := newID()
	if err != nil {
		return "", fmt.Errorf("create container %s: %w", cfg.Name, err)
	}
	// The named result is "" on error, so clean up by newid.
	id = newid
	dir := r.containerDir(newid)
	defer func() {
		if err != nil {
			if rerr := r.RemoveContainer(context.WithoutCancel(ctx), newid); rerr != nil {
				klog.FromContext(ctx).Error(rerr, "Cleaning up after a failed create", "containerID", newid)
			}
		}
	}()
	// The bundle is root's only, as containerd's (CVE-2021-41103):
	// config.json holds the env, secrets included, and upper/ what the
	// container wrote.
	if err := os.Mkdir(dir, 0o700); err != nil {
		return "", fmt.Errorf("create bundle of %s: %w", cfg.Name, err)
	}
	for _, d := range []string{"rootfs", "upper", "work"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return "", fmt.Errorf("create bundle of %s: %w", cfg.Name, err)
		}
	}
	meta := containerMeta{
		ID: id, PodUID: cfg.PodUID, Name: cfg.Name, Attempt: cfg.Attempt, Image: cfg.Image,
		LogPath: cfg.LogPath, Labels: cfg.Labels, CreatedAt: time.Now(),
		CgroupPath: filepath.Join(pod.CgroupPath, id),
		Resources:  new(cfg.Resources),
	}
	if err := writeJSONAtomic(filepath.Join(dir, "meta.json"), meta); err != nil {
		return "", fmt.Errorf("record container %s: %w", cfg.Name, err)
	}
	rootfs := filepath.Join(dir, "rootfs")
	data := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", cfg.Rootfs, filepath.Join(dir, "upper"), filepath.Join(dir, "work"))
	if err := unix.Mount("overlay", rootfs, "overlay", 0, data); err != nil {
		return "", fmt.Errorf("mount rootfs of %s: %w", cfg.Name, err)
	}
	termLog := filepath.Join(dir, "termination-log")
	if err := os.WriteFile(termLog, nil, 0o666); err != nil {
		return "", fmt.Errorf("create termination log of %s: %w", cfg.Name, err)
	}
	// As kubelet: the umask took bits off, and a container of any user
	// must be able to write its termination message.
	if err := os.Chmod(termLog, 0o666); err != nil {
		return "", fmt.Errorf("create termination log of %s: %w", cfg.Name, err)
	}
	steps.step("bundle")
	spec, err := r.buildSpec(pod, cfg, id, rootfs, termLog)
	if err != nil {
		// containerd's words, which kubelet shows as the container's
		// CreateContainerError (a Localhost seccomp profile that is
		// missing or not JSON, for one), less the container ID that
		// containerd quotes after "container": ours is new at each
		// attempt, and a message that changes with every retry would make
		// each one a status update that triggers the next.
		return "", fmt.Errorf("failed to generate container spec: failed to generate spec: %w", err)
	}
	oci := r.ociFor(ctx, spec)
	if err := writeJSONAtomic(filepath.Join(dir, "config.json"), spec); err != nil {
		return "", fmt.Errorf("write spec of %s: %w", cfg.Name, err)
	}
	if cfg.LogPath != "" {
		if err := os.MkdirAll(filepath.Dir(cfg.LogPath), 0o755); err != nil {
			return "", fmt.Errorf("create log dir of %s: %w", cfg.Name, err)
		}
	}
	sc := shim.Config{
		ID: id, Bundle: dir, Runc: oci.path, RuncRoot: oci.root, HideMount: oci.hideMount,
		LogPath: cfg.LogPath, ExitFile: r.exitFile(id), TTY: cfg.TTY, Stdin: cfg.Stdin, StdinOnce: cfg.StdinOnce,
		OOMFile: r.cgroups.oomFile(meta.CgroupPath),
	}
	if err := writeJSONAtomic(filepath.Join(dir, shim.ConfigFile), sc); err != nil {
		return "", fmt.Errorf("write shim config of %s: %w", cfg.Name, err)
	}
	steps.step("spec")
	if err := r.startShim(ctx, dir, steps); err != nil {
		return "", fmt.Errorf("create container %s: %w", cfg.Name, err)
	}
	klog.FromContext(ctx).V(4).Info("Created container", "podUID", cfg.PodUID, "container", cfg.Name, "containerID", id)
	return id, nil
}

// startShim gives bundle a shim, the waiting one (standby.go) or a new
// one, and waits for its verdict: "ok" once `runc create` succeeded, or
// runc's error text.
func (r *Runtime) startShim(ctx context.Context, bundle string, steps *stepTimer) error {
	var pr *os.File
	var pid int
	if s := r.takeStandby(bundle); s != nil {
		if report, ok := s.claim(bundle); ok {
			pr, pid = report, s.cmd.Process.Pid
		}
	}
	// The next creation's shim starts once this one's create is done.
	defer func() { go r.refillStandby(ctx) }()
	if pr == nil {
		var err error
		if pr, pid, err = r.newShim(bundle); err != nil {
			return err
		}
	}
	defer pr.Close()
	steps.step("shimExec")
	// Before the shim is reaped, its PID cannot name another process.
	if err := recordShim(bundle, pid); err != nil {
		// Only a death of this shim would go unnoticed.
		klog.FromContext(ctx).Error(err, "Recording the shim's PID", "bundle", bundle)
	}
	res := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(pr)
		res <- b
	}()
	var msg []byte
	select {
	case msg = <-res:
	case <-ctx.Done():
		return ctx.Err()
	}
	s := strings.TrimSpace(string(msg))
	if runcStart, runcEnd, ok := shim.ParseReady(s); ok {
		steps.until("shim", runcStart)
		steps.until("runc", runcEnd)
		steps.step("reply")
		return nil
	}
	if s == "" {
		b, _ := os.ReadFile(filepath.Join(bundle, shim.LogFile))
		s = "shim exited: " + strings.TrimSpace(string(b))
	}
	return errors.New(runcWords(s))
}

// newShim starts a shim for bundle and returns the read end of its report
// pipe and its PID.
func (r *Runtime) newShim(bundle string) (*os.File, int, error) {
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, 0, err
	}
	defer pw.Close()
	shimLog, err := os.OpenFile(filepath.Join(bundle, shim.LogFile), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		pr.Close()
		return nil, 0, err
	}
	defer shimLog.Close()
	cmd, err := startRetryBusy(func() *exec.Cmd {
		cmd := exec.Command(r.cfg.ShimPath, append(append([]string{}, r.cfg.ShimArgs...), "--bundle", bundle)...)
		cmd.Stdout, cmd.Stderr = shimLog, shimLog
		cmd.ExtraFiles = []*os.File{pw}
		// A session of its own: signals to pocketkube's process group
		// (Ctrl-C) and pocketkube's death do not reach the shim.
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		return cmd
	})
	if err != nil {
		pr.Close()
		return nil, 0, fmt.Errorf("start shim: %w", err)
	}
	go func() { _ = cmd.Wait() }() // reap the shim when it exits
	return pr, cmd.Process.Pid, nil
}

// StartContainer starts a created container's process, as `runc start`
// does but without a runc process (startCreated); runc itself for a
// container that is not in runc's created state, to say why not.
func (r *Runtime) StartContainer(ctx context.Context, id string) error {
	if _, err := r.loadMeta(id); err != nil {
		return fmt.Errorf("start container %s: %w", id, err)
	}
	started, err := r.startCreated(ctx, id)
	if !started {
		_, err = r.runc(ctx, id, "start", id)
	}
	if err != nil {
		return fmt.Errorf("start container %s: %w", id, err)
	}
	now := time.Now().UTC().Format(time.RFC3339Nano)
	if err := writeFileAtomic(filepath.Join(r.containerDir(id), "started"), []byte(now)); err != nil {
		return fmt.Errorf("record start of container %s: %w", id, err)
	}
	return nil
}

// validID rejects IDs that would name something outside the container's
// own directories (an empty ID would name all of them).
func validID(id string) error {
	if id == "" || id == "." || id == ".." || strings.ContainsAny(id, "/\\\x00") {
		return fmt.Errorf("invalid container ID %q: %w", id, ErrNotFound)
	}
	return nil
}

func (r *Runtime) loadMeta(id string) (*containerMeta, error) {
	if err := validID(id); err != nil {
		return nil, err
	}
	// meta.json is written by CreateContainer, and again only by
	// UpdateContainerResources, which replaces the cached copy too; it
	// goes with the container's directory: what was read once stays true
	// until RemoveContainer forgets it.
	if m, ok := r.metas.Load(id); ok {
		return m.(*containerMeta), nil
	}
	var m containerMeta
	if err := readJSON(filepath.Join(r.containerDir(id), "meta.json"), &m); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, ErrNotFound
		}
		return nil, err
	}
	r.metas.Store(id, &m)
	return &m, nil
}

// StopContainer sends SIGTERM to the container's init, SIGKILL after grace,
// and returns once the process is gone (at once when it is not running).
func (r *Runtime) StopContainer(ctx context.Context, id string, grace time.Duration) error {
	if _, err := r.loadMeta(id); err != nil {
		return fmt.Errorf("stop container %s: %w", id, err)
	}
	if r.gone(ctx, id) {
		return nil
	}
	if _, err := r.runc(ctx, id, "kill", id, "TERM"); err != nil && !r.gone(ctx, id) {
		return fmt.Errorf("stop container %s: %w", id, err)
	}
	if r.waitGone(ctx, id, grace) {
		return nil
	}
	if _, err := r.runc(ctx, id, "kill", id, "KILL"); err != nil && !r.gone(ctx, id) {
		return fmt.Errorf("kill container %s: %w", id, err)
	}
	for !r.waitGone(ctx, id, time.Second) {
		if ctx.Err() != nil {
			return fmt.Errorf("stop container %s: %w", id, ctx.Err())
		}
	}
	return nil
}

// gone reports whether the container's init has exited: its exit file
// exists, or runc no longer has it running.
func (r *Runtime) gone(ctx context.Context, id string) bool {
	if _, err := os.Stat(r.exitFile(id)); err == nil {
		return true
	}
	st, err := r.runcStatus(ctx, id)
	return err == nil && (st.Status == "" || st.Status == "stopped")
}

func (r *Runtime) waitGone(ctx context.Context, id string, d time.Duration) bool {
	deadline := time.Now().Add(d)
	lastRunc := time.Now()
	for {
		if _, err := os.Stat(r.exitFile(id)); err == nil {
			return true
		}
		if time.Since(lastRunc) > 500*time.Millisecond {
			// Without a shim (it was killed) no exit file comes.
			if r.gone(ctx, id) {
				return true
			}
			lastRunc = time.Now()
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// RemoveContainer kills the container if it runs, deletes it from runc, unmounts its rootfs
// and removes its bundle and exit file. The log file is kept (kubelet keeps
// logs of dead containers until the pod goes). Unknown IDs are not an error.
func (r *Runtime) RemoveContainer(ctx context.Context, id string) error {
	if err := validID(id); err != nil {
		return fmt.Errorf("remove container: %w", err)
	}
	dir := r.containerDir(id)
	oci := r.ociOf(id)
	if _, err := os.Stat(filepath.Join(oci.root, id)); err == nil && !r.gone(ctx, id) {
		// Kill first and let the shim record the exit, so that no exit file
		// (and no OnExit) turns up after the container is gone.
		_, _ = oci.run(ctx, "kill", id, "KILL")
		r.waitGone(ctx, id, 10*time.Second)
	}
	if _, err := os.Stat(filepath.Join(oci.root, id)); err == nil {
		if _, err := oci.run(ctx, "delete", "--force", id); err != nil && !strings.Contains(err.Error(), "does not exist") {
			return fmt.Errorf("remove container %s: %w", id, err)
		}
	}
	if m, err := r.loadMeta(id); err == nil {
		if err := r.cgroups.remove(m.CgroupPath); err != nil {
			return fmt.Errorf("remove container %s: %w", id, err)
		}
	}
	if err := unmountAll(filepath.Join(dir, "rootfs")); err != nil {
		return fmt.Errorf("remove container %s: %w", id, err)
	}
	r.metas.Delete(id)
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove container %s: %w", id, err)
	}
	if err := os.Remove(r.exitFile(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove container %s: %w", id, err)
	}
	return nil
}

// ContainerStatus returns the container's state; ErrNotFound for an unknown ID.
func (r *Runtime) ContainerStatus(ctx context.Context, id string) (*ContainerStatus, error) {
	m, err := r.loadMeta(id)
	if err != nil {
		return nil, fmt.Errorf("status of container %s: %w", id, err)
	}
	dir := r.containerDir(id)
	cs := &ContainerStatus{
		ID: id, PodUID: m.PodUID, Name: m.Name, Attempt: m.Attempt, CreatedAt: m.CreatedAt,
		Image: m.Image, LogPath: m.LogPath, Labels: m.Labels, Resources: m.Resources,
	}
	if b, err := os.ReadFile(filepath.Join(dir, "started")); err == nil {
		cs.StartedAt, _ = time.Parse(time.RFC3339Nano, string(b))
	}
	var ex shim.ExitStatus
	err = readJSON(r.exitFile(id), &ex)
	if errors.Is(err, os.ErrNotExist) {
		// No exit file: the container runs, or its shim died without
		// writing one (see recordLostExit), which is found here at once
		// rather than at the next check for lost shims.
		if st, serr := r.runcStatus(ctx, id); serr == nil && st.Status != "running" && st.Status != "created" {
			if ok, _ := r.recordLostExit(ctx, id); ok {
				err = readJSON(r.exitFile(id), &ex)
			}
		}
	}
	if err == nil {
		cs.State, cs.ExitCode, cs.FinishedAt = StateExited, ex.ExitCode, ex.FinishedAt
		switch {
		case ex.Reason != "":
			cs.Reason = ex.Reason
		case ex.OOMKilled:
			cs.Reason = "OOMKilled"
		case ex.ExitCode == 0:
			cs.Reason = "Completed"
		default:
			cs.Reason = "Error"
		}
		if f, err := os.Open(filepath.Join(dir, "termination-log")); err == nil {
			b, _ := io.ReadAll(io.LimitReader(f, maxTerminationMessage))
			f.Close()
			cs.Message = string(b)
		}
		return cs, nil
	}
	st, err := r.runcStatus(ctx, id)
	if err != nil {
		cs.State = StateUnknown
		return cs, nil
	}
	cs.Pid = st.Pid
	switch st.Status {
	case "created":
		cs.State = StateCreated
	case "running", "paused":
		cs.State = StateRunning
	case "stopped":
		// The init is gone but no exit file: the shim is about to write
		// it (a dead one's was recorded above). Until it has, the
		// container still runs, as containerd reports a task running
		// until it has handled its exit: a container that exits at once
		// (an init container's /bin/true) must not read as neither
		// running nor exited, which the pod's status would show as
		// waiting to be created again.
		cs.State = StateRunning
	default:
		// No runc state: runc has not made the container yet, or has
		// deleted it already.
		cs.State = StateUnknown
	}
	return cs, nil
}

// ListContainers returns the status of the pod's containers ("" = all pods).
func (r *Runtime) ListContainers(ctx context.Context, podUID string) ([]*ContainerStatus, error) {
	entries, err := os.ReadDir(filepath.Join(r.cfg.StateDir, "containers"))
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	var out []*ContainerStatus
	for _, e := range entries {
		m, err := r.loadMeta(e.Name())
		if err != nil {
			if errors.Is(err, ErrNotFound) && podUID == "" {
				// A bundle without meta.json: a crash in CreateContainer.
				out = append(out, &ContainerStatus{ID: e.Name(), State: StateUnknown})
			}
			continue
		}
		if podUID != "" && m.PodUID != podUID {
			continue
		}
		cs, err := r.ContainerStatus(ctx, e.Name())
		if err != nil {
			continue
		}
		out = append(out, cs)
	}
	return out, nil
}

// RunningContainers returns the containers that were started and have
// not exited, as pod UID → container name → ID: the containers
// ListContainers reports as StateRunning, read from the runtime's own
// records only (the containers' directories, their start records and the
// exit records: two directory listings and a stat per container) rather
// than from runc's state and /proc for each container, which made the
// stats summary's listing cost ~10 reads per container. The two differ
// only in the moments ListContainers reports as StateUnknown: a container
// whose process has ended while its exit record is being written, or
// whose shim died without one (until the check for lost shims writes it),
// is still listed here. Callers that read the container's cgroup then
// find it empty or gone.
func (r *Runtime) RunningContainers() (map[string]map[string]string, error) {
	entries, err := os.ReadDir(filepath.Join(r.cfg.StateDir, "containers"))
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	// Listed after the containers: a container that exits in between is
	// then left out, not listed as running.
	exits, err := os.ReadDir(filepath.Join(r.cfg.StateDir, "exits"))
	if err != nil {
		return nil, fmt.Errorf("list container exits: %w", err)
	}
	exited := make(map[string]bool, len(exits))
	for _, e := range exits {
		exited[e.Name()] = true
	}
	out := map[string]map[string]string{}
	for _, e := range entries {
		id := e.Name()
		if exited[id] {
			continue
		}
		m, err := r.loadMeta(id)
		if err != nil || m.PodUID == "" {
			continue
		}
		// Written by StartContainer once `runc start` returned.
		if _, err := os.Stat(filepath.Join(r.containerDir(id), "started")); err != nil {
			continue
		}
		if out[m.PodUID] == nil {
			out[m.PodUID] = map[string]string{}
		}
		out[m.PodUID][m.Name] = id
	}
	return out, nil
}

// startRetryBusy starts the command that newCmd builds, retrying a few times
// on ETXTBSY: the shim binary extracted by New was open for writing, and a
// process forked by another goroutine meanwhile may hold that descriptor
// until it execs (golang.org/issue/22315). A Cmd cannot be started twice,
// hence newCmd.
func startRetryBusy(newCmd func() *exec.Cmd) (*exec.Cmd, error) {
	for i := 0; ; i++ {
		cmd := newCmd()
		err := cmd.Start()
		if err == nil {
			return cmd, nil
		}
		if !errors.Is(err, syscall.ETXTBSY) || i == 5 {
			return nil, err
		}
		time.Sleep(time.Duration(i+1) * 10 * time.Millisecond)
	}
}
