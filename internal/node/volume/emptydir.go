package volume

import (
	"context"
	"fmt"
	"os"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	utilfeature "k8s.io/apiserver/pkg/util/feature"
	resourcehelper "k8s.io/component-helpers/resource"
	"k8s.io/klog/v2"
	"k8s.io/kubernetes/pkg/features"
)

// emptyDirPerm is kubelet's emptyDir mode (https://issue.k8s.io/2630).
const emptyDirPerm os.FileMode = 0o777

// setupEmptyDir prepares an emptyDir as kubelet's emptyDir.SetUpAt: a 0777
// directory, with a tmpfs mounted on it for medium Memory. fsGroup is applied
// only when the volume is created, as kubelet does once the volume is ready.
func (m *Manager) setupEmptyDir(ctx context.Context, pod *v1.Pod, vol *v1.Volume) (*Mounted, error) {
	dir, err := m.volumeDir(string(pod.UID), emptyDirPluginDir, vol.Name)
	if err != nil {
		return nil, err
	}
	var medium v1.StorageMedium
	if vol.EmptyDir != nil {
		medium = vol.EmptyDir.Medium
	}
	var created bool
	switch medium {
	case v1.StorageMediumDefault:
		created, err = makeVolumeDir(dir)
	case v1.StorageMediumMemory:
		created, err = m.makeTmpfsDir(ctx, dir, m.emptyDirMemorySize(pod, vol))
	default:
		return nil, fmt.Errorf("unsupported emptyDir medium %q", medium)
	}
	if err != nil {
		return nil, err
	}
	if created {
		var policy *v1.PodFSGroupChangePolicy
		if sc := pod.Spec.SecurityContext; sc != nil {
			policy = sc.FSGroupChangePolicy
		}
		if err := setVolumeOwnership(dir, pod, false, policy); err != nil {
			return nil, fmt.Errorf("set ownership of %s: %w", dir, err)
		}
	}
	return &Mounted{Path: dir, Managed: true}, nil
}

// makeVolumeDir creates dir (and its plugin parent) with kubelet's emptyDir
// mode, umask-proof. created is false when dir existed already.
func makeVolumeDir(dir string) (created bool, err error) {
	if fi, err := os.Lstat(dir); err == nil {
		if !fi.IsDir() {
			return false, fmt.Errorf("%s exists and is not a directory", dir)
		}
		return false, nil
	}
	if err := os.MkdirAll(dir, emptyDirPerm); err != nil {
		return false, err
	}
	if err := os.Chmod(dir, emptyDirPerm); err != nil {
		return false, err
	}
	return true, nil
}

// makeTmpfsDir makes dir a tmpfs mount point of the given size (0: the
// kernel's default, half the RAM) unless it is one already.
func (m *Manager) makeTmpfsDir(ctx context.Context, dir string, size int64) (created bool, err error) {
	if _, err := makeVolumeDir(dir); err != nil {
		return false, err
	}
	mounted, err := isTmpfs(dir)
	if err != nil || mounted {
		return false, err
	}
	if err := mountTmpfs(dir, size); err != nil {
		return false, err
	}
	klog.FromContext(ctx).V(3).Info("Mounted tmpfs for volume", "path", dir, "size", size)
	return true, nil
}

// emptyDirMemorySize is kubelet's calculateEmptyDirMemorySize: node
// allocatable memory, lowered to the pod's memory limit when the pod has one
// (every container declares a memory limit, or a pod-level limit is set), then
// to the volume's sizeLimit; each only when 0 < value <= the current size.
// Secrets' tmpfs (no sizeLimit) use the same rule.
func (m *Manager) emptyDirMemorySize(pod *v1.Pod, vol *v1.Volume) int64 {
	size := resource.NewQuantity(m.nodeAllocatable, resource.BinarySI)
	if lim := podMemoryLimit(pod); lim != nil && lim.Sign() > 0 && lim.Cmp(*size) <= 0 {
		size = lim
	}
	if vol.EmptyDir != nil && vol.EmptyDir.SizeLimit != nil {
		if l := vol.EmptyDir.SizeLimit; l.Sign() > 0 && l.Cmp(*size) <= 0 {
			size = l
		}
	}
	return size.Value()
}

// podMemoryLimit is the memory limit kubelet gives the pod's cgroup
// (cm.ResourceConfigForPod), or nil when the pod has none.
func podMemoryLimit(pod *v1.Pod) *resource.Quantity {
	podLevel := utilfeature.DefaultFeatureGate.Enabled(features.PodLevelResources)
	declared := true
	for _, cs := range [][]v1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for i := range cs {
			if cs[i].Resources.Limits.Memory().IsZero() {
				declared = false
			}
		}
	}
	if podLevel && resourcehelper.IsPodLevelResourcesSet(pod) && !pod.Spec.Resources.Limits.Memory().IsZero() {
		declared = true
	}
	if !declared {
		return nil
	}
	lim, ok := resourcehelper.PodLimits(pod, resourcehelper.PodResourcesOptions{SkipPodLevelResources: !podLevel})[v1.ResourceMemory]
	if !ok {
		return nil
	}
	return &lim
}
