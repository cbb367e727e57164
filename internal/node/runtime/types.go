package runtime

import (
	"errors"
	"io"
	"time"
)

// Sentinel errors; test with errors.Is.
var (
	// ErrNotFound is returned for an unknown container ID or pod UID.
	ErrNotFound = errors.New("not found")
	// ErrNotRunning is returned by Exec for a container that does not run.
	ErrNotRunning = errors.New("container is not running")
	// ErrNoCommand is returned when a container has no argv.
	ErrNoCommand = errors.New("no command specified")
	// ErrRunAsRoot is wrapped by CreateContainer when RunAsNonRoot is set
	// and the effective UID is 0.
	ErrRunAsRoot = errors.New("runAsNonRoot violated")
)

// PodConfig describes a pod sandbox: its cgroup and shared namespaces.
type PodConfig struct {
	UID, Namespace, Name string
	Hostname             string    // UTS hostname (the pod name); "" with a host UTS namespace
	NetNS                string    // path of the pod's network namespace; "" = host network (and host UTS)
	HostIPC, HostPID     bool      // share the host's IPC / PID namespace
	QOSClass             string    // "Guaranteed" | "Burstable" | "BestEffort" (default BestEffort)
	Resources            Resources // pod cgroup values (see PodResources)
	ShmSize              int64     // bytes of the shared /dev/shm tmpfs; 0 = 64 MiB
	// Sysctls are set in every container's namespaces (the OCI spec's
	// linux.sysctl), names with dots: the agent admits only namespaced
	// ones, as kubelet's allowlist does, and runc refuses the others.
	Sysctls map[string]string
	// SharePID gives the pod's containers one PID namespace
	// (shareProcessNamespace), whose PID 1 is the pod's pause process, as
	// with kubelet and containerd. Ignored with HostPID.
	SharePID bool
}

// SeccompType is the kind of a seccomp profile, as CRI's
// SecurityProfile.ProfileType.
type SeccompType string

// Seccomp profile kinds.
const (
	// SeccompUnconfined runs the container without a seccomp filter.
	SeccompUnconfined SeccompType = ""
	// SeccompRuntimeDefault applies containerd's default profile (package
	// seccomp), built for the container's capabilities.
	SeccompRuntimeDefault SeccompType = "RuntimeDefault"
	// SeccompLocalhost applies the JSON profile (an OCI linux.seccomp
	// object) in the file Seccomp.Path.
	SeccompLocalhost SeccompType = "Localhost"
)

// Seccomp is a container's seccomp profile.
type Seccomp struct {
	Type SeccompType
	// Path is the profile file of a Localhost profile, on the host
	// (kubelet's <root-dir>/seccomp/<localhostProfile>).
	Path string
}

// Mount is a bind mount prepared by the agent.
type Mount struct {
	Source, Destination string
	ReadOnly            bool
	Propagation         string // "", "rprivate", "rslave", "rshared"
}

// ContainerConfig is everything CreateContainer needs, already resolved by
// the agent (argv merged and expanded, env final, volumes on the host).
type ContainerConfig struct {
	PodUID, Name string
	Attempt      uint32
	Image        string   // image reference, reported in status only
	Rootfs       string   // read-only unpacked image rootfs (overlay lowerdir)
	Args         []string // final argv
	Env          []string // "K=V", image env first then pod env
	WorkingDir   string
	User         User // see ResolveUser

	TTY, Stdin, StdinOnce bool
	Mounts                []Mount

	Privileged, ReadOnlyRootfs, NoNewPrivileges bool
	CapAdd, CapDrop                             []string
	RunAsNonRoot                                bool
	// Seccomp is the container's seccomp profile, as kubelet resolved
	// it; the zero value is Unconfined. A privileged container gets
	// none, whatever it asks, as with containerd.
	Seccomp Seccomp

	Resources Resources
	// OOMScoreAdj is the container processes' oom_score_adj (kubelet's
	// GetContainerOOMScoreAdjust); nil leaves what they inherit, which
	// is the node's own -999.
	OOMScoreAdj *int
	// LogPath is the CRI-format log file the shim writes; "" = no log.
	LogPath string
	// TerminationMessagePath is the in-container path of the termination
	// message file ("" = /dev/termination-log).
	TerminationMessagePath string
	// TargetContainerID, for an ephemeral container with a
	// targetContainerName, is the ID of the running container whose PID
	// namespace it joins (CRI's NamespaceMode TARGET): containerd's
	// /proc/<target pid>/ns/pid. Ignored when the pod shares the host's
	// or the pod's PID namespace, as kubelet asks TARGET only of a
	// container that would otherwise get its own.
	TargetContainerID string
	Labels            map[string]string
}

// State is a container's state, as CRI's ContainerState.
type State string

// Container states.
const (
	StateCreated State = "Created"
	StateRunning State = "Running"
	StateExited  State = "Exited"
	StateUnknown State = "Unknown"
)

// ContainerStatus is a container's observed state.
type ContainerStatus struct {
	ID, PodUID, Name                 string
	Attempt                          uint32
	State                            State
	Pid                              int
	CreatedAt, StartedAt, FinishedAt time.Time
	ExitCode                         int32
	Reason                           string // "Completed", "Error", "OOMKilled", "Unknown" (its shim died) once exited
	Message                          string // termination message (at most 4096 bytes)
	Image, LogPath                   string
	Labels                           map[string]string
	// Resources are the container's cgroup values as last applied (nil
	// for a container created before they were recorded).
	Resources *Resources
}

// TerminalSize is a terminal's size in characters.
type TerminalSize struct{ Width, Height uint16 }

// Streams are the stdio of an exec or attach session. Nil members are not
// connected. With TTY, stdout and stderr are merged into Stdout.
type Streams struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	TTY            bool
	Resize         <-chan TerminalSize
}
