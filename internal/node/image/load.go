package image

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"k8s.io/klog/v2"
)

// Load adds every tagged image of an archive, as `docker load` does. The
// archive is either what `docker save` writes (manifest.json with RepoTags)
// or an OCI image layout in a tar (index.json, images named by their
// io.containerd.image.name or org.opencontainers.image.ref.name
// annotations; an index entry that is itself an index contributes its
// linux/GOARCH image). Every image is unpacked, and so checked, before any
// is added: an unsafe layer fails Load and leaves the store unchanged.
func (s *Store) Load(ctx context.Context, archive io.Reader) ([]Image, error) {
	st, err := s.newStaging("load")
	if err != nil {
		return nil, err
	}
	defer st.close()
	path, err := st.spool(archive)
	if err != nil {
		return nil, fmt.Errorf("load images: read archive: %w", err)
	}
	named, err := st.readArchive(ctx, path)
	if err != nil {
		return nil, fmt.Errorf("load images: %w", err)
	}
	if len(named) == 0 {
		return nil, errors.New("load images: the archive has no tagged images")
	}
	// The images' blobs are copied out of the archive: together they are
	// about as large as it is (uncompressed layers are compressed).
	if fi, err := os.Stat(path); err == nil {
		if err := st.space.take(fi.Size(), "the archive's blobs"); err != nil {
			return nil, fmt.Errorf("load images: %w", err)
		}
	}
	lp := layout.Path(st.dir)
	var imgs []Image
	for _, n := range named {
		if err := lp.WriteImage(n.img); err != nil {
			return nil, fmt.Errorf("load image %s: %w", n.name, err)
		}
		dgst, err := n.img.Digest()
		if err != nil {
			return nil, fmt.Errorf("load image %s: %w", n.name, err)
		}
		mt, err := n.img.MediaType()
		if err != nil {
			return nil, fmt.Errorf("load image %s: %w", n.name, err)
		}
		size, err := n.img.Size()
		if err != nil {
			return nil, fmt.Errorf("load image %s: %w", n.name, err)
		}
		img, err := st.add(ctx, n.name, dgst, mt, size)
		if err != nil {
			return nil, err
		}
		imgs = append(imgs, img)
	}
	if err := st.commit(ctx); err != nil {
		return nil, fmt.Errorf("load images: %w", err)
	}
	return imgs, nil
}

type namedImage struct {
	name string
	img  v1.Image
}

// spool returns the path of the uncompressed archive, copying (and
// decompressing) it into the staging directory unless it already is a
// regular, uncompressed file.
func (st *staging) spool(r io.Reader) (string, error) {
	if f, ok := r.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
			magic := make([]byte, 4)
			n, _ := f.ReadAt(magic, 0)
			if !isCompressed(magic[:n]) {
				return f.Name(), nil
			}
		}
	}
	plain, closeFn, err := decompress(r)
	if err != nil {
		return "", err
	}
	defer closeFn()
	f, err := os.Create(filepath.Join(st.dir, "archive.tar"))
	if err != nil {
		return "", err
	}
	defer f.Close()
	if _, err := io.Copy(st.space.writer(f, "the archive"), plain); err != nil {
		return "", err
	}
	return f.Name(), f.Close()
}

// readArchive finds the images of a docker-save or OCI archive. OCI
// archives are extracted into the staging directory first.
func (st *staging) readArchive(ctx context.Context, path string) ([]namedImage, error) {
	files, err := tarFiles(path)
	if err != nil {
		return nil, err
	}
	switch {
	case files["manifest.json"]:
		return readDockerArchive(ctx, path)
	case files["index.json"]:
		dir := filepath.Join(st.dir, "oci")
		if err := extractPlain(path, dir, st.space); err != nil {
			return nil, err
		}
		// The layout reader takes blobs by the digests that name them.
		if err := verifyLayoutBlobs(dir); err != nil {
			return nil, err
		}
		return readOCILayout(ctx, dir)
	}
	return nil, fmt.Errorf("%s is neither a docker save archive (manifest.json) nor an OCI image layout (index.json)", path)
}

func tarFiles(path string) (map[string]bool, error) {
	r, closeFn, err := openDecompressed(path)
	if err != nil {
		return nil, err
	}
	defer closeFn()
	files := map[string]bool{}
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return files, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read archive %s: %w", path, err)
		}
		files[strings.TrimPrefix(hdr.Name, "./")] = true
	}
}

