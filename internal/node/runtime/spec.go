package runtime

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
	"k8s.io/kubernetes/pkg/securitycontext"

	"github.com/pocketkube/pocketkube/internal/node/runtime/seccomp"
)

// SpecOpts changes one concern of an OCI spec, as containerd's oci.SpecOpts.
type SpecOpts func(s *specs.Spec) error

// ApplyOpts applies opts to s in order and stops at the first error.
func ApplyOpts(s *specs.Spec, opts ...SpecOpts) error {
	for _, o := range opts {
		if err := o(s); err != nil {
			return err
		}
	}
	return nil
}

// defaultCaps is containerd's default capability set (oci/spec.go).
var defaultCaps = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
	"CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
	"CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
}

// knownCaps are the capabilities Linux 5.9+ knows, in kernel bit order.
// "All capabilities" (privileged, add ALL) means those of this list in the
// caller's bounding set, as containerd's cap.Current(): see CurrentCaps.
var knownCaps = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
	"CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
	"CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW",
	"CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT",
	"CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
	"CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
	"CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE",
	"CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
	"CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
}

// The masked and read-only paths are kubelet's (securitycontext's, for
// procMount Default), which containerd's CRI plugin puts in place of its
// own: the same /proc and /sys entries as containerd's pkg/oci defaults,
// /proc/interrupts and each CPU's thermal_throttle directory (when the
// host has one) included.
func defaultMaskedPaths() []string {
	return slices.Clone(securitycontext.ConvertToRuntimeMaskedPaths(nil))
}

func defaultReadonlyPaths() []string {
	return slices.Clone(securitycontext.ConvertToRuntimeReadonlyPaths(nil))
}

// DefaultSpec returns containerd's populateDefaultUnixSpec with the CRI
// plugin's changes: no /run tmpfs, a read-only cgroup mount, NoNewPrivileges
// off (CRI sets it only on request), the default capability set, the
// masked and read-only paths kubelet sends,
// RLIMIT_NOFILE 1024 (containerd 1.x), all devices denied (runc adds its
// default allow list), and the given /dev/shm bind-mounted from the pod.
func DefaultSpec(rootfs, devShm string) *specs.Spec {
	caps := slices.Clone(defaultCaps)
	return &specs.Spec{
		Version: specs.Version,
		Root:    &specs.Root{Path: rootfs},
		Process: &specs.Process{
			Cwd:  "/",
			User: specs.User{UID: 0, GID: 0},
			Capabilities: &specs.LinuxCapabilities{
				Bounding: caps, Permitted: slices.Clone(caps), Effective: slices.Clone(caps),
			},
			Rlimits: []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Hard: 1024, Soft: 1024}},
		},
		Mounts: []specs.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
			{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
			{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
			{Destination: "/dev/shm", Type: "bind", Source: devShm, Options: []string{"rbind", "rprivate", "rw"}},
			{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
			{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
			{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: []string{"nosuid", "noexec", "nodev", "relatime", "ro"}},
		},
		Linux: &specs.Linux{
			MaskedPaths:   defaultMaskedPaths(),
			ReadonlyPaths: defaultReadonlyPaths(),
			Resources: &specs.LinuxResources{
				Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}},
			},
			Namespaces: []specs.LinuxNamespace{{Type: specs.PIDNamespace}, {Type: specs.MountNamespace}},
		},
	}
}

// WithProcessArgs sets the argv of the container's init process.
func WithProcessArgs(args ...string) SpecOpts {
	return func(s *specs.Spec) error {
		if len(args) == 0 {
			return fmt.Errorf("set process args: %w", ErrNoCommand)
		}
		s.Process.Args = slices.Clone(args)
		return nil
	}
}

// WithEnv appends "K=V" entries, replacing an earlier value of the same key
// (containerd's WithEnv / replaceOrAppendEnvValues).
func WithEnv(env []string) SpecOpts {
	return func(s *specs.Spec) error {
		s.Process.Env = replaceOrAppendEnv(s.Process.Env, env)
		return nil
	}
}

func replaceOrAppendEnv(defaults, overrides []string) []string {
	out := slices.Clone(defaults)
	idx := map[string]int{}
	for i, e := range out {
		k, _, _ := strings.Cut(e, "=")
		idx[k] = i
	}
	for _, e := range overrides {
		k, _, _ := strings.Cut(e, "=")
		if i, ok := idx[k]; ok {
			out[i] = e
			continue
		}
		idx[k] = len(out)
		out = append(out, e)
	}
	return out
}

