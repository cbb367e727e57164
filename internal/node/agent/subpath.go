package agent

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/pocketkube/pocketkube/internal/node/volume"
	v1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"
	"k8s.io/kubernetes/pkg/volume/validation"
	"k8s.io/kubernetes/third_party/forked/golang/expansion"
)

// expandSubPath is kubelet's subPathExpr expansion
// (ExpandContainerVolumeMounts): a missing or empty variable is an error.
func expandSubPath(expr string, env []v1.EnvVar) (string, error) {
	m := make(map[string]string, len(env))
	for _, e := range env {
		m[e.Name] = e.Value
	}
	var missing []string
	out := expansion.Expand(expr, func(name string) string {
		v, ok := m[name]
		if !ok || v == "" {
			missing = append(missing, name)
		}
		return v
	})
	if len(missing) > 0 {
		return "", fmt.Errorf("missing value for %s", strings.Join(missing, ", "))
	}
	if filepath.IsAbs(out) {
		return "", fmt.Errorf("error SubPath `%s` must not be an absolute path", out)
	}
	return out, nil
}

// subPathSource is the rest of kubelet's makeMounts for a volumeMount with
// a subPath (already expanded): the checks that name the subPath, then
// the volume manager's safe bind mount (volume.Manager.PrepareSubPath),
// whose source is what the runtime mounts. As kubelet, it logs why a
// subPath could not be prepared but tells the user only that it could
// not, since the reason may describe the host's filesystem.
func (a *Agent) subPathSource(ctx context.Context, pod *v1.Pod, c *v1.Container, index int, vol *volume.Mounted, sub string) (string, error) {
	if filepath.IsAbs(sub) {
		return "", fmt.Errorf("error SubPath `%s` must not be an absolute path", sub)
	}
	if err := validation.ValidatePathNoBacksteps(sub); err != nil {
		return "", fmt.Errorf("unable to provision SubPath `%s`: %w", sub, err)
	}
	vm := c.VolumeMounts[index]
	source, err := a.cfg.Volumes.PrepareSubPath(ctx, volume.SubPath{
		PodUID: string(pod.UID), Container: c.Name, Index: index,
		Volume: vm.Name, VolumePath: vol.Path, Path: sub, Image: isImageVolume(pod, vm.Name),
	})
	switch {
	case errors.Is(err, volume.ErrImageSubPath):
		// The runtime's error in kubelet (CreateContainerError).
		return "", runtimeError{err}
	case errors.Is(err, volume.ErrCreateSubPath):
		klog.FromContext(ctx).Error(err, "Failed to create subPath directory for volumeMount of the container", "pod", klog.KObj(pod), "containerName", c.Name, "volumeMountName", vm.Name)
		return "", fmt.Errorf("failed to create subPath directory for volumeMount %q of container %q", vm.Name, c.Name)
	case err != nil:
		klog.FromContext(ctx).Error(err, "Failed to prepare subPath for volumeMount of the container", "pod", klog.KObj(pod), "containerName", c.Name, "volumeMountName", vm.Name)
		return "", fmt.Errorf("failed to prepare subPath for volumeMount %q of container %q", vm.Name, c.Name)
	}
	return source, nil
}

// isImageVolume reports whether pod's volume name is an image volume.
func isImageVolume(pod *v1.Pod, name string) bool {
	for i := range pod.Spec.Volumes {
		if pod.Spec.Volumes[i].Name == name {
			return pod.Spec.Volumes[i].Image != nil
		}
	}
	return false
}
