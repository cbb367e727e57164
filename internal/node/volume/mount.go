package volume

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// mountsUnder returns the mount points strictly below dir or at dir.
func mountsUnder(dir string) ([]string, error) {
	infos, err := mountinfo.GetMounts(func(i *mountinfo.Info) (skip, stop bool) {
		return i.Mountpoint != dir && !strings.HasPrefix(i.Mountpoint, dir+"/"), false
	})
	if err != nil {
		return nil, fmt.Errorf("read mount table: %w", err)
	}
	out := make([]string, 0, len(infos))
	for _, i := range infos {
		out = append(out, i.Mountpoint)
	}
	return out, nil
}

// isTmpfs reports whether dir itself is a tmpfs mount point. It asks the
// kernel about dir alone (statfs, and mountinfo.Mounted's openat2 fast path)
// rather than parsing the mount table, which grows with every pod.
func isTmpfs(dir string) (bool, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return false, &os.PathError{Op: "statfs", Path: dir, Err: err}
	}
	if st.Type != unix.TMPFS_MAGIC {
		return false, nil
	}
	return mountinfo.Mounted(dir)
}

// mountTmpfs mounts a tmpfs on dir as kubelet's emptyDir plugin does: source
// "tmpfs", no flags, "size=<bytes>" when size > 0 and "noswap" when the
// kernel knows it (Linux ≥ 6.4; kubelet checks the version, we try it).
func mountTmpfs(dir string, size int64) error {
	var opts []string
	if size > 0 {
		opts = append(opts, "size="+strconv.FormatInt(size, 10))
	}
	err := unix.Mount("tmpfs", dir, "tmpfs", 0, strings.Join(append(opts, "noswap"), ","))
	if errors.Is(err, unix.EINVAL) {
		err = unix.Mount("tmpfs", dir, "tmpfs", 0, strings.Join(opts, ","))
	}
	if err != nil {
		return &os.PathError{Op: "mount tmpfs", Path: dir, Err: err}
	}
	return nil
}

// unmount unmounts dir, lazily when it is busy (a process still has a file
// open on it), so teardown never blocks on a lingering process.
func unmount(dir string) error {
	err := unix.Unmount(dir, unix.UMOUNT_NOFOLLOW)
	if errors.Is(err, unix.EBUSY) {
		err = unix.Unmount(dir, unix.MNT_DETACH|unix.UMOUNT_NOFOLLOW)
	}
	if err != nil && !errors.Is(err, unix.EINVAL) { // EINVAL: no longer a mount point
		return &os.PathError{Op: "unmount", Path: dir, Err: err}
	}
	return nil
}