// WithWorkingDir sets the cwd of the init process ("" keeps "/").
func WithWorkingDir(dir string) SpecOpts {
	return func(s *specs.Spec) error {
		if dir != "" {
			s.Process.Cwd = dir
		}
		return nil
	}
}

// WithUser sets the process credentials.
func WithUser(u User) SpecOpts {
	return func(s *specs.Spec) error {
		gids := slices.Clone(u.AdditionalGIDs)
		// containerd's ensureAdditionalGids: the primary group is always
		// among the supplementary ones (`id` shows groups=<gid>,...).
		if !slices.Contains(gids, u.GID) {
			gids = append([]uint32{u.GID}, gids...)
		}
		s.Process.User = specs.User{UID: u.UID, GID: u.GID, AdditionalGids: gids}
		return nil
	}
}

// WithHostname sets the UTS hostname (only valid with a UTS namespace).
func WithHostname(h string) SpecOpts {
	return func(s *specs.Spec) error {
		s.Hostname = h
		return nil
	}
}

// WithTTY allocates a terminal for the init process.
func WithTTY(tty bool) SpecOpts {
	return func(s *specs.Spec) error {
		s.Process.Terminal = tty
		return nil
	}
}

// WithNoNewPrivileges sets no_new_privs on the process.
func WithNoNewPrivileges(on bool) SpecOpts {
	return func(s *specs.Spec) error {
		s.Process.NoNewPrivileges = on
		return nil
	}
}

// WithRootfsReadonly mounts the root filesystem read-only.
func WithRootfsReadonly(ro bool) SpecOpts {
	return func(s *specs.Spec) error {
		s.Root.Readonly = ro
		return nil
	}
}

func setCaps(s *specs.Spec, caps []string) {
	s.Process.Capabilities.Bounding = slices.Clone(caps)
	s.Process.Capabilities.Permitted = slices.Clone(caps)
	s.Process.Capabilities.Effective = slices.Clone(caps)
}

// WithCapabilities applies Kubernetes' add/drop lists on the current set as
// containerd's CRI plugin does: "ALL" in add first grants allCaps,
// "ALL" in drop then clears the set, then the named capabilities (without
// the CAP_ prefix, any case) are added, then dropped.
func WithCapabilities(add, drop, allCaps []string) SpecOpts {
	return func(s *specs.Spec) error {
		isAll := func(c string) bool { return strings.EqualFold(c, "ALL") }
		if slices.ContainsFunc(add, isAll) {
			setCaps(s, allCaps)
		}
		if slices.ContainsFunc(drop, isAll) {
			setCaps(s, []string{})
		}
		caps := slices.Clone(s.Process.Capabilities.Bounding)
		for _, c := range add {
			if isAll(c) {
				continue
			}
			c = capName(c)
			if !slices.Contains(caps, c) {
				caps = append(caps, c)
			}
		}
		for _, c := range drop {
			if isAll(c) {
				continue
			}
			c = capName(c)
			caps = slices.DeleteFunc(caps, func(x string) bool { return x == c })
		}
		setCaps(s, caps)
		return nil
	}
}

func capName(c string) string {
	c = strings.ToUpper(c)
	if !strings.HasPrefix(c, "CAP_") {
		c = "CAP_" + c
	}
	return c
}

// WithPrivileged grants allCaps and all devices, removes masked and
// read-only paths, and mounts /sys and the cgroup filesystem read-write.
func WithPrivileged(on bool, allCaps []string, devices []specs.LinuxDevice) SpecOpts {
	return func(s *specs.Spec) error {
		if !on {
			return nil
		}
		setCaps(s, allCaps)
		s.Linux.MaskedPaths = nil
		s.Linux.ReadonlyPaths = nil
		s.Linux.Resources.Devices = []specs.LinuxDeviceCgroup{{Allow: true, Access: "rwm"}}
		s.Linux.Devices = append(s.Linux.Devices, devices...)
		for i, m := range s.Mounts {
			if m.Destination == "/sys" || m.Destination == "/sys/fs/cgroup" {
				s.Mounts[i].Options = slices.DeleteFunc(slices.Clone(m.Options), func(o string) bool { return o == "ro" })
				s.Mounts[i].Options = append(s.Mounts[i].Options, "rw")
			}
		}
		return nil
	}
}

