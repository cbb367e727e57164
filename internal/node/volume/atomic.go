package volume

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"k8s.io/klog/v2"
	volumeutil "k8s.io/kubernetes/pkg/volume/util"
)

// FileProjection is one file of a payload: its bytes, its mode and, when
// set, its owner. It is upstream's type, so payloads built by upstream
// helpers (configmap.MakePayload, downwardapi.CollectData) can be used as is.
type FileProjection = volumeutil.FileProjection

// dataDirName is the symlink the atomic writer swaps; consumers may watch it
// with inotify.
const dataDirName = "..data"

// WriteAtomic writes payload (relative path → file) into dir, which must
// exist, with upstream kubelet's AtomicWriter (atomic_writer.go: a copy
// that keeps the previous directory until the next write): the files go to a new hidden
// directory ..<UTC timestamp>.<random>, the ..data symlink is swapped to it by
// renaming a ..data_tmp symlink, every first path component is a symlink
// ..data/<name>, the directory before the previous one is removed, and entries no longer in
// the payload disappear. When the bytes of every file are unchanged and
// nothing must be removed, nothing is written (a mode-only change is not a
// change, as upstream). setPerms, if not nil, is called with the new
// directory's name before the swap (kubelet applies fsGroup there).
// WriteAtomic reports whether a new directory was swapped in. Concurrent
// calls on one dir must be serialised by the caller.
func WriteAtomic(ctx context.Context, dir string, payload map[string]FileProjection, setPerms func(subPath string) error) (bool, error) {
	logger := klog.FromContext(ctx)
	before, err := os.Readlink(filepath.Join(dir, dataDirName))
	if err != nil && !os.IsNotExist(err) {
		return false, fmt.Errorf("read data link in %s: %w", dir, err)
	}
	w, err := NewAtomicWriter(dir, dir)
	if err != nil {
		return false, fmt.Errorf("create atomic writer for %s: %w", dir, err)
	}
	if err := w.Write(payload, setPerms); err != nil {
		return false, fmt.Errorf("write payload to %s: %w", dir, err)
	}
	after, err := os.Readlink(filepath.Join(dir, dataDirName))
	if err != nil {
		return false, fmt.Errorf("read data link in %s: %w", dir, err)
	}
	changed := before != after
	logger.V(4).Info("Wrote volume payload", "dir", dir, "files", len(payload), "changed", changed, "dataDir", after)
	return changed, nil
}
