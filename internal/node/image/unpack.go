package image

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"golang.org/x/sys/unix"
	"k8s.io/klog/v2"
)

const (
	whiteoutPrefix = ".wh."
	whiteoutMeta   = ".wh..wh."
	whiteoutOpaque = ".wh..wh..opq"
	maxSymlinkHops = 255
)

var errEscape = errors.New("escapes the root")

type unpackCall struct {
	done chan struct{}
	path string
	err  error
}

// Rootfs returns the path of img's unpacked root filesystem: every layer
// applied in order, with OCI whiteouts. It is shared by every container of
// the image and must not be written to. The first call per image ID unpacks
// into a private directory and renames it into place; concurrent callers, in
// this process or others, wait for that one unpack.
func (s *Store) Rootfs(ctx context.Context, img Image) (string, error) {
	id, err := v1.NewHash(img.ID)
	if err != nil {
		return "", fmt.Errorf("unpack image %s: invalid image ID: %w", img.Name, err)
	}
	final := s.path("rootfs", id.Hex)
	if _, err := os.Lstat(final); err == nil {
		return final, nil
	}
	s.unpackMu.Lock()
	call, ok := s.unpacks[id.Hex]
	if !ok {
		call = &unpackCall{done: make(chan struct{})}
		s.unpacks[id.Hex] = call
		go func() {
			// Detached from ctx: other callers wait for this unpack too.
			call.path, call.err = s.unpackOnce(context.WithoutCancel(ctx), img, id)
			s.unpackMu.Lock()
			delete(s.unpacks, id.Hex)
			s.unpackMu.Unlock()
			close(call.done)
		}()
	}
	s.unpackMu.Unlock()
	select {
	case <-call.done:
		return call.path, call.err
	case <-ctx.Done():
		return "", fmt.Errorf("unpack image %s: %w", img.Name, ctx.Err())
	}
}

func (s *Store) unpackOnce(ctx context.Context, img Image, id v1.Hash) (string, error) {
	unlock, err := flock(s.path("locks", id.Hex))
	if err != nil {
		return "", err
	}
	defer unlock()
	final := s.path("rootfs", id.Hex)
	if _, err := os.Lstat(final); err == nil {
		return final, nil
	}
	dgst, err := v1.NewHash(img.Digest)
	if err != nil {
		return "", fmt.Errorf("unpack image %s: invalid digest: %w", img.Name, err)
	}
	man, cfg, err := readManifest(s.path("blobs", "sha256"), dgst)
	if err != nil {
		return "", fmt.Errorf("unpack image %s: %w", img.Name, err)
	}
	tmp, release, err := s.tempDir("rootfs-" + id.Hex[:12])
	if err != nil {
		return "", fmt.Errorf("unpack image %s: %w", img.Name, err)
	}
	defer release()
	start := time.Now()
	if err := unpack(ctx, s.path("blobs", "sha256"), man, cfg, filepath.Join(tmp, "rootfs"), newSpace(tmp)); err != nil {
		return "", fmt.Errorf("unpack image %s: %w", img.Name, err)
	}
	unlockStore, err := s.lock()
	if err != nil {
		return "", err
	}
	defer unlockStore()
	if _, err := os.Lstat(s.blobPath(dgst)); err != nil {
		return "", fmt.Errorf("unpack image %s: image was removed: %w", img.Name, ErrNotFound)
	}
	if err := os.Rename(filepath.Join(tmp, "rootfs"), final); err != nil {
		return "", fmt.Errorf("unpack image %s: %w", img.Name, err)
	}
	klog.FromContext(ctx).V(2).Info("Unpacked image", "image", img.Name, "id", img.ID, "duration", time.Since(start))
	return final, nil
}