// WithSeccomp sets the container's seccomp filter as containerd's CRI
// plugin does (GenerateSeccompSpecOpts): none for a privileged container
// or an Unconfined profile, containerd's default profile for
// RuntimeDefault, and the JSON file's for Localhost, with containerd's
// errors when it cannot be read or decoded. The default profile depends
// on the capabilities: apply it after WithCapabilities.
func WithSeccomp(sp Seccomp, privileged bool) SpecOpts {
	return func(s *specs.Spec) error {
		if privileged {
			return nil
		}
		switch sp.Type {
		case SeccompUnconfined:
			return nil
		case SeccompRuntimeDefault:
			s.Linux.Seccomp = seccomp.DefaultProfile(s)
			return nil
		case SeccompLocalhost:
			s.Linux.Seccomp = &specs.LinuxSeccomp{}
			b, err := os.ReadFile(sp.Path)
			if err != nil {
				return fmt.Errorf("cannot load seccomp profile %q: %v", sp.Path, err)
			}
			if err := json.Unmarshal(b, s.Linux.Seccomp); err != nil {
				return fmt.Errorf("decoding seccomp profile failed %q: %v", sp.Path, err)
			}
			return nil
		default:
			return errors.New("seccomp unknown ProfileType")
		}
	}
}

// WithResources sets the container's cgroup values (zero fields stay unset).
func WithResources(r Resources) SpecOpts {
	return func(s *specs.Spec) error {
		lr := s.Linux.Resources
		if r.CPUShares != 0 || r.CPUQuota != 0 || r.CPUPeriod != 0 {
			lr.CPU = &specs.LinuxCPU{}
			if r.CPUShares != 0 {
				lr.CPU.Shares = ptr(r.CPUShares)
			}
			if r.CPUQuota != 0 {
				lr.CPU.Quota = ptr(r.CPUQuota)
			}
			if r.CPUPeriod != 0 {
				lr.CPU.Period = ptr(r.CPUPeriod)
			}
		}
		if r.MemoryLimit != 0 {
			lr.Memory = &specs.LinuxMemory{Limit: ptr(r.MemoryLimit)}
		}
		if r.PidsLimit != 0 {
			lr.Pids = &specs.LinuxPids{Limit: ptr(r.PidsLimit)}
		}
		return nil
	}
}

// WithOOMScoreAdj sets the oom_score_adj runc gives the container's
// processes (its init and what exec runs in it); nil leaves it unset.
func WithOOMScoreAdj(adj *int) SpecOpts {
	return func(s *specs.Spec) error {
		if adj != nil {
			s.Process.OOMScoreAdj = new(*adj)
		}
		return nil
	}
}

// WithSysctls sets kernel parameters in the container's namespaces; runc
// writes them under /proc/sys once it has joined them.
func WithSysctls(sysctls map[string]string) SpecOpts {
	return func(s *specs.Spec) error {
		if len(sysctls) == 0 {
			return nil
		}
		if s.Linux.Sysctl == nil {
			s.Linux.Sysctl = map[string]string{}
		}
		for k, v := range sysctls {
			s.Linux.Sysctl[k] = v
		}
		return nil
	}
}

// WithCgroupsPath sets the container's cgroup (cgroupfs driver path).
func WithCgroupsPath(p string) SpecOpts {
	return func(s *specs.Spec) error {
		s.Linux.CgroupsPath = p
		return nil
	}
}

// WithNamespace joins the namespace at path, or creates a new one when path
// is "" (replacing an earlier entry of the same type).
func WithNamespace(t specs.LinuxNamespaceType, path string) SpecOpts {
	return func(s *specs.Spec) error {
		s.Linux.Namespaces = slices.DeleteFunc(s.Linux.Namespaces, func(n specs.LinuxNamespace) bool { return n.Type == t })
		s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: t, Path: path})
		return nil
	}
}

// WithoutNamespace makes the container share the host's namespace of type t.
func WithoutNamespace(t specs.LinuxNamespaceType) SpecOpts {
	return func(s *specs.Spec) error {
		s.Linux.Namespaces = slices.DeleteFunc(s.Linux.Namespaces, func(n specs.LinuxNamespace) bool { return n.Type == t })
		return nil
	}
}

