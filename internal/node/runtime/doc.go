// Package runtime runs pods as OCI containers with runc (or crun, see
// Config.OCIRuntime), without containerd: it is the CRI-runtime half of
// pocketkube's node agent.
//
// # Basics
//
// A [Runtime] owns one state directory (Config.StateDir). A pod ("sandbox")
// is a cgroup in kubelet's cgroupfs layout (Config.CgroupRoot, by default
// /kubepods, then [/burstable|/besteffort]/pod<uid>),
// an IPC and a UTS namespace kept alive as bind mounts of nsfs files under
// StateDir/pods/<uid>/ns, and a /dev/shm tmpfs shared by its containers. There
// is no pause process, except for a pod that shares its PID namespace
// (PodConfig.SharePID): a pause container (the static shim binary run as
// `pause`, alone in an empty root, unprivileged, under a shim of its own) is
// PID 1 of the namespace its containers join, as with containerd. The
// network namespace comes from internal/node/network. The pod's sysctls
// (PodConfig.Sysctls) go in each container's spec; runc sets them in the
// shared namespaces.
//
// A container is an OCI runtime bundle (StateDir/containers/<id>, 0700 as
// containerd's: config.json, which holds the env and is 0600 like every
// state file, an overlayfs rootfs whose lowerdir is the unpacked image) created by
// `runc create` under a shim (package shim): a small process, one per
// container, that leaves pocketkube's session, becomes the child subreaper of the container, writes the
// container's stdout/stderr to a CRI-format log file and, when the container's
// init exits, an exit file under StateDir/exits. The Runtime watches that
// directory with inotify and calls Config.OnExit. Because every piece of state
// lives on disk, pocketkube can be killed (even with -9) and a new Runtime
// built on the same StateDir finds the running containers again.
//
// The shim is its own tiny binary (cmd/pocketkube-shim, standard library and
// x/sys only: ~1 MB of private memory instead of the ~17 MB that a re-exec of
// pocketkube costs). `make build` embeds it in pocketkube, and New extracts it
// to StateDir/bin/pocketkube-shim-<sha256 prefix>. A pocketkube built
// without it (`go build`, `go test`) falls back to its own hidden
// `pocketkube runtime-shim` command, which runs the same code. One shim is
// always started ahead (`--standby`, standby.go) and waits for the next
// container's bundle, so that a create does not wait for a process to
// start; it is started again after each create.
//
// The node agent computes everything Kubernetes-specific (env, argv, volume
// mounts, /etc/hosts, security context) and hands it to this package as
// [PodConfig] and [ContainerConfig], which hold no API types. The one
// exception is resources: [PodResources], [ContainerResources] and
// [QOSClass] read a *v1.Pod or *v1.Container with upstream's helpers, so
// that cgroup values are computed exactly as kubelet computes them. The OCI spec is built from small
// composable [SpecOpts], as containerd's pkg/oci does, starting from
// containerd's defaults (see [DefaultSpec]).
//
// # Caveats
//
//   - The caller must run as root; cgroup v1 (hybrid included) and v2 are
//     supported with the cgroupfs driver only (no systemd). Only v1 hybrid is
//     exercised by the tests on our machines.
//   - Privileged containers get all capabilities, all device access and a
//     writable /sys, but host devices are not added to /dev (containerd does).
//   - Seccomp (ContainerConfig.Seccomp) is applied as containerd's CRI
//     plugin applies it: RuntimeDefault is containerd's default profile
//     (package seccomp, containerd v2.4.2's, built for the container's
//     capabilities, so CAP_SYS_ADMIN lets mount and unshare through),
//     Localhost the OCI JSON profile in the given file, Unconfined (the
//     zero value, kubelet's default without --seccomp-default) no filter,
//     and a privileged container never gets one. A Localhost file that
//     is missing or not JSON fails CreateContainer with containerd's
//     message. The pause process of a SharePID pod runs without a filter
//     (containerd gives it the pod-level profile).
//   - AppArmor is never applied: the agent refuses pods that ask for a
//     profile (see package agent). On a host with AppArmor, containerd
//     would also confine every container that asks for nothing with its
//     cri-containerd.apparmor.d profile; pocketkube does not. Doing so
//     needs that profile generated and loaded (apparmor_parser) and
//     process.apparmorProfile set in the spec.
//   - The default capabilities, masked and read-only paths are those
//     kubelet and containerd give a container (DefaultSpec).
//   - A SharePID pod needs the embedded shim (make build): without one,
//     RunPod fails with ErrNoPause.
//   - OnExit only reports exits seen while a Runtime is watching: after a
//     restart, call ListContainers to find containers that exited meanwhile.
//   - If a shim dies (killed, or the host rebooted), the runtime records
//     its container's exit as containerd does (see lost.go): exit code 255
//     with reason "Unknown" when the init is gone too, else it kills the
//     init (137). It notices within a second, or at the next status. A
//     shim started by a pocketkube older than this check is not watched.
//   - The shim rotates the CRI log at 10 MiB and keeps up to 5 files (the
//     live one plus <log>.<YYYYmmdd-HHMMSS.nanoseconds>), kubelet's
//     containerLogMaxSize/MaxFiles defaults; there is no separate log manager.
//   - With Config.OCIRuntime Crun, containers are created by crun with
//     ociVersion 1.0.2 (crun 1.8.1 refuses newer ones; crunRefuses sends
//     specs with newer fields to runc instead). On a hybrid cgroup layout
//     whose cgroup2 has a controller, which crun refuses, its create runs
//     in a mount namespace of its own without that mount (the container
//     then sees no /sys/fs/cgroup/unified), a slave of the host's, so
//     containers with Bidirectional mounts are created by runc there.
//     Exec passes the container's process to `crun exec --process`,
//     resizes write the cgroup files (crun 1.8.1 cannot lift a v1 quota),
//     and start writes crun's exec FIFO as `crun start` does.
//   - Exec with a TTY runs `runc exec --tty` in the foreground on a
//     pseudo-terminal of ours (runc refuses a console socket without
//     --detach, which would lose the exit code). Attach talks to the shim
//     over <bundle>/attach.sock (see attach.go for the framing).
package runtime
