package runtime

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/pocketkube/pocketkube/internal/node/runtime/shim"
)

// ErrNoPause is wrapped by RunPod for a SharePID pod when this binary has
// no shim embedded (built without `make build`): the pause process is the
// static shim binary, as no other binary can run in its empty root.
var ErrNoPause = errors.New("no pause binary: build pocketkube with make build")

// pauseUID and pauseGID are the pause image's user (65535).
const pauseUID, pauseGID = 65535, 65535

func pauseID(podUID string) string { return "pause-" + podUID }

// podInfraOOMScoreAdj is the pause container's oom_score_adj, kubelet's
// for the sandbox (pkg/kubelet/qos: PodInfraOOMAdj).
const podInfraOOMScoreAdj = -998

// pauseSpec is the pod's pause container, as the sandbox containerd makes
// from the pause image: the static shim binary alone (read-only, at
// /pause) in an empty read-only root, as an unprivileged user with no
// capabilities and no_new_privs, in the pod's cgroup and in its network,
// IPC and UTS namespaces, PID 1 of a PID namespace of its own.
func pauseSpec(st *podState, bin, rootfs, cgroup string, cgroupNS bool) *specs.Spec {
	s := &specs.Spec{
		Version: specs.Version,
		Root:    &specs.Root{Path: rootfs, Readonly: true},
		Process: &specs.Process{
			Args:            []string{"/pause", shim.PauseArg},
			Cwd:             "/",
			User:            specs.User{UID: pauseUID, GID: pauseGID},
			NoNewPrivileges: true,
			Capabilities:    &specs.LinuxCapabilities{},
			OOMScoreAdj:     new(podInfraOOMScoreAdj),
		},
		Mounts: []specs.Mount{
			// runc reads /proc/self/fd in there before it execs pause.
			{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
			{Destination: "/pause", Type: "bind", Source: bin, Options: []string{"rbind", "ro", "nosuid", "nodev"}},
		},
		Linux: &specs.Linux{
			CgroupsPath:   cgroup,
			Resources:     &specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}}},
			Namespaces:    []specs.LinuxNamespace{{Type: specs.PIDNamespace}, {Type: specs.MountNamespace}},
			MaskedPaths:   defaultMaskedPaths(),
			ReadonlyPaths: defaultReadonlyPaths(),
		},
	}
	if st.Config.NetNS != "" {
		s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: st.Config.NetNS})
	}
	if st.IPCNS != "" {
		s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.IPCNamespace, Path: st.IPCNS})
	}
	if st.UTSNS != "" {
		s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UTSNamespace, Path: st.UTSNS})
	}
	if cgroupNS {
		s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.CgroupNamespace})
	}
	return s
}

// ensurePause starts the pod's pause container unless it runs, and
// returns the path of its PID namespace. A pause that died took the
// namespace and every process in it along: a new one starts a new
// namespace, which the containers created from now on join. The caller
// holds r.mu.
func (r *Runtime) ensurePause(ctx context.Context, st *podState) (string, error) {
	id := pauseID(st.Config.UID)
	if s, err := r.runcStatus(ctx, id); err == nil && s.Status == "running" {
		return fmt.Sprintf("/proc/%d/ns/pid", s.Pid), nil
	}
	if r.pauseBin == "" {
		return "", ErrNoPause
	}
	// A stopped one (the pause was killed, the host rebooted) is in the way.
	if err := r.removePause(ctx, st.Config.UID); err != nil {
		return "", err
	}
	dir := filepath.Join(r.podDir(st.Config.UID), "pause")
	rootfs := filepath.Join(dir, "rootfs")
	// The mount points, made here as the root is read-only: runc makes
	// them itself, crun wants them there (/dev for its device nodes).
	for _, d := range []string{"dev", "proc"} {
		if err := os.MkdirAll(filepath.Join(rootfs, d), 0o755); err != nil {
			return "", fmt.Errorf("create pause bundle: %w", err)
		}
	}
	spec := pauseSpec(st, r.pauseBin, rootfs, filepath.Join(st.CgroupPath, "pause"), r.cgroups.v2)
	spec.Process.OOMScoreAdj = r.restrictOOMScoreAdj(spec.Process.OOMScoreAdj)
	oci := r.ociFor(ctx, spec)
	if err := writeJSONAtomic(filepath.Join(dir, "config.json"), spec); err != nil {
		return "", fmt.Errorf("write pause spec: %w", err)
	}
	// Under a shim of its own, as a container: the shim is its parent and
	// reaps it (a pause left to the host's init may stay a zombie).
	sc := shim.Config{ID: id, Bundle: dir, Runc: oci.path, RuncRoot: oci.root, HideMount: oci.hideMount, ExitFile: filepath.Join(dir, "exit")}
	if err := writeJSONAtomic(filepath.Join(dir, shim.ConfigFile), sc); err != nil {
		return "", fmt.Errorf("write pause shim config: %w", err)
	}
	if err := r.startShim(ctx, dir, &stepTimer{}); err != nil {
		_ = r.removePause(context.WithoutCancel(ctx), st.Config.UID)
		return "", fmt.Errorf("create pause container: %w", err)
	}
	if _, err := oci.run(ctx, "start", id); err != nil {
		_ = r.removePause(context.WithoutCancel(ctx), st.Config.UID)
		return "", fmt.Errorf("start pause container: %w", err)
	}
	s, err := r.runcStatus(ctx, id)
	if err != nil || s.Status != "running" {
		return "", fmt.Errorf("start pause container: status %q: %v", s.Status, err)
	}
	return fmt.Sprintf("/proc/%d/ns/pid", s.Pid), nil
}

// removePause kills and deletes the pod's pause container, if any.
func (r *Runtime) removePause(ctx context.Context, podUID string) error {
	id := pauseID(podUID)
	oci := r.ociOf(id)
	if _, err := os.Stat(filepath.Join(oci.root, id)); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if _, err := oci.run(ctx, "delete", "--force", id); err != nil {
		if _, serr := os.Stat(filepath.Join(oci.root, id)); errors.Is(serr, os.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("remove pause container: %w", err)
	}
	return nil
}