// WithMounts appends bind mounts, replacing default mounts at the same
// destination (as containerd's CRI plugin lets user mounts win). Propagation
// "" means rprivate.
func WithMounts(mounts []Mount) SpecOpts {
	return func(s *specs.Spec) error {
		// Parents before children, as containerd's CRI plugin orders them.
		mounts = slices.Clone(mounts)
		slices.SortStableFunc(mounts, func(a, b Mount) int {
			return strings.Count(filepath.Clean(a.Destination), "/") - strings.Count(filepath.Clean(b.Destination), "/")
		})
		for _, m := range mounts {
			if !strings.HasPrefix(m.Destination, "/") {
				return fmt.Errorf("mount %s: destination is not absolute", m.Destination)
			}
			opts := []string{"rbind"}
			switch m.Propagation {
			case "", "rprivate":
				opts = append(opts, "rprivate")
			case "rslave", "rshared":
				opts = append(opts, m.Propagation)
				if m.Propagation == "rshared" {
					s.Linux.RootfsPropagation = "rshared"
				} else if s.Linux.RootfsPropagation == "" {
					s.Linux.RootfsPropagation = "rslave"
				}
			default:
				return fmt.Errorf("mount %s: unknown propagation %q", m.Destination, m.Propagation)
			}
			if m.ReadOnly {
				opts = append(opts, "ro")
			} else {
				opts = append(opts, "rw")
			}
			s.Mounts = slices.DeleteFunc(s.Mounts, func(x specs.Mount) bool { return x.Destination == m.Destination })
			s.Mounts = append(s.Mounts, specs.Mount{Destination: m.Destination, Type: "bind", Source: m.Source, Options: opts})
		}
		return nil
	}
}

func ptr[T any](v T) *T { return &v }

// CurrentCaps returns the capabilities in this process's bounding set (from
// /proc/self/status CapBnd), the set a privileged container may get.
func CurrentCaps() ([]string, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return nil, fmt.Errorf("read capabilities: %w", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		v, ok := strings.CutPrefix(line, "CapBnd:")
		if !ok {
			continue
		}
		mask, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		if err != nil {
			return nil, fmt.Errorf("parse CapBnd %q: %w", v, err)
		}
		var caps []string
		for bit, name := range knownCaps {
			if mask&(1<<uint(bit)) != 0 {
				caps = append(caps, name)
			}
		}
		return caps, nil
	}
	return nil, errors.New("read capabilities: no CapBnd in /proc/self/status")
}

// hostDevices lists the host's device nodes as containerd's
// oci.HostDevices does for privileged containers: every character and
// block device under /dev, except those under pts, shm, fd, mqueue and
// the .lxc, .lxd-mounts and .udev directories, and /dev/console.
func hostDevices() ([]specs.LinuxDevice, error) {
	var out []specs.LinuxDevice
	err := filepath.WalkDir("/dev", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if path != "/dev" && errors.Is(err, fs.ErrNotExist) {
				return nil // gone meanwhile
			}
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case "pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev":
				return filepath.SkipDir
			}
			return nil
		}
		if path == "/dev/console" || d.Type()&fs.ModeDevice == 0 {
			return nil
		}
		var st unix.Stat_t
		if err := unix.Lstat(path, &st); err != nil {
			return nil
		}
		typ := "c"
		if st.Mode&unix.S_IFMT == unix.S_IFBLK {
			typ = "b"
		}
		mode := fs.FileMode(st.Mode &^ unix.S_IFMT)
		out = append(out, specs.LinuxDevice{
			Path: path, Type: typ, Major: int64(unix.Major(uint64(st.Rdev))), Minor: int64(unix.Minor(uint64(st.Rdev))),
			FileMode: &mode, UID: &st.Uid, GID: &st.Gid,
		})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list host devices: %w", err)
	}
	return out, nil
}

// minOOMScoreAdj is the lowest oom_score_adj this process may give its
// children: any with CAP_SYS_RESOURCE in caps, else its own.
func minOOMScoreAdj(caps []string) (int, error) {
	if slices.Contains(caps, "CAP_SYS_RESOURCE") {
		return -1000, nil
	}
	b, err := os.ReadFile("/proc/self/oom_score_adj")
	if err != nil {
		return 0, fmt.Errorf("read oom_score_adj: %w", err)
	}
	v, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, fmt.Errorf("parse oom_score_adj %q: %w", b, err)
	}
	return v, nil
}

// restrictOOMScoreAdj raises adj to the lowest score this process may
// give (containerd's restrictOOMScoreAdj): runc fails to create a
// container whose score it may not write.
func (r *Runtime) restrictOOMScoreAdj(adj *int) *int {
	if adj == nil || *adj >= r.minOOMScoreAdj {
		return adj
	}
	return new(r.minOOMScoreAdj)
}
