package volume

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"syscall"
)

// EmptyDirUsage returns the bytes an emptyDir volume of a pod takes on
// disk, counted as kubelet's volume metrics count them when no quota is
// set (pkg/volume/util/fs.DiskUsage): 512-byte blocks of every file and
// directory, hard links once, nothing on another filesystem. A volume
// not set up yet uses 0 bytes.
func (m *Manager) EmptyDirUsage(podUID, name string) (int64, error) {
	if err := validUID(podUID); err != nil {
		return 0, fmt.Errorf("measure emptyDir %q: %w", name, err)
	}
	dir := filepath.Join(m.podDir(podUID), "volumes", emptyDirPluginDir, name)
	n, err := diskUsage(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("measure emptyDir %q of pod %s: %w", name, podUID, err)
	}
	return n, nil
}

// diskUsage is the du of dir: what its files take on dir's filesystem.
func diskUsage(dir string) (int64, error) {
	var top syscall.Stat_t
	if err := syscall.Lstat(dir, &top); err != nil {
		return 0, &fs.PathError{Op: "lstat", Path: dir, Err: err}
	}
	seen := map[uint64]bool{}
	var total int64
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil // removed while we walk
		}
		if err != nil {
			return err
		}
		info, err := d.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		st, ok := info.Sys().(*syscall.Stat_t)
		if !ok {
			return fmt.Errorf("stat %s: no stat_t", path)
		}
		if st.Dev != top.Dev {
			return filepath.SkipDir
		}
		if st.Nlink > 1 && !d.IsDir() {
			if seen[st.Ino] {
				return nil
			}
			seen[st.Ino] = true
		}
		total += st.Blocks * 512
		return nil
	})
	return total, err
}
