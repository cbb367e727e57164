// Package atomicfile replaces files whole: a reader, or the next start after
// a crash, sees either the old content or the new, never a part.
//
// It is the one write-temp-and-rename in pocketkube, with one exception: the
// per-container shim (internal/node/runtime/shim) keeps its own few lines,
// because the shim binary may import only the standard library and
// golang.org/x/sys (its package doc says why).
package atomicfile

import (
	"fmt"
	"os"
	"path/filepath"
)

// Write replaces path with data and mode by writing a temporary file in the
// same directory, syncing it and renaming it over path. After Write returns,
// the new content survives a crash of the host too.
func Write(path string, data []byte, mode os.FileMode) error {
	return write(path, data, mode, true)
}

// WriteUnsynced is Write without the fsync. A crash of the process still
// leaves the old content or the new; a crash of the host may leave an empty
// file. It is for state that is written on every pod or container start,
// where an fsync costs about 1.5 ms each, and that nothing outlives a
// reboot with anyway (runc containers, pod network namespaces).
func WriteUnsynced(path string, data []byte, mode os.FileMode) error {
	return write(path, data, mode, false)
}

func write(path string, data []byte, mode os.FileMode, sync bool) error {
	// The temporary name starts with "." so that readers listing the
	// directory can skip it, and is unique so that two writers (`pocketkube
	// images` beside `up`) never share one.
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name()) // after a successful rename this finds nothing
	err = tmp.Chmod(mode)
	if err == nil {
		_, err = tmp.Write(data)
	}
	if err == nil && sync {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
