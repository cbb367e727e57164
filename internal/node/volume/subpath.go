package volume

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"k8s.io/kubernetes/pkg/volume/util/subpath"
	"k8s.io/kubernetes/pkg/volume/validation"
	"k8s.io/mount-utils"
)

// SubPath resolves a volumeMount's subPath (already expanded by the agent)
// inside volumePath as kubelet's makeMounts does, and returns the resolved
// host path to bind-mount. An absolute subPath fails with
// "error SubPath `p` must not be an absolute path", a ".." element with
// "unable to provision SubPath `p`: must not contain '..'". A missing subPath
// is created as a directory with the mode of the volume root, without
// following symlinks out of the volume (upstream's SafeMakeDir). A subPath
// that resolves outside the volume through symlinks is refused; kubelet shows
// the user "failed to prepare subPath for volumeMount %q of container %q" for
// that and for a failed creation, which the agent should do as well.
func SubPath(volumePath, subPath string) (string, error) {
	if subPath == "" {
		return volumePath, nil
	}
	if filepath.IsAbs(subPath) {
		return "", fmt.Errorf("error SubPath `%s` must not be an absolute path", subPath)
	}
	if err := validation.ValidatePathNoBacksteps(subPath); err != nil {
		return "", fmt.Errorf("unable to provision SubPath `%s`: %w", subPath, err)
	}
	base, err := filepath.EvalSymlinks(volumePath)
	if err != nil {
		return "", fmt.Errorf("resolve volume path %s: %w", volumePath, err)
	}
	full := filepath.Join(volumePath, subPath)
	if _, err := os.Stat(full); os.IsNotExist(err) {
		fi, err := os.Stat(volumePath)
		if err != nil {
			return "", fmt.Errorf("read mode of volume %s: %w", volumePath, err)
		}
		// Upstream subpath.New ignores its mounter for SafeMakeDir.
		if err := subpath.New(mount.NewWithoutSystemd("")).SafeMakeDir(subPath, volumePath, fi.Mode()); err != nil && !errors.Is(err, os.ErrExist) {
			return "", fmt.Errorf("create subpath %q in volume %s: %w", subPath, volumePath, err)
		}
	}
	real, err := filepath.EvalSymlinks(full)
	if err != nil {
		return "", fmt.Errorf("resolve subpath %q in volume %s: %w", subPath, volumePath, err)
	}
	if !mount.PathWithinBase(real, base) {
		return "", fmt.Errorf("subpath %q not within volume path %q", real, base)
	}
	return real, nil
}