// readManifest reads an image manifest and its config from a blob directory.
func readManifest(blobs string, dgst v1.Hash) (*v1.Manifest, *v1.ConfigFile, error) {
	raw, err := os.ReadFile(filepath.Join(blobs, dgst.Hex))
	if err != nil {
		return nil, nil, fmt.Errorf("read manifest: %w", err)
	}
	man, err := v1.ParseManifest(bytes.NewReader(raw))
	if err != nil {
		return nil, nil, fmt.Errorf("parse manifest %s: %w", dgst, err)
	}
	rawCfg, err := os.ReadFile(filepath.Join(blobs, man.Config.Digest.Hex))
	if err != nil {
		return nil, nil, fmt.Errorf("read config: %w", err)
	}
	cfg, err := v1.ParseConfigFile(bytes.NewReader(rawCfg))
	if err != nil {
		return nil, nil, fmt.Errorf("parse config %s: %w", man.Config.Digest, err)
	}
	if len(cfg.RootFS.DiffIDs) != len(man.Layers) {
		return nil, nil, fmt.Errorf("manifest %s has %d layers but its config %d diff IDs", dgst, len(man.Layers), len(cfg.RootFS.DiffIDs))
	}
	return man, cfg, nil
}

// unpack applies the layers of man, read from the blob directory blobs, to
// a new directory dest. Each layer's uncompressed digest is checked against
// the config's diff ID, so root filesystems of equal image IDs are equal.
func unpack(ctx context.Context, blobs string, man *v1.Manifest, cfg *v1.ConfigFile, dest string, sp *space) error {
	if err := os.Mkdir(dest, 0o755); err != nil {
		return err
	}
	for i, l := range man.Layers {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := unpackBlob(filepath.Join(blobs, l.Digest.Hex), cfg.RootFS.DiffIDs[i], dest, sp); err != nil {
			return fmt.Errorf("apply layer %s: %w", l.Digest, err)
		}
	}
	return nil
}

func unpackBlob(blob string, diffID v1.Hash, dest string, sp *space) error {
	r, closeFn, err := openDecompressed(blob)
	if err != nil {
		return err
	}
	defer closeFn()
	h := sha256.New()
	tr := io.TeeReader(r, h)
	if err := applyLayerIn(dest, tr, sp); err != nil {
		return err
	}
	if _, err := io.Copy(io.Discard, tr); err != nil {
		return err
	}
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != diffID.String() {
		return fmt.Errorf("layer content %s does not match diff ID %s", got, diffID)
	}
	return nil
}

const (
	gzipMagic = "\x1f\x8b"
	zstdMagic = "\x28\xb5\x2f\xfd"
)

func isCompressed(magic []byte) bool {
	return bytes.HasPrefix(magic, []byte(gzipMagic)) || bytes.HasPrefix(magic, []byte(zstdMagic))
}

// openDecompressed opens the file at path, uncompressed as by decompress;
// closeFn closes it.
func openDecompressed(path string) (r io.Reader, closeFn func(), err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	r, closeDecompressor, err := decompress(f)
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return r, func() { closeDecompressor(); f.Close() }, nil
}

// decompress returns r uncompressed: gzip and zstd are detected by their
// magic numbers, anything else is taken as a plain tar.
func decompress(r io.Reader) (io.Reader, func(), error) {
	br := bufio.NewReaderSize(r, 64<<10)
	magic, _ := br.Peek(4)
	switch {
	case bytes.HasPrefix(magic, []byte(gzipMagic)):
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, nil, fmt.Errorf("read gzip: %w", err)
		}
		return zr, func() { zr.Close() }, nil
	case bytes.HasPrefix(magic, []byte(zstdMagic)):
		zr, err := zstd.NewReader(br)
		if err != nil {
			return nil, nil, fmt.Errorf("read zstd: %w", err)
		}
		return zr, zr.Close, nil
	}
	return br, func() {}, nil
}

// extractor applies one layer to root.
type extractor struct {
	root    string
	isRoot  bool
	created map[string]bool // host paths created by this layer, and their parents
	times   []entryTime
	space   *space
}

type entryTime struct {
	path  string
	mtime time.Time
}