func readDockerArchive(ctx context.Context, path string) ([]namedImage, error) {
	opener := func() (io.ReadCloser, error) { return os.Open(path) }
	m, err := tarball.LoadManifest(opener)
	if err != nil {
		return nil, fmt.Errorf("read manifest.json of %s: %w", path, err)
	}
	var out []namedImage
	for _, d := range m {
		if len(d.RepoTags) == 0 {
			klog.FromContext(ctx).Info("Skipping untagged image in archive", "archive", path, "config", d.Config)
			continue
		}
		for _, rt := range d.RepoTags {
			norm, err := Normalize(rt)
			if err != nil {
				return nil, fmt.Errorf("archive %s: %w", path, err)
			}
			tag, err := name.NewTag(rt)
			if err != nil {
				return nil, fmt.Errorf("archive %s: invalid tag %q: %w", path, rt, err)
			}
			img, err := tarball.Image(opener, &tag)
			if err != nil {
				return nil, fmt.Errorf("read image %s from %s: %w", rt, path, err)
			}
			out = append(out, namedImage{name: norm, img: img})
		}
	}
	return out, nil
}

func readOCILayout(ctx context.Context, dir string) ([]namedImage, error) {
	ii, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		return nil, fmt.Errorf("read OCI image layout: %w", err)
	}
	im, err := ii.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("read OCI image layout: %w", err)
	}
	platform := v1.Platform{OS: "linux", Architecture: runtime.GOARCH}
	var out []namedImage
	for _, d := range im.Manifests {
		n := d.Annotations[annotationContainerdName]
		if ref := d.Annotations[annotationRefName]; n == "" && strings.ContainsAny(ref, "/:@") {
			n = ref
		}
		if n == "" {
			klog.FromContext(ctx).Info("Skipping unnamed image in archive", "digest", d.Digest.String())
			continue
		}
		norm, err := Normalize(n)
		if err != nil {
			return nil, fmt.Errorf("OCI archive: %w", err)
		}
		var img v1.Image
		if d.MediaType.IsIndex() {
			child, err := ii.ImageIndex(d.Digest)
			if err != nil {
				return nil, fmt.Errorf("read image %s: %w", n, err)
			}
			img, err = imageForPlatform(child, platform)
			if err != nil {
				return nil, fmt.Errorf("read image %s: %w", n, err)
			}
		} else if img, err = ii.Image(d.Digest); err != nil {
			return nil, fmt.Errorf("read image %s: %w", n, err)
		}
		out = append(out, namedImage{name: norm, img: img})
	}
	return out, nil
}

// verifyLayoutBlobs checks that every blob of the OCI image layout in dir
// has the digest its path names, so that no archive can claim the digest
// of another image's blob.
func verifyLayoutBlobs(dir string) error {
	algs, err := os.ReadDir(filepath.Join(dir, "blobs"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, alg := range algs {
		if alg.Name() != "sha256" {
			return fmt.Errorf("OCI archive: unsupported digest algorithm %q", alg.Name())
		}
		blobs, err := os.ReadDir(filepath.Join(dir, "blobs", alg.Name()))
		if err != nil {
			return err
		}
		for _, b := range blobs {
			if err := verifyBlob(filepath.Join(dir, "blobs", alg.Name(), b.Name()), v1.Hash{Algorithm: alg.Name(), Hex: b.Name()}); err != nil {
				return fmt.Errorf("OCI archive: %w", err)
			}
		}
	}
	return nil
}

func imageForPlatform(ii v1.ImageIndex, p v1.Platform) (v1.Image, error) {
	im, err := ii.IndexManifest()
	if err != nil {
		return nil, err
	}
	for _, d := range im.Manifests {
		if d.Platform != nil && d.Platform.OS == p.OS && d.Platform.Architecture == p.Architecture && d.MediaType.IsImage() {
			return ii.Image(d.Digest)
		}
	}
	return nil, fmt.Errorf("no image for platform %s/%s", p.OS, p.Architecture)
}

// extractPlain extracts an archive holding only regular files and
// directories, refusing any entry that would land outside dir or fill the
// disk.
func extractPlain(path, dir string, sp *space) error {
	r, closeFn, err := openDecompressed(path)
	if err != nil {
		return err
	}
	defer closeFn()
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read archive %s: %w", path, err)
		}
		rel, err := cleanName(hdr.Name)
		if err != nil {
			return err
		}
		target := filepath.Join(dir, rel)
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(target, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
				return err
			}
			if err := sp.take(hdr.Size, fmt.Sprintf("file %s of the archive", hdr.Name)); err != nil {
				return err
			}
			if err := copyToFile(target, os.O_TRUNC, 0o644, tr); err != nil {
				return err
			}
		default:
			return &UnsafeEntryError{Entry: hdr.Name, Reason: "an OCI archive may only hold regular files and directories"}
		}
	}
}
