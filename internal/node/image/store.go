package image

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sys/unix"
	"k8s.io/klog/v2"

	"github.com/pocketkube/pocketkube/internal/atomicfile"
)

// Annotations naming an image in index.json. containerd writes the first,
// the OCI image spec defines the second; the store writes both with the
// normalised name and reads either.
const (
	annotationContainerdName = "io.containerd.image.name"
	annotationRefName        = "org.opencontainers.image.ref.name"
)

// Config configures a Store.
type Config struct {
	// Dir is the store's directory (required). It is created if missing.
	Dir string
	// Transport is used for pulls; nil means http.DefaultTransport. Tests
	// pass an httptest server's transport.
	Transport http.RoundTripper
}

// Image is an image in the store.
type Image struct {
	// Name is the normalised reference, e.g. "docker.io/library/busybox:latest".
	Name string
	// ID is "sha256:<config digest>", what `crictl images` shows as IMAGE ID.
	ID string
	// Digest is "sha256:<manifest digest>"; kubelet's status.imageID is
	// <repository>@<Digest>.
	Digest string
	// Config is the image's runtime configuration (Env, Entrypoint, Cmd, ...).
	Config v1.Config
	// Size is the sum of the compressed layer sizes.
	Size int64
	// Created is when the image was built.
	Created time.Time
}

// Repository returns the image's name without tag or digest, e.g.
// "docker.io/library/busybox".
func (img Image) Repository() string { return repository(img.Name) }

// RepoDigest returns "<repository>@<digest>", what kubelet reports as a
// container's status.imageID.
func (img Image) RepoDigest() string { return img.Repository() + "@" + img.Digest }

// Store is an OCI image store in a directory. Its methods are safe for
// concurrent use, also by several processes on one directory.
type Store struct {
	dir       string
	transport http.RoundTripper

	mu       sync.Mutex
	index    *v1.IndexManifest
	indexKey indexKey
	meta     map[string]imageMeta // by manifest digest; content-addressed, never stale

	unpackMu sync.Mutex
	unpacks  map[string]*unpackCall // by image ID
}

type indexKey struct {
	ino   uint64
	size  int64
	mtime int64
}

type imageMeta struct {
	id      string
	config  v1.Config
	size    int64
	created time.Time
	layers  []v1.Descriptor
}

// Open opens the store in cfg.Dir, creating an empty one if needed. It logs
// through ctx's logger.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.Dir == "" {
		return nil, errors.New("open image store: Config.Dir is required")
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("open image store %s: %w", cfg.Dir, err)
	}
	if cfg.Transport == nil {
		cfg.Transport = http.DefaultTransport
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open image store %s: %w", dir, err)
	}
	// Containers' overlay mounts name root filesystems by the path Rootfs
	// returned; without symlinks in it, every process that opens the store
	// finds them in the mount table under the same path (inUse).
	if dir, err = filepath.EvalSymlinks(dir); err != nil {
		return nil, fmt.Errorf("open image store %s: %w", cfg.Dir, err)
	}
	s := &Store{dir: dir, transport: cfg.Transport, meta: map[string]imageMeta{}, unpacks: map[string]*unpackCall{}}
	for _, d := range []string{s.path("blobs", "sha256"), s.path("rootfs"), s.path("tmp"), s.path("locks")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("open image store %s: %w", dir, err)
		}
	}
	unlock, err := s.lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	if _, err := os.Stat(s.path("oci-layout")); errors.Is(err, fs.ErrNotExist) {
		if err := atomicfile.Write(s.path("oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644); err != nil {
			return nil, fmt.Errorf("open image store %s: %w", dir, err)
		}
	}
	if _, err := os.Stat(s.path("index.json")); errors.Is(err, fs.ErrNotExist) {
		if err := s.writeIndex(&v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex}); err != nil {
			return nil, fmt.Errorf("open image store %s: %w", dir, err)
		}
	}
	s.cleanTmp(klog.FromContext(ctx))
	return s, nil
}

// Dir returns the store's directory.
func (s *Store) Dir() string { return s.dir }

func (s *Store) path(elem ...string) string {
	return filepath.Join(append([]string{s.dir}, elem...)...)
}

func (s *Store) blobPath(h v1.Hash) string { return s.path("blobs", h.Algorithm, h.Hex) }

// lock takes the store's exclusive write lock. flock locks belong to the
// open file description, so this also excludes other goroutines of this
// process, each of which opens the file anew.
func (s *Store) lock() (func(), error) {
	return flock(s.path("lock"))
}

