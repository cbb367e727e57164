package image

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"k8s.io/klog/v2"
)

// staging is the private directory of one Import, Load or Pull. Blobs are
// written and every image is unpacked (which checks its layers) there
// without holding the store's lock; commit then moves the results into the
// store under the lock, in a few renames.
type staging struct {
	s       *Store
	dir     string
	release func()
	blobs   string // dir/blobs/sha256, an OCI layout's blob directory
	images  []stagedImage
	// verified holds the hex digests of the blobs in blobs whose content
	// is known to match: checked by verify, or written by this operation
	// with the digest computed on the way. Only those reach the store.
	verified map[string]bool
	space    *space
}

type stagedImage struct {
	name string
	desc v1.Descriptor
	id   v1.Hash
}

func (s *Store) newStaging(op string) (*staging, error) {
	dir, release, err := s.tempDir(op)
	if err != nil {
		return nil, err
	}
	st := &staging{
		s: s, dir: dir, release: release, blobs: filepath.Join(dir, "blobs", "sha256"),
		verified: map[string]bool{}, space: newSpace(dir),
	}
	if err := os.MkdirAll(st.blobs, 0o755); err != nil {
		st.close()
		return nil, fmt.Errorf("create staging directory: %w", err)
	}
	return st, nil
}

func (st *staging) close() { st.release() }

func (st *staging) rootfs(id v1.Hash) string { return filepath.Join(st.dir, "rootfs-"+id.Hex) }

// add records that the image manifest dgst, whose blobs are in st.blobs, is
// to be named name, and unpacks it unless the store or st already has its
// root filesystem. A layer the store refuses to unpack fails add.
func (st *staging) add(ctx context.Context, name string, dgst v1.Hash, mediaType types.MediaType, size int64) (Image, error) {
	if err := st.verify(dgst); err != nil {
		return Image{}, fmt.Errorf("add image %s: %w", name, err)
	}
	man, cfg, err := readManifest(st.blobs, dgst)
	if err != nil {
		return Image{}, fmt.Errorf("add image %s: %w", name, err)
	}
	// Every blob is checked before anything is unpacked or committed: the
	// store keeps one blob per digest and one root filesystem per image ID
	// (the config's digest), so a blob that only claims a digest would
	// become the content of every image that names it.
	for _, d := range append([]v1.Descriptor{man.Config}, man.Layers...) {
		if err := st.verify(d.Digest); err != nil {
			return Image{}, fmt.Errorf("add image %s: %w", name, err)
		}
	}
	id := man.Config.Digest
	if !exists(st.s.path("rootfs", id.Hex)) && !exists(st.rootfs(id)) {
		if err := unpack(ctx, st.blobs, man, cfg, st.rootfs(id), st.space); err != nil {
			return Image{}, fmt.Errorf("add image %s: %w", name, err)
		}
	}
	desc := v1.Descriptor{
		MediaType:   mediaType,
		Digest:      dgst,
		Size:        size,
		Annotations: map[string]string{annotationContainerdName: name, annotationRefName: name},
	}
	st.images = append(st.images, stagedImage{name: name, desc: desc, id: id})
	img := Image{Name: name, ID: id.String(), Digest: dgst.String(), Config: cfg.Config, Created: cfg.Created.Time}
	for _, l := range man.Layers {
		img.Size += l.Size
	}
	return img, nil
}

// commit moves the staged blobs and root filesystems into the store and
// names the staged images in its index, replacing images of the same names.
func (st *staging) commit(ctx context.Context) error {
	unlock, err := st.s.lock()
	if err != nil {
		return err
	}
	defer unlock()
	entries, err := os.ReadDir(st.blobs)
	if err != nil {
		return fmt.Errorf("commit images: %w", err)
	}
	for _, e := range entries {
		dst := filepath.Join(st.s.path("blobs", "sha256"), e.Name())
		if !st.verified[e.Name()] || exists(dst) {
			continue
		}
		if err := os.Rename(filepath.Join(st.blobs, e.Name()), dst); err != nil {
			return fmt.Errorf("commit images: %w", err)
		}
	}
	im, err := st.s.readIndex()
	if err != nil {
		return err
	}
	next := *im
	next.Manifests = nil
	replaced := map[string]bool{}
	for _, img := range st.images {
		replaced[img.name] = true
		if src := st.rootfs(img.id); exists(src) && !exists(st.s.path("rootfs", img.id.Hex)) {
			if err := os.Rename(src, st.s.path("rootfs", img.id.Hex)); err != nil {
				return fmt.Errorf("commit image %s: %w", img.name, err)
			}
		}
	}
	for _, d := range im.Manifests {
		if !replaced[descName(d)] {
			next.Manifests = append(next.Manifests, d)
		}
	}
	for i, img := range st.images {
		if slices.ContainsFunc(st.images[i+1:], func(later stagedImage) bool { return later.name == img.name }) {
			continue // an archive naming one tag twice: the last wins, as in docker load
		}
		next.Manifests = append(next.Manifests, img.desc)
		klog.FromContext(ctx).V(2).Info("Added image", "image", img.name, "id", img.id.String(), "digest", img.desc.Digest.String())
	}
	if err := st.s.writeIndex(&next); err != nil {
		return err
	}
	// The images are in: failing to collect what they replaced only costs
	// disk space until the next collection.
	if err := st.s.gc(ctx, &next); err != nil {
		klog.FromContext(ctx).Error(err, "Collecting replaced images")
	}
	return nil
}

// verify checks that the staged blob dgst has that digest, and records it
// as verified. A blob the operation wrote itself is not read again.
func (st *staging) verify(dgst v1.Hash) error {
	if dgst.Algorithm != "sha256" {
		return fmt.Errorf("blob %s: unsupported digest algorithm %q", dgst, dgst.Algorithm)
	}
	if st.verified[dgst.Hex] {
		return nil
	}
	if err := verifyBlob(filepath.Join(st.blobs, dgst.Hex), dgst); err != nil {
		return err
	}
	st.verified[dgst.Hex] = true
	return nil
}

// verifyBlob checks that the file path has the sha256 digest dgst.
func verifyBlob(path string, dgst v1.Hash) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("verify blob %s: %w", dgst, err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return fmt.Errorf("verify blob %s: %w", dgst, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != dgst.Hex {
		return &DigestError{Digest: dgst.String(), Actual: "sha256:" + got}
	}
	return nil
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return !errors.Is(err, fs.ErrNotExist)
}
