package volume

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"k8s.io/klog/v2"
	"k8s.io/kubernetes/pkg/volume/util/subpath"
	"k8s.io/kubernetes/pkg/volume/validation"
)

// subPathsDir is kubelet's <pod>/volume-subpaths: the bind mounts of the
// pod's subPaths, <volume>/<container>/<volumeMount index>.
const subPathsDir = "volume-subpaths"

// ErrCreateSubPath is wrapped by the errors of [Manager.PrepareSubPath]
// that come from creating a missing subPath directory; kubelet tells the
// user which of the two steps failed and nothing more.
var ErrCreateSubPath = errors.New("create subPath directory")

// ErrImageSubPath is wrapped by the error of [Manager.PrepareSubPath] for
// a subPath missing from an image volume, which is never created: the
// runtime fails such a container (kubelet leaves image subPaths to it).
var ErrImageSubPath = errors.New("image volume subPath does not exist")

// SubPath is one volumeMount of a container with a subPath, as kubelet's
// subpath.Subpath.
type SubPath struct {
	PodUID string
	// Container and Index (the volumeMount's position in the container's
	// volumeMounts) name the bind mount, so that each restart of the
	// container finds its own again.
	Container string
	Index     int
	// Volume is the volume's name and VolumePath its [Mounted.Path].
	Volume     string
	VolumePath string
	// Path is the subPath, already expanded: relative, without "..".
	Path string
	// Image is true for an image volume: a missing subPath is an error
	// wrapping ErrImageSubPath rather than a directory to create.
	Image bool
}

// PrepareSubPath makes sp's subPath a mount source a container cannot
// swap, as kubelet's makeMounts does with upstream's subpath package,
// and returns the path to give the runtime as the source instead of the
// subPath itself.
//
// A missing subPath is created as a directory with the mode of the volume
// root, one openat/mkdirat at a time so that no symlink is followed
// (SafeMakeDir). The subPath is then opened component by component from
// the volume root with O_NOFOLLOW, must lie inside the volume, and the
// opened file (/proc/<pid>/fd/N) is bind-mounted onto
// <PodsDir>/<uid>/volume-subpaths/<volume>/<container>/<index>: what the
// container does to the subPath's name afterwards no longer matters. That
// mount stays for the next start of the container (it is replaced if the
// subPath now names another file) and goes with [Manager.TeardownPod], as
// kubelet's CleanSubPaths runs when the pod's volumes are unmounted.
//
// An absolute subPath fails with "error SubPath `p` must not be an
// absolute path", a ".." element with "unable to provision SubPath `p`:
// must not contain '..'". A failed creation wraps [ErrCreateSubPath]; a
// subPath outside the volume fails with upstream's
// `subpath "/x" not within volume path "/vol"`.
func (m *Manager) PrepareSubPath(ctx context.Context, sp SubPath) (string, error) {
	if filepath.IsAbs(sp.Path) {
		return "", fmt.Errorf("error SubPath `%s` must not be an absolute path", sp.Path)
	}
	if err := validation.ValidatePathNoBacksteps(sp.Path); err != nil {
		return "", fmt.Errorf("unable to provision SubPath `%s`: %w", sp.Path, err)
	}
	if err := validUID(sp.PodUID); err != nil {
		return "", fmt.Errorf("prepare subPath: %w", err)
	}
	for _, name := range []string{sp.Volume, sp.Container} {
		if name == "" || name == "." || name == ".." || filepath.Base(name) != name {
			return "", fmt.Errorf("prepare subPath: invalid name %q", name)
		}
	}
	unlock := m.lockPod(sp.PodUID)
	defer unlock()

	full := filepath.Join(sp.VolumePath, sp.Path)
	if _, err := os.Stat(full); os.IsNotExist(err) && sp.Image {
		return "", fmt.Errorf("%w: %s", ErrImageSubPath, sp.Path)
	} else if os.IsNotExist(err) {
		fi, err := os.Stat(sp.VolumePath)
		if err != nil {
			return "", fmt.Errorf("read mode of volume %s: %w", sp.VolumePath, err)
		}
		// kubelet ignores EEXIST: the subPath may appear meanwhile, and
		// the safe open below decides whether it may be used.
		if err := m.subPaths.SafeMakeDir(sp.Path, sp.VolumePath, fi.Mode()); err != nil && !errors.Is(err, os.ErrExist) {
			return "", fmt.Errorf("%w %s in volume %s: %w", ErrCreateSubPath, sp.Path, sp.VolumePath, err)
		}
	}
	target, _, err := m.subPaths.PrepareSafeSubpath(subpath.Subpath{
		VolumeMountIndex: sp.Index,
		Path:             full,
		VolumeName:       sp.Volume,
		VolumePath:       sp.VolumePath,
		PodDir:           m.podDir(sp.PodUID),
		ContainerName:    sp.Container,
	})
	if err != nil {
		return "", err
	}
	klog.FromContext(ctx).V(4).Info("Prepared subPath", "podUID", sp.PodUID, "container", sp.Container, "volume", sp.Volume, "subPath", sp.Path, "source", target)
	return target, nil
}