// lockIndex takes the store's lock and reads the index, for a change of
// it; the caller calls unlock when done.
func (s *Store) lockIndex() (im *v1.IndexManifest, unlock func(), err error) {
	unlock, err = s.lock()
	if err != nil {
		return nil, nil, err
	}
	im, err = s.readIndex()
	if err != nil {
		unlock()
		return nil, nil, err
	}
	return im, unlock, nil
}

func flock(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock %s: %w", path, err)
	}
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return func() {
		_ = unix.Flock(int(f.Fd()), unix.LOCK_UN)
		f.Close()
	}, nil
}

// tempDir creates a private directory under tmp/ and holds a flock on it
// until release, which also removes it. Open removes directories nobody
// holds: those of crashed processes.
func (s *Store) tempDir(prefix string) (dir string, release func(), err error) {
	dir, err = os.MkdirTemp(s.path("tmp"), prefix+"-")
	if err != nil {
		return "", nil, fmt.Errorf("create temporary directory: %w", err)
	}
	f, err := os.Open(dir)
	if err == nil {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
	}
	if err != nil {
		if f != nil {
			f.Close()
		}
		_ = removeAll(dir)
		return "", nil, fmt.Errorf("lock temporary directory %s: %w", dir, err)
	}
	return dir, func() {
		_ = removeAll(dir)
		f.Close()
	}, nil
}

// cleanTmp removes what crashed processes left in tmp/. The age check keeps
// it away from directories so new that their creator has yet to lock them.
func (s *Store) cleanTmp(logger klog.Logger) {
	entries, err := os.ReadDir(s.path("tmp"))
	if err != nil {
		return
	}
	for _, e := range entries {
		p := s.path("tmp", e.Name())
		fi, err := e.Info()
		if err != nil || time.Since(fi.ModTime()) < time.Minute {
			continue
		}
		f, err := os.Open(p)
		if err != nil {
			continue
		}
		if unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) == nil {
			logger.V(2).Info("Removing abandoned temporary directory", "path", p)
			_ = removeAll(p)
		}
		f.Close()
	}
}

