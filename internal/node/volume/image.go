package volume

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
	v1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"
)

// imagePluginDir holds the image volumes' mount points. kubelet has no
// plugin directory for them (the CRI runtime mounts the image); the name
// follows the others.
const imagePluginDir = "kubernetes.io~image"

// ImageSource gives the unpacked root filesystem of an image volume's
// image, which the agent pulled as the volume's pullPolicy says (kubelet
// pulls image volumes itself too, before it starts containers). Sources
// that can implement it.
type ImageSource interface {
	ImageRootfs(ctx context.Context, pod *v1.Pod, vol *v1.Volume) (string, error)
}

// setupImage mounts an image volume as containerd mounts its snapshot: the
// image's root filesystem, read-only, at
// <pod>/volumes/kubernetes.io~image/<name>. It is a read-only overlayfs
// whose lower directory is the root filesystem, so the image store sees
// the image in use (as by a container) and keeps its files while the pod
// runs; the second, empty lower directory is what an overlayfs without an
// upper directory needs. A subPath within the volume is prepared like any
// other (PrepareSubPath), from this mount.
func (m *Manager) setupImage(ctx context.Context, pod *v1.Pod, vol *v1.Volume, src Sources) (*Mounted, error) {
	images, ok := src.(ImageSource)
	if !ok {
		return nil, errors.New("image volumes are not available on this node")
	}
	rootfs, err := images.ImageRootfs(ctx, pod, vol)
	if err != nil {
		return nil, err
	}
	dir, err := m.volumeDir(string(pod.UID), imagePluginDir, vol.Name)
	if err != nil {
		return nil, err
	}
	mnt := &Mounted{Path: dir, ReadOnly: true}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, err
	}
	if mounted, err := mountinfo.Mounted(dir); err != nil {
		return nil, fmt.Errorf("cannot validate mount point: %s %v", dir, err)
	} else if mounted {
		return mnt, nil
	}
	empty := filepath.Join(filepath.Dir(dir), ".empty")
	if err := os.Mkdir(empty, 0o500); err != nil && !os.IsExist(err) {
		return nil, err
	}
	opts := "lowerdir=" + escapeOverlay(rootfs) + ":" + escapeOverlay(empty)
	if err := unix.Mount("overlay", dir, "overlay", unix.MS_RDONLY, opts); err != nil {
		return nil, &os.PathError{Op: "mount image " + vol.Image.Reference + " on", Path: dir, Err: err}
	}
	klog.FromContext(ctx).V(4).Info("Mounted image volume", "image", vol.Image.Reference, "rootfs", rootfs, "dir", dir)
	return mnt, nil
}

// escapeOverlay escapes the characters overlayfs splits lowerdir on.
func escapeOverlay(dir string) string {
	out := make([]byte, 0, len(dir))
	for i := 0; i < len(dir); i++ {
		if c := dir[i]; c == ':' || c == ',' || c == '\\' {
			out = append(out, '\\')
		}
		out = append(out, dir[i])
	}
	return string(out)
}
