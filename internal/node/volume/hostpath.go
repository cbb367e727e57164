package volume

import (
	"fmt"
	"os"

	v1 "k8s.io/api/core/v1"
	"k8s.io/kubernetes/pkg/volume/util/hostutil"
	"k8s.io/kubernetes/pkg/volume/validation"
)

// setupHostPath checks a hostPath volume as kubelet's hostPathMounter.SetUp:
// no ".." element, then the type check. The volume is the host path itself.
func setupHostPath(src *v1.HostPathVolumeSource) (*Mounted, error) {
	if err := validation.ValidatePathNoBacksteps(src.Path); err != nil {
		return nil, fmt.Errorf("invalid HostPath `%s`: %v", src.Path, err)
	}
	if src.Type != nil && *src.Type != v1.HostPathUnset {
		if err := checkHostPathType(src.Path, *src.Type, hostutil.NewHostUtil()); err != nil {
			return nil, err
		}
	}
	return &Mounted{Path: src.Path}, nil
}

// fileTypes is the part of upstream's hostutil.HostUtils the check uses.
type fileTypes interface {
	PathExists(pathname string) (bool, error)
	GetFileType(pathname string) (hostutil.FileType, error)
}

// checkHostPathType is upstream's checkTypeInternal (pkg/volume/hostpath),
// which is unexported there. The texts are upstream's.
func checkHostPathType(path string, t v1.HostPathType, hu fileTypes) error {
	exists := func() bool {
		ok, err := hu.PathExists(path)
		return ok && err == nil
	}
	is := func(want hostutil.FileType) func() bool {
		return func() bool {
			got, err := hu.GetFileType(path)
			return err == nil && got == want
		}
	}
	matched := func(match func() bool, expected string) error {
		if match() {
			return nil
		}
		got, err := hu.GetFileType(path)
		if err != nil {
			return fmt.Errorf("hostPath type check failed, %s is not a %s, unable to determine its type: %w", path, expected, err)
		}
		return fmt.Errorf("hostPath type check failed: %s is not a %s, it's a %s", path, expected, got)
	}
	switch t {
	case v1.HostPathDirectoryOrCreate:
		if !exists() {
			// Parents are created too (MkdirAll), 0755.
			if err := os.MkdirAll(path, 0o755); err != nil && !os.IsExist(err) {
				return err
			}
			return nil
		}
		return matched(is(hostutil.FileTypeDirectory), "directory")
	case v1.HostPathDirectory:
		return matched(is(hostutil.FileTypeDirectory), "directory")
	case v1.HostPathFileOrCreate:
		if !exists() {
			// Upstream does not create the parent: a missing parent fails.
			f, err := os.OpenFile(path, os.O_CREATE, 0o644)
			if f != nil {
				f.Close()
			}
			if err != nil && !os.IsExist(err) {
				return err
			}
			return nil
		}
		return matched(is(hostutil.FileTypeFile), "file")
	case v1.HostPathFile:
		return matched(is(hostutil.FileTypeFile), "file")
	case v1.HostPathSocket:
		return matched(is(hostutil.FileTypeSocket), "socket file")
	case v1.HostPathCharDev:
		return matched(is(hostutil.FileTypeCharDev), "character device")
	case v1.HostPathBlockDev:
		return matched(is(hostutil.FileTypeBlockDev), "block device")
	default:
		return fmt.Errorf("%s is an invalid volume type", t)
	}
}