// readIndex returns the current index, re-reading index.json when another
// process replaced it. The result must not be modified.
func (s *Store) readIndex() (*v1.IndexManifest, error) {
	f, err := os.Open(s.path("index.json"))
	if err != nil {
		return nil, fmt.Errorf("read image index: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("read image index: %w", err)
	}
	key := indexKey{size: fi.Size(), mtime: fi.ModTime().UnixNano()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		key.ino = st.Ino
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.index != nil && s.indexKey == key {
		return s.index, nil
	}
	var im v1.IndexManifest
	if err := json.NewDecoder(f).Decode(&im); err != nil {
		return nil, fmt.Errorf("read image index %s: %w", f.Name(), err)
	}
	s.index, s.indexKey = &im, key
	return &im, nil
}

// writeIndex replaces index.json atomically. The caller holds the lock.
func (s *Store) writeIndex(im *v1.IndexManifest) error {
	data, err := json.MarshalIndent(im, "", "  ")
	if err != nil {
		return fmt.Errorf("encode image index: %w", err)
	}
	if err := atomicfile.Write(s.path("index.json"), data, 0o644); err != nil {
		return fmt.Errorf("write image index: %w", err)
	}
	return nil
}

func descName(d v1.Descriptor) string {
	if n := d.Annotations[annotationContainerdName]; n != "" {
		return n
	}
	return d.Annotations[annotationRefName]
}

// meta returns what the store needs to know of a manifest, reading its
// manifest and config blobs once per Store.
func (s *Store) metaOf(digest v1.Hash) (imageMeta, error) {
	s.mu.Lock()
	m, ok := s.meta[digest.String()]
	s.mu.Unlock()
	if ok {
		return m, nil
	}
	raw, err := os.ReadFile(s.blobPath(digest))
	if err != nil {
		return imageMeta{}, fmt.Errorf("read manifest %s: %w", digest, err)
	}
	man, err := v1.ParseManifest(bytes.NewReader(raw))
	if err != nil {
		return imageMeta{}, fmt.Errorf("parse manifest %s: %w", digest, err)
	}
	rawCfg, err := os.ReadFile(s.blobPath(man.Config.Digest))
	if err != nil {
		return imageMeta{}, fmt.Errorf("read config of manifest %s: %w", digest, err)
	}
	cfg, err := v1.ParseConfigFile(bytes.NewReader(rawCfg))
	if err != nil {
		return imageMeta{}, fmt.Errorf("parse config of manifest %s: %w", digest, err)
	}
	m = imageMeta{id: man.Config.Digest.String(), config: cfg.Config, created: cfg.Created.Time, layers: man.Layers}
	for _, l := range man.Layers {
		m.size += l.Size
	}
	s.mu.Lock()
	s.meta[digest.String()] = m
	s.mu.Unlock()
	return m, nil
}

func (s *Store) imageOf(d v1.Descriptor) (Image, error) {
	m, err := s.metaOf(d.Digest)
	if err != nil {
		return Image{}, err
	}
	return Image{Name: descName(d), ID: m.id, Digest: d.Digest.String(), Config: m.config, Size: m.size, Created: m.created}, nil
}

// List returns every image in the store, sorted by Name.
func (s *Store) List(ctx context.Context) ([]Image, error) {
	im, err := s.readIndex()
	if err != nil {
		return nil, err
	}
	imgs := make([]Image, 0, len(im.Manifests))
	for _, d := range im.Manifests {
		if descName(d) == "" {
			continue
		}
		img, err := s.imageOf(d)
		if err != nil {
			klog.FromContext(ctx).Error(err, "Skipping unreadable image", "image", descName(d))
			continue
		}
		imgs = append(imgs, img)
	}
	sort.Slice(imgs, func(i, j int) bool { return imgs[i].Name < imgs[j].Name })
	return imgs, nil
}

// Get returns the image ref names. ref is a name (normalised first, so
// "busybox" finds "docker.io/library/busybox:latest"), a name with a digest
// ("repo@sha256:..."), an image ID or manifest digest ("sha256:<hex>"), or an
// unambiguous prefix of at least 12 hex digits of an image ID. It returns an
// error wrapping ErrNotFound when there is no such image.
func (s *Store) Get(ctx context.Context, ref string) (Image, error) {
	imgs, err := s.List(ctx)
	if err != nil {
		return Image{}, err
	}
	if img, ok, err := findByID(imgs, ref); ok || err != nil {
		return img, err
	}
	name, err := Normalize(ref)
	if err != nil {
		return Image{}, err
	}
	repo, dgst, isDigest := strings.Cut(name, "@")
	for _, img := range imgs {
		if img.Name == name || (isDigest && img.Repository() == repo && img.Digest == dgst) {
			return img, nil
		}
	}
	return Image{}, fmt.Errorf("get image %q: %w", ref, ErrNotFound)
}

func findByID(imgs []Image, ref string) (Image, bool, error) {
	hex := strings.TrimPrefix(ref, "sha256:")
	if len(hex) < 12 || len(hex) > 64 || strings.Trim(hex, "0123456789abcdef") != "" {
		return Image{}, false, nil
	}
	if len(hex) < 64 && !strings.HasPrefix(ref, "sha256:") && len(hex) != len(ref) {
		return Image{}, false, nil
	}
	var found []Image
	for _, img := range imgs {
		if strings.HasPrefix(strings.TrimPrefix(img.ID, "sha256:"), hex) ||
			(len(hex) == 64 && img.Digest == "sha256:"+hex) {
			found = append(found, img)
		}
	}
	if len(found) == 0 {
		if len(hex) == 64 {
			return Image{}, false, fmt.Errorf("get image %q: %w", ref, ErrNotFound)
		}
		return Image{}, false, nil
	}
	for _, img := range found[1:] {
		if img.ID != found[0].ID {
			return Image{}, false, fmt.Errorf("get image %q: prefix matches several images", ref)
		}
	}
	return found[0], true, nil
}

// Remove untags the image ref (a name, or an image ID, which removes every
// name of that image), then deletes blobs and unpacked root filesystems no
// image references and no container uses any more. It returns an error
// wrapping ErrNotFound when there is no such image, and an *InUseError,
// removing nothing, when containers use the image and ref is its last name
// (as docker and podman refuse; another name of it may go).
func (s *Store) Remove(ctx context.Context, ref string) error {
	img, err := s.Get(ctx, ref)
	if err != nil {
		return fmt.Errorf("remove image: %w", err)
	}
	byID := strings.TrimPrefix(ref, "sha256:") != ref || strings.HasPrefix(img.ID, "sha256:"+ref)
	im, unlock, err := s.lockIndex()
	if err != nil {
		return err
	}
	defer unlock()
	next := *im
	next.Manifests = nil
	for _, d := range im.Manifests {
		if descName(d) == img.Name || (byID && d.Digest.String() == img.Digest) {
			continue
		}
		next.Manifests = append(next.Manifests, d)
	}
	if err := s.checkUnused(img, &next); err != nil {
		return fmt.Errorf("remove image %q: %w", ref, err)
	}
	if err := s.writeIndex(&next); err != nil {
		return err
	}
	klog.FromContext(ctx).V(2).Info("Removed image", "image", img.Name, "id", img.ID)
	return s.gc(ctx, &next)
}

// checkUnused returns an *InUseError when no image of im has img's ID any
// more and containers use its root filesystem. The caller holds the lock.
func (s *Store) checkUnused(img Image, im *v1.IndexManifest) error {
	for _, d := range im.Manifests {
		if m, err := s.metaOf(d.Digest); err == nil && m.id == img.ID {
			return nil
		}
	}
	used, err := s.inUse()
	if err != nil {
		return err
	}
	if c := used[strings.TrimPrefix(img.ID, "sha256:")]; len(c) > 0 {
		return &InUseError{Containers: c}
	}
	return nil
}

// Collect deletes blobs and unpacked root filesystems that no image
// references and no container uses: those of images that were replaced or
// removed while containers used them. The node calls it after removing
// containers, as containerd collects garbage after deletions.
func (s *Store) Collect(ctx context.Context) error {
	im, unlock, err := s.lockIndex()
	if err != nil {
		return err
	}
	defer unlock()
	return s.gc(ctx, im)
}

// gc deletes blobs, root filesystems and unpack locks that no image in im
// references. The caller holds the lock.
func (s *Store) gc(ctx context.Context, im *v1.IndexManifest) error {
	keep := map[string]bool{}
	keepIDs := map[string]bool{}
	for _, d := range im.Manifests {
		keep[d.Digest.Hex] = true
		m, err := s.metaOf(d.Digest)
		if err != nil {
			// Keep everything rather than delete blobs of an image we
			// cannot read.
			return fmt.Errorf("collect garbage: %w", err)
		}
		id := strings.TrimPrefix(m.id, "sha256:")
		keep[id], keepIDs[id] = true, true
		for _, l := range m.layers {
			keep[l.Digest.Hex] = true
		}
	}
	// A root filesystem no image names may still be a container's lower
	// directory: deleting it would empty the running container's files.
	used, err := s.inUse()
	if err != nil {
		return fmt.Errorf("collect garbage: %w", err)
	}
	for id := range used {
		keepIDs[id] = true
	}
	logger := klog.FromContext(ctx)
	var errs []error
	remove := func(dir string, keep map[string]bool, all bool) {
		entries, err := os.ReadDir(dir)
		if err != nil {
			errs = append(errs, err)
			return
		}
		for _, e := range entries {
			if keep[e.Name()] || (!all && strings.HasPrefix(e.Name(), ".")) {
				continue
			}
			logger.V(4).Info("Deleting unreferenced image data", "path", filepath.Join(dir, e.Name()))
			if err := removeAll(filepath.Join(dir, e.Name())); err != nil {
				errs = append(errs, err)
			}
		}
	}
	remove(s.path("blobs", "sha256"), keep, false)
	errs = append(errs, s.removeRootfs(ctx, keepIDs))
	remove(s.path("locks"), keepIDs, true)
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("collect garbage: %w", err)
	}
	return nil
}

// removeRootfs deletes the root filesystems not in keep. A container that
// mounted one after inUse looked would lose its files, so each is first
// renamed away (a mount from then on fails instead of seeing it half
// deleted), and put back if the mount table now shows it in use.
func (s *Store) removeRootfs(ctx context.Context, keep map[string]bool) error {
	entries, err := os.ReadDir(s.path("rootfs"))
	if err != nil {
		return err
	}
	var gone []string
	for _, e := range entries {
		if keep[e.Name()] || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		gone = append(gone, e.Name())
	}
	if len(gone) == 0 {
		return nil
	}
	tmp, release, err := s.tempDir("gc")
	if err != nil {
		return err
	}
	defer release() // deletes what is still in tmp
	var errs []error
	var moved []string
	for _, id := range gone {
		if err := os.Rename(s.path("rootfs", id), filepath.Join(tmp, id)); err != nil {
			errs = append(errs, err)
			continue
		}
		moved = append(moved, id)
	}
	used, err := s.inUse()
	for _, id := range moved {
		if err != nil || len(used[id]) > 0 {
			errs = append(errs, os.Rename(filepath.Join(tmp, id), s.path("rootfs", id)))
			continue
		}
		klog.FromContext(ctx).V(4).Info("Deleting unreferenced image data", "path", s.path("rootfs", id))
		errs = append(errs, removeAll(filepath.Join(tmp, id)))
	}
	return errors.Join(append(errs, err)...)
}

// removeAll is os.RemoveAll that also copes with read-only directories in
// unpacked root filesystems.
func removeAll(path string) error {
	err := os.RemoveAll(path)
	if err == nil {
		return nil
	}
	_ = filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			_ = os.Chmod(p, 0o700)
		}
		return nil
	})
	return os.RemoveAll(path)
}