// applyLayer applies the uncompressed layer tar r to the directory root. It
// refuses, with an UnsafeEntryError, any entry that would create or follow a
// path outside root, and with a DiskSpaceError a file that would leave the
// filesystem short of its reserve.
func applyLayer(root string, r io.Reader) error {
	return applyLayerIn(root, r, newSpace(root))
}

// applyLayerIn is applyLayer taking what it writes from sp, which the
// operation's other writes share.
func applyLayerIn(root string, r io.Reader, sp *space) error {
	x := &extractor{root: root, isRoot: os.Geteuid() == 0, created: map[string]bool{}, space: sp}
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("read tar: %w", err)
		}
		if err := x.apply(hdr, tr); err != nil {
			var unsafe *UnsafeEntryError
			var short *DiskSpaceError
			if errors.As(err, &unsafe) || errors.As(err, &short) {
				return err
			}
			return fmt.Errorf("extract %q: %w", hdr.Name, err)
		}
	}
	// Directories last, so adding their children does not change them.
	// A later entry may have replaced a parent of an earlier one by a
	// symlink: the kernel would follow it out of the root.
	realDirs := map[string]bool{root: true}
	for i := len(x.times) - 1; i >= 0; i-- {
		t := x.times[i]
		if !x.realDir(filepath.Dir(t.path), realDirs) {
			continue
		}
		ts := []unix.Timespec{unix.NsecToTimespec(t.mtime.UnixNano()), unix.NsecToTimespec(t.mtime.UnixNano())}
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, t.path, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("set mtime of %s: %w", t.path, err)
		}
	}
	return nil
}

// cleanName validates a tar entry name and returns it relative to the root
// ("" for the root itself).
func cleanName(name string) (string, error) {
	if strings.HasPrefix(name, "/") {
		return "", &UnsafeEntryError{Entry: name, Reason: "absolute path"}
	}
	c := path.Clean(name)
	if c == ".." || strings.HasPrefix(c, "../") {
		return "", &UnsafeEntryError{Entry: name, Reason: "path escapes the root"}
	}
	if c == "." {
		return "", nil
	}
	return c, nil
}

