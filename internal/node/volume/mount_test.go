package volume

import (
	"os"
	"path/filepath"
	"testing"
)

// A directory on a tmpfs is not a tmpfs mount point until one is mounted on
// it; a directory on another filesystem is neither.
func TestIsTmpfs(t *testing.T) {
	requireRoot(t)
	shm, err := os.MkdirTemp("/dev/shm", "istmpfs-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(shm)
	disk := t.TempDir()
	for _, dir := range []string{shm, disk} {
		if got, err := isTmpfs(dir); err != nil || got {
			t.Errorf("isTmpfs(%s) before mount = %v, %v; want false", dir, got, err)
		}
		sub := filepath.Join(dir, "vol")
		if err := os.Mkdir(sub, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := mountTmpfs(sub, 1<<20); err != nil {
			t.Fatal(err)
		}
		got, err := isTmpfs(sub)
		if err := unmount(sub); err != nil {
			t.Error(err)
		}
		if err != nil || !got {
			t.Errorf("isTmpfs(%s) mounted = %v, %v; want true", sub, got, err)
		}
	}
	if _, err := isTmpfs(filepath.Join(disk, "missing")); !os.IsNotExist(err) {
		t.Errorf("isTmpfs(missing) error = %v, want not-exist", err)
	}
}
