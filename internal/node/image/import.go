package image

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/gzip"
)

// ImportOptions is the configuration of an imported image. Zero fields are
// left unset, as `docker import` leaves them.
type ImportOptions struct {
	Cmd        []string
	Entrypoint []string
	Env        []string
	WorkingDir string
	User       string
	// Created is the image's creation time; zero means now.
	Created time.Time
}

// Import adds an image named name (normalised; a tag, not a digest) whose
// only layer is the root filesystem tar rootfs (plain or gzip-compressed),
// as `docker import` does: os linux, architecture runtime.GOARCH, and the
// configuration in opts. The tar is checked and unpacked while it is read;
// an unsafe entry fails Import with an UnsafeEntryError and leaves the store
// unchanged.
func (s *Store) Import(ctx context.Context, name string, rootfs io.Reader, opts ImportOptions) (Image, error) {
	norm, err := Normalize(name)
	if err != nil {
		return Image{}, fmt.Errorf("import image: %w", err)
	}
	if strings.Contains(norm, "@") {
		return Image{}, fmt.Errorf("import image %q: a name for an imported image cannot have a digest", name)
	}
	st, err := s.newStaging("import")
	if err != nil {
		return Image{}, err
	}
	defer st.close()
	layer, err := st.importLayer(rootfs)
	if err != nil {
		return Image{}, fmt.Errorf("import image %s: %w", norm, err)
	}
	created := opts.Created
	if created.IsZero() {
		created = time.Now()
	}
	created = created.UTC()
	cfg := v1.ConfigFile{
		Architecture: runtime.GOARCH,
		OS:           "linux",
		Created:      v1.Time{Time: created},
		Config: v1.Config{
			Cmd: opts.Cmd, Entrypoint: opts.Entrypoint, Env: opts.Env,
			WorkingDir: opts.WorkingDir, User: opts.User,
		},
		RootFS:  v1.RootFS{Type: "layers", DiffIDs: []v1.Hash{layer.diffID}},
		History: []v1.History{{Created: v1.Time{Time: created}, CreatedBy: "pocketkube images import", Comment: "Imported from tarball"}},
	}
	cfgDesc, err := st.writeJSON(cfg, types.OCIConfigJSON)
	if err != nil {
		return Image{}, fmt.Errorf("import image %s: %w", norm, err)
	}
	man := v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		Config:        cfgDesc,
		Layers:        []v1.Descriptor{{MediaType: types.OCILayer, Digest: layer.digest, Size: layer.size}},
	}
	manDesc, err := st.writeJSON(man, types.OCIManifestSchema1)
	if err != nil {
		return Image{}, fmt.Errorf("import image %s: %w", norm, err)
	}
	if err := os.Rename(layer.rootfs, st.rootfs(cfgDesc.Digest)); err != nil {
		return Image{}, fmt.Errorf("import image %s: %w", norm, err)
	}
	img, err := st.add(ctx, norm, manDesc.Digest, manDesc.MediaType, manDesc.Size)
	if err != nil {
		return Image{}, err
	}
	if err := st.commit(ctx); err != nil {
		return Image{}, fmt.Errorf("import image %s: %w", norm, err)
	}
	return img, nil
}

type importedLayer struct {
	digest, diffID v1.Hash
	size           int64
	rootfs         string
}

// importLayer reads a root filesystem tar once: it unpacks it, and writes it
// gzip-compressed as a blob, computing both digests on the way.
func (st *staging) importLayer(r io.Reader) (importedLayer, error) {
	plain, closeFn, err := decompress(r)
	if err != nil {
		return importedLayer{}, err
	}
	defer closeFn()
	f, err := os.CreateTemp(st.dir, "layer-")
	if err != nil {
		return importedLayer{}, err
	}
	defer f.Close()
	compressed := &countingHash{h: sha256.New()}
	zw, err := gzip.NewWriterLevel(io.MultiWriter(st.space.writer(f, "the imported layer"), compressed), gzip.BestSpeed)
	if err != nil {
		return importedLayer{}, err
	}
	uncompressed := sha256.New()
	tee := io.TeeReader(plain, io.MultiWriter(uncompressed, zw))
	rootfs := filepath.Join(st.dir, "rootfs-import")
	if err := os.Mkdir(rootfs, 0o755); err != nil {
		return importedLayer{}, err
	}
	if err := applyLayerIn(rootfs, tee, st.space); err != nil {
		return importedLayer{}, err
	}
	if _, err := io.Copy(io.Discard, tee); err != nil {
		return importedLayer{}, fmt.Errorf("read tar: %w", err)
	}
	if err := zw.Close(); err != nil {
		return importedLayer{}, err
	}
	if err := f.Close(); err != nil {
		return importedLayer{}, err
	}
	l := importedLayer{
		digest: v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(compressed.h.Sum(nil))},
		diffID: v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(uncompressed.Sum(nil))},
		size:   compressed.n,
		rootfs: rootfs,
	}
	if err := os.Rename(f.Name(), filepath.Join(st.blobs, l.digest.Hex)); err != nil {
		return importedLayer{}, err
	}
	st.verified[l.digest.Hex] = true
	return l, nil
}

// writeJSON writes v as a blob and returns its descriptor.
func (st *staging) writeJSON(v any, mt types.MediaType) (v1.Descriptor, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return v1.Descriptor{}, err
	}
	sum := sha256.Sum256(data)
	d := v1.Descriptor{MediaType: mt, Size: int64(len(data)), Digest: v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}}
	if err := st.space.take(d.Size, "blob "+d.Digest.String()); err != nil {
		return v1.Descriptor{}, err
	}
	if err := os.WriteFile(filepath.Join(st.blobs, d.Digest.Hex), data, 0o644); err != nil {
		return v1.Descriptor{}, err
	}
	st.verified[d.Digest.Hex] = true
	return d, nil
}

type countingHash struct {
	h hash.Hash
	n int64
}

func (c *countingHash) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return c.h.Write(p)
}