func (x *extractor) apply(hdr *tar.Header, r io.Reader) error {
	if hdr.Typeflag == tar.TypeXGlobalHeader {
		return nil
	}
	name, err := cleanName(hdr.Name)
	if err != nil {
		return err
	}
	if name == "" {
		return nil
	}
	dir, base := path.Split(name)
	isWhiteout := strings.HasPrefix(base, whiteoutPrefix)
	if isWhiteout {
		// containerd's validateWhiteout: ".wh.", ".wh.." and ".wh..." would
		// delete the directory itself or its parent.
		if orig := strings.TrimPrefix(base, whiteoutPrefix); orig == "" || orig == "." || orig == ".." {
			return &UnsafeEntryError{Entry: hdr.Name, Reason: "invalid whiteout name: " + base}
		}
	}
	parent, err := x.resolveDir(dir, !isWhiteout)
	if errors.Is(err, errEscape) {
		return &UnsafeEntryError{Entry: hdr.Name, Reason: "a symlink in its path escapes the root"}
	}
	if isWhiteout && errors.Is(err, fs.ErrNotExist) {
		return nil // nothing to delete
	}
	if err != nil {
		return err
	}
	if base == whiteoutOpaque {
		return x.opaque(parent)
	}
	if strings.HasPrefix(base, whiteoutMeta) {
		return nil
	}
	if isWhiteout {
		return removeAll(filepath.Join(parent, strings.TrimPrefix(base, whiteoutPrefix)))
	}
	target := filepath.Join(parent, base)
	fi := hdr.FileInfo()
	mode := fi.Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)
	if old, err := os.Lstat(target); err == nil && !(old.IsDir() && hdr.Typeflag == tar.TypeDir) {
		if err := removeAll(target); err != nil {
			return err
		}
	}
	switch hdr.Typeflag {
	case tar.TypeDir:
		if !x.isRoot {
			mode |= 0o700 // so that we can still write into it
		}
		if err := os.Mkdir(target, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
	case tar.TypeReg, tar.TypeRegA: //nolint:staticcheck // TypeRegA is still written by old tars
		if err := x.space.take(hdr.Size, fmt.Sprintf("file %s of the layer", hdr.Name)); err != nil {
			return err
		}
		if err := copyToFile(target, os.O_EXCL|unix.O_NOFOLLOW, 0o600, r); err != nil {
			return err
		}
	case tar.TypeSymlink:
		if err := os.Symlink(hdr.Linkname, target); err != nil {
			return err
		}
	case tar.TypeLink:
		src, err := x.linkSource(hdr)
		if err != nil {
			return err
		}
		if err := unix.Linkat(unix.AT_FDCWD, src, unix.AT_FDCWD, target, 0); err != nil {
			return fmt.Errorf("link %s: %w", hdr.Linkname, err)
		}
		x.markCreated(target)
		return nil
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		typ := uint32(unix.S_IFIFO)
		switch hdr.Typeflag {
		case tar.TypeChar:
			typ = unix.S_IFCHR
		case tar.TypeBlock:
			typ = unix.S_IFBLK
		}
		if typ != unix.S_IFIFO && !x.isRoot {
			return &UnsafeEntryError{Entry: hdr.Name, Reason: "device nodes can only be created as root"}
		}
		// Mkdev would truncate them into another device (containerd).
		if hdr.Devmajor < 0 || hdr.Devmajor > math.MaxUint32 || hdr.Devminor < 0 || hdr.Devminor > math.MaxUint32 {
			return &UnsafeEntryError{Entry: hdr.Name, Reason: fmt.Sprintf("device number %d:%d out of range", hdr.Devmajor, hdr.Devminor)}
		}
		if err := unix.Mknod(target, typ|0o600, int(unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor)))); err != nil {
			return err
		}
	default:
		klog.Background().V(4).Info("Skipping unsupported tar entry", "entry", hdr.Name, "type", string(hdr.Typeflag))
		return nil
	}
	x.markCreated(target)
	if x.isRoot {
		if err := os.Lchown(target, hdr.Uid, hdr.Gid); err != nil {
			return err
		}
		for k, v := range hdr.PAXRecords {
			if attr, ok := strings.CutPrefix(k, "SCHILY.xattr."); ok {
				// trusted.overlay.* would steer the overlayfs the root
				// filesystem becomes a lower directory of; containerd
				// ignores every trusted.* attribute of a layer.
				if strings.HasPrefix(attr, "trusted.") {
					klog.Background().V(4).Info("Ignoring trusted xattr of tar entry", "entry", hdr.Name, "xattr", attr)
					continue
				}
				if err := unix.Lsetxattr(target, attr, []byte(v), 0); err != nil && !errors.Is(err, unix.ENOTSUP) {
					return fmt.Errorf("set xattr %s: %w", attr, err)
				}
			}
		}
	}
	if hdr.Typeflag != tar.TypeSymlink {
		// After Lchown, which clears the setuid and setgid bits.
		if err := os.Chmod(target, mode); err != nil {
			return err
		}
	}
	x.times = append(x.times, entryTime{path: target, mtime: hdr.ModTime})
	return nil
}

// realDir reports whether dir is a directory under the root reached without
// symlinks, caching the answers for dir and its parents in known.
func (x *extractor) realDir(dir string, known map[string]bool) bool {
	if ok, found := known[dir]; found {
		return ok
	}
	ok := false
	if len(dir) > len(x.root) && x.realDir(filepath.Dir(dir), known) {
		fi, err := os.Lstat(dir)
		ok = err == nil && fi.IsDir()
	}
	known[dir] = ok
	return ok
}

func (x *extractor) markCreated(p string) {
	for p != x.root && len(p) > len(x.root) && !x.created[p] {
		x.created[p] = true
		p = filepath.Dir(p)
	}
}

