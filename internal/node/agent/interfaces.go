package agent

import (
	"context"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/kubernetes/pkg/kubelet/lifecycle"

	"github.com/pocketkube/pocketkube/internal/node/image"
	"github.com/pocketkube/pocketkube/internal/node/network"
	"github.com/pocketkube/pocketkube/internal/node/runtime"
	"github.com/pocketkube/pocketkube/internal/node/volume"
)

// Runtime runs pods' containers (internal/node/runtime). It is larger than
// our usual interfaces because it mirrors the CRI runtime service, which
// kubelet's SyncPod drives in the same steps.
type Runtime interface {
	Version(ctx context.Context) (string, error)
	RunPod(ctx context.Context, cfg runtime.PodConfig) error
	// PodReady reports whether the pod's sandbox is whole (CRI's
	// PodSandboxStatus); runtime.ErrNotFound for a pod without one.
	PodReady(ctx context.Context, uid string) (bool, error)
	RemovePod(ctx context.Context, uid string) error
	ListPods(ctx context.Context) ([]string, error)
	CreateContainer(ctx context.Context, cfg runtime.ContainerConfig) (string, error)
	StartContainer(ctx context.Context, id string) error
	StopContainer(ctx context.Context, id string, grace time.Duration) error
	RemoveContainer(ctx context.Context, id string) error
	ListContainers(ctx context.Context, podUID string) ([]*runtime.ContainerStatus, error)
	Exec(ctx context.Context, id string, cmd []string, s runtime.Streams) (int, error)
}

// Images finds and pulls images and unpacks their root filesystems
// (internal/node/image).
type Images interface {
	Get(ctx context.Context, ref string) (image.Image, error)
	Pull(ctx context.Context, ref string, opts image.PullOptions) (image.Image, error)
	Rootfs(ctx context.Context, img image.Image) (string, error)
}

// Network gives pods their network namespace (internal/node/network).
type Network interface {
	Setup(ctx context.Context, pod network.Pod) (*network.Sandbox, error)
	Teardown(ctx context.Context, podUID string) error
	List(ctx context.Context) ([]string, error)
}

// Volumes prepares pods' volumes on the host (internal/node/volume).
type Volumes interface {
	Setup(ctx context.Context, pod *v1.Pod, vol *v1.Volume, src volume.Sources) (*volume.Mounted, error)
	// PrepareSubPath returns the mount source of a volumeMount's subPath:
	// a bind mount the container cannot redirect, removed by TeardownPod.
	PrepareSubPath(ctx context.Context, sp volume.SubPath) (string, error)
	TeardownPod(ctx context.Context, podUID string) error
	Pods() ([]string, error)
}

// Pressure is what the agent asks kubelet's eviction manager: the node's
// pressure conditions, and whether a pod may start (lifecycle's
// PodAdmitHandler).
type Pressure interface {
	IsUnderMemoryPressure() bool
	IsUnderDiskPressure() bool
	IsUnderPIDPressure() bool
	Admit(ctx context.Context, attrs *lifecycle.PodAdmitAttributes) lifecycle.PodAdmitResult
}
