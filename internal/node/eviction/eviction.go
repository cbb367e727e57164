package eviction

import (
	"context"
	"errors"
	"fmt"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/klog/v2"
)

// Kubelet's values (pkg/kubelet/eviction, pkg/kubelet/kubelet.go).
const (
	// Reason is the evicted pod's status reason and its event's reason.
	Reason = "Evicted"
	// emptyDirMessageFmt is kubelet's message for an emptyDir over its
	// sizeLimit.
	emptyDirMessageFmt = "Usage of EmptyDir volume %q exceeds the limit %q. "
	// DefaultPeriod is kubelet's evictionMonitoringPeriod.
	DefaultPeriod = 10 * time.Second
)

// Evicter ends a pod as kubelet's eviction does: an Evicted event with
// message, the containers stopped, phase Failed, reason Evicted, message
// as the status message. It may return before that is done; calling it
// again for the same pod must be harmless.
type Evicter interface {
	Evict(ctx context.Context, pod *v1.Pod, message string)
}

// Config configures a Manager. Every field but Period is required.
type Config struct {
	// Pods returns the pods the node runs: not deleted, not in a terminal
	// phase.
	Pods func() ([]*v1.Pod, error)
	// EmptyDirUsage returns the bytes the emptyDir volume of a pod
	// takes on disk (internal/node/volume's Manager.EmptyDirUsage).
	EmptyDirUsage func(podUID, volume string) (int64, error)
	// Evicter evicts the pods found over a limit.
	Evicter Evicter
	// Period is how often pods are measured; default DefaultPeriod.
	Period time.Duration
}

// Manager evicts pods whose local storage goes past their limits.
type Manager struct {
	cfg Config
}

// New checks cfg and fills in defaults.
func New(cfg Config) (*Manager, error) {
	if cfg.Pods == nil || cfg.EmptyDirUsage == nil || cfg.Evicter == nil {
		return nil, errors.New("eviction: Pods, EmptyDirUsage and Evicter are required")
	}
	if cfg.Period == 0 {
		cfg.Period = DefaultPeriod
	}
	return &Manager{cfg: cfg}, nil
}

// Run checks the pods every Period until ctx is done.
func (m *Manager) Run(ctx context.Context) {
	wait.UntilWithContext(ctx, func(ctx context.Context) {
		if _, err := m.Synchronize(ctx); err != nil {
			klog.FromContext(ctx).Error(err, "Eviction manager: failed to check the pods")
		}
	}, m.cfg.Period)
}

// Synchronize checks every pod once, evicts those over a limit and
// returns them. A pod that cannot be measured is skipped, as kubelet
// skips a pod without stats.
func (m *Manager) Synchronize(ctx context.Context) ([]*v1.Pod, error) {
	pods, err := m.cfg.Pods()
	if err != nil {
		return nil, fmt.Errorf("list pods: %w", err)
	}
	var evicted []*v1.Pod
	for _, pod := range pods {
		if msg := m.emptyDirOverLimit(ctx, pod); msg != "" {
			klog.FromContext(ctx).Info("Eviction manager: evicting pod", "pod", klog.KObj(pod), "message", msg)
			m.cfg.Evicter.Evict(ctx, pod, msg)
			evicted = append(evicted, pod)
		}
	}
	return evicted, nil
}

// emptyDirOverLimit is kubelet's emptyDirLimitEviction test: the message
// for the first emptyDir of pod that uses more than its sizeLimit, or "".
// Memory-backed volumes are tmpfs mounts of their limit: the kernel
// enforces it (kubelet skips them too once it sizes them so).
func (m *Manager) emptyDirOverLimit(ctx context.Context, pod *v1.Pod) string {
	for i := range pod.Spec.Volumes {
		vol := &pod.Spec.Volumes[i]
		src := vol.EmptyDir
		if src == nil || src.Medium == v1.StorageMediumMemory || src.SizeLimit == nil || src.SizeLimit.Sign() != 1 {
			continue
		}
		n, err := m.cfg.EmptyDirUsage(string(pod.UID), vol.Name)
		if err != nil {
			klog.FromContext(ctx).V(2).Info("Eviction manager: cannot measure emptyDir", "pod", klog.KObj(pod), "volume", vol.Name, "err", err)
			continue
		}
		if resource.NewQuantity(n, resource.BinarySI).Cmp(*src.SizeLimit) > 0 {
			return fmt.Sprintf(emptyDirMessageFmt, vol.Name, src.SizeLimit.String())
		}
	}
	return ""
}