// opaque empties dir of everything lower layers put there, keeping what
// this layer already created.
func (x *extractor) opaque(dir string) error {
	x.markCreated(dir)
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == dir || x.created[p] {
			return nil
		}
		if err := removeAll(p); err != nil {
			return err
		}
		if d.IsDir() {
			return filepath.SkipDir
		}
		return nil
	})
}

// linkSource resolves a hardlink's target inside the root. The target's own
// last component is not followed: a hardlink to a symlink links the symlink.
func (x *extractor) linkSource(hdr *tar.Header) (string, error) {
	if strings.HasPrefix(hdr.Linkname, "/") {
		return "", &UnsafeEntryError{Entry: hdr.Name, Reason: fmt.Sprintf("hardlink target %q is an absolute path", hdr.Linkname)}
	}
	name := path.Clean(hdr.Linkname)
	if name == "." || name == ".." || strings.HasPrefix(name, "../") {
		return "", &UnsafeEntryError{Entry: hdr.Name, Reason: fmt.Sprintf("hardlink target %q escapes the root", hdr.Linkname)}
	}
	dir, base := path.Split(name)
	parent, err := x.resolveDir(dir, false)
	if errors.Is(err, errEscape) {
		return "", &UnsafeEntryError{Entry: hdr.Name, Reason: fmt.Sprintf("hardlink target %q escapes the root through a symlink", hdr.Linkname)}
	}
	if err != nil {
		return "", fmt.Errorf("hardlink target %q: %w", hdr.Linkname, err)
	}
	src := filepath.Join(parent, base)
	fi, err := os.Lstat(src)
	if err != nil {
		return "", fmt.Errorf("hardlink target %q: %w", hdr.Linkname, err)
	}
	if fi.IsDir() {
		return "", &UnsafeEntryError{Entry: hdr.Name, Reason: fmt.Sprintf("hardlink target %q is a directory", hdr.Linkname)}
	}
	return src, nil
}

// resolveDir returns the host path of the directory rel (slash-separated,
// relative to the root), following symlinks as the container would see them:
// absolute targets start again at the root, and a relative target that
// climbs above the root is errEscape. Missing directories are created when
// create is set. Nobody else writes into an unpack directory, so resolving
// first and creating afterwards is not racy.
func (x *extractor) resolveDir(rel string, create bool) (string, error) {
	todo := strings.Split(rel, "/")
	var cur []string
	hops := 0
	for len(todo) > 0 {
		c := todo[0]
		todo = todo[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			if len(cur) == 0 {
				return "", errEscape
			}
			cur = cur[:len(cur)-1]
			continue
		}
		p := filepath.Join(x.root, filepath.Join(cur...), c)
		fi, err := os.Lstat(p)
		switch {
		case errors.Is(err, fs.ErrNotExist) && create:
			if err := os.Mkdir(p, 0o755); err != nil {
				return "", err
			}
			x.markCreated(p)
		case err != nil:
			return "", err
		case fi.Mode()&fs.ModeSymlink != 0:
			if hops++; hops > maxSymlinkHops {
				return "", fmt.Errorf("too many levels of symlinks in %q", rel)
			}
			target, err := os.Readlink(p)
			if err != nil {
				return "", err
			}
			if strings.HasPrefix(target, "/") {
				cur = nil
			}
			todo = append(strings.Split(target, "/"), todo...)
			continue
		case !fi.IsDir():
			return "", fmt.Errorf("%s is not a directory", filepath.Join(append(cur, c)...))
		}
		cur = append(cur, c)
	}
	return filepath.Join(x.root, filepath.Join(cur...)), nil
}

// copyToFile creates the file path for writing, with the extra open flags
// and perm, and copies r into it.
func copyToFile(path string, flag int, perm os.FileMode, r io.Reader) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|flag, perm)
	if err != nil {
		return err
	}
	_, err = io.Copy(f, r)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
