package image

import (
	"fmt"
	"io"

	"golang.org/x/sys/unix"
)

const (
	// spaceRecheck is how much an operation writes between two looks at
	// the filesystem's free space, so that writers running at the same
	// time overshoot the reserve by at most this much each.
	spaceRecheck = 64 << 20
	// maxReserve caps the reserve of large filesystems.
	maxReserve = 1 << 30
)

// space keeps one operation's writes from filling the filesystem of dir.
// take(n) before n bytes are written fails with a *DiskSpaceError when
// fewer than n bytes would stay free above the reserve: 5% of the
// filesystem, at most 1 GiB. The node's eviction thresholds (kubelet's
// nodefs.available<10%) are above it, so the reserve is the last line, not
// the first: it is there so that an archive or a layer larger than the disk
// fails cleanly, and etcd and the pods keep room to write. A space is used
// by one goroutine.
type space struct {
	dir   string
	avail int64 // what may still be written before looking again
}

func newSpace(dir string) *space { return &space{dir: dir} }

// take accounts for n more bytes written for what.
func (sp *space) take(n int64, what string) error {
	if n <= sp.avail {
		sp.avail -= n
		return nil
	}
	var st unix.Statfs_t
	if err := unix.Statfs(sp.dir, &st); err != nil {
		return fmt.Errorf("check free disk space of %s: %w", sp.dir, err)
	}
	free := int64(st.Bavail) * st.Bsize
	reserve := min(int64(st.Blocks)*st.Bsize/20, maxReserve)
	if n > free-reserve {
		sp.avail = 0
		return &DiskSpaceError{What: what, Dir: sp.dir, Need: n, Free: free, Reserve: reserve}
	}
	sp.avail = min(free-reserve, n+spaceRecheck) - n
	return nil
}

// writer returns w with every write taken from sp first.
func (sp *space) writer(w io.Writer, what string) io.Writer {
	return &spaceWriter{w: w, sp: sp, what: what}
}

type spaceWriter struct {
	w    io.Writer
	sp   *space
	what string
}

func (w *spaceWriter) Write(p []byte) (int, error) {
	if err := w.sp.take(int64(len(p)), w.what); err != nil {
		return 0, err
	}
	return w.w.Write(p)
}
