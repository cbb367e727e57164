package runtime

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/pocketkube/pocketkube/internal/atomicfile"
)

// shimFiles holds shimbin/pocketkube-shim when `make build` put it there
// (the README is there so that the pattern always matches). An embed.FS is
// read-only, so this is no mutable state.
//
//go:embed shimbin/*
var shimFiles embed.FS

// shimBinaryName is the embedded shim's name in shimbin/ and the prefix of
// its extracted copies.
const shimBinaryName = "pocketkube-shim"

// embeddedShim returns the shim binary built into this binary; nil when it
// was built without `make build`.
func embeddedShim() []byte {
	b, err := shimFiles.ReadFile("shimbin/" + shimBinaryName)
	if err != nil {
		return nil
	}
	return b
}

// installShim writes bin to dir/pocketkube-shim-<sha256 prefix> with mode
// 0755 and returns that path. A file already there with the same content is
// reused; one with other content (a torn or tampered copy) is replaced, by a
// temporary file renamed into place, so a shim being started never sees a
// partial binary. Copies of other versions are removed: running shims keep
// their executable open, so this does not disturb them.
func installShim(dir string, bin []byte) (string, error) {
	sum := sha256.Sum256(bin)
	name := shimBinaryName + "-" + hex.EncodeToString(sum[:])[:16]
	path := filepath.Join(dir, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("install shim in %s: %w", dir, err)
	}
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, bin) {
		if st, err := os.Stat(path); err == nil && st.Mode().Perm() == 0o755 {
			removeOtherShims(dir, name)
			return path, nil
		}
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("install shim %s: %w", path, err)
	}
	if err := atomicfile.Write(path, bin, 0o755); err != nil {
		return "", fmt.Errorf("install shim: %w", err)
	}
	removeOtherShims(dir, name)
	return path, nil
}

// removeOtherShims removes the copies of other shim versions in dir, best
// effort. Temporary files are left alone: one may be another install's.
func removeOtherShims(dir, keep string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		n := e.Name()
		if n == keep || !strings.HasPrefix(n, shimBinaryName+"-") {
			continue
		}
		_ = os.Remove(filepath.Join(dir, n))
	}
}
