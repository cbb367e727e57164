package volume

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"syscall"

	v1 "k8s.io/api/core/v1"
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
	n, _, err := DiskUsage(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("measure emptyDir %q of pod %s: %w", name, podUID, err)
	}
	return n, nil
}

// DiskUsage is the du of dir: the bytes its files take on dir's
// filesystem and the inodes they use (kubelet's fs.DiskUsage and
// fs.Find), hard links once, nothing on another filesystem.
func DiskUsage(dir string) (bytes, inodes int64, err error) {
	var top syscall.Stat_t
	if err := syscall.Lstat(dir, &top); err != nil {
		return 0, 0, &fs.PathError{Op: "lstat", Path: dir, Err: err}
	}
	seen := map[uint64]bool{}
	var total int64
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
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
		inodes++
		return nil
	})
	return total, inodes, err
}

// VolumePath returns where the agent keeps vol of the pod podUID, for the
// volumes whose files it writes under the pod's directory: emptyDir,
// configMap, secret, downwardAPI and projected; false for the others.
func (m *Manager) VolumePath(podUID string, vol *v1.Volume) (string, bool) {
	var plugin string
	switch {
	case vol.EmptyDir != nil:
		plugin = emptyDirPluginDir
	case vol.ConfigMap != nil:
		plugin = configMapPluginDir
	case vol.Secret != nil:
		plugin = secretPluginDir
	case vol.DownwardAPI != nil:
		plugin = downwardAPIPluginDir
	case vol.Projected != nil:
		plugin = projectedPluginDir
	default:
		return "", false
	}
	if validUID(podUID) != nil {
		return "", false
	}
	return filepath.Join(m.podDir(podUID), "volumes", plugin, vol.Name), true
}
