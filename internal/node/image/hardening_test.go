package image

import (
	"archive/tar"
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sys/unix"
	"k8s.io/klog/v2/ktesting"
)

// poisonedArchive writes an OCI archive of one image, docker.io/library/
// evil:v1, whose only layer is the uncompressed tar layer. claims maps
// "layer", "config" and "manifest" to digests those blobs claim instead of
// their own: the archive stores them under the claimed digests.
func poisonedArchive(t testing.TB, layer []byte, claims map[string]v1.Hash) string {
	t.Helper()
	dir := t.TempDir()
	blobs := filepath.Join(dir, "blobs", "sha256")
	if err := os.MkdirAll(blobs, 0o755); err != nil {
		t.Fatal(err)
	}
	blob := func(kind string, data []byte) v1.Hash {
		h, _, err := v1.SHA256(bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		if c, ok := claims[kind]; ok {
			h = c
		}
		if err := os.WriteFile(filepath.Join(blobs, h.Hex), data, 0o644); err != nil {
			t.Fatal(err)
		}
		return h
	}
	marshal := func(v any) []byte {
		data, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	diffID, _, _ := v1.SHA256(bytes.NewReader(layer))
	cfg := marshal(v1.ConfigFile{
		OS: "linux", Architecture: runtime.GOARCH, Config: v1.Config{Cmd: []string{"sh"}},
		RootFS: v1.RootFS{Type: "layers", DiffIDs: []v1.Hash{diffID}},
	})
	man := marshal(v1.Manifest{
		SchemaVersion: 2, MediaType: types.OCIManifestSchema1,
		Config: v1.Descriptor{MediaType: types.OCIConfigJSON, Digest: blob("config", cfg), Size: int64(len(cfg))},
		Layers: []v1.Descriptor{{MediaType: types.OCIUncompressedLayer, Digest: blob("layer", layer), Size: int64(len(layer))}},
	})
	index := marshal(v1.IndexManifest{
		SchemaVersion: 2, MediaType: types.OCIImageIndex,
		Manifests: []v1.Descriptor{{
			MediaType: types.OCIManifestSchema1, Digest: blob("manifest", man), Size: int64(len(man)),
			Annotations: map[string]string{annotationContainerdName: "docker.io/library/evil:v1"},
		}},
	})
	if err := os.WriteFile(filepath.Join(dir, "index.json"), index, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	return tarDir(t, dir)
}

func loadFile(t testing.TB, s *Store, path string) ([]Image, error) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	return s.Load(t.Context(), f)
}

// TestLoadRefusesBlobsNotMatchingTheirDigests loads archives whose blobs
// claim the digests of another image's layer, config or manifest, before
// and after that image is in the store: each is refused naming the claimed
// digest, the store is left as it was, and the genuine image keeps (or
// gets) its own content. Before, an archive whose layer claimed another
// image's digest was loaded, and its blob stayed in the store under that
// digest, where a later pull of the genuine image found it and failed.
func TestLoadRefusesBlobsNotMatchingTheirDigests(t *testing.T) {
	good := imageOf(t, []string{"sh"}, buildTar(t, entry{name: "which", body: "good"}))
	goodArchive := ociArchive(t, map[string]v1.Image{"good:v1": good})
	goodManifest, err := good.Digest()
	if err != nil {
		t.Fatal(err)
	}
	goodConfig, err := good.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	goodLayers, err := good.Layers()
	if err != nil {
		t.Fatal(err)
	}
	goodLayer, err := goodLayers[0].Digest()
	if err != nil {
		t.Fatal(err)
	}
	evilLayer := buildTar(t, entry{name: "which", body: "evil"})
	tests := []struct {
		name   string
		claims map[string]v1.Hash
		want   v1.Hash
	}{
		{"layer claims the good layer's digest", map[string]v1.Hash{"layer": goodLayer}, goodLayer},
		{"config claims the good image ID", map[string]v1.Hash{"config": goodConfig}, goodConfig},
		{"manifest claims the good manifest digest", map[string]v1.Hash{"manifest": goodManifest}, goodManifest},
		{"every blob claims the good image's", map[string]v1.Hash{"layer": goodLayer, "config": goodConfig, "manifest": goodManifest}, goodLayer},
	}
	checkGood := func(t *testing.T, s *Store) {
		t.Helper()
		img, err := s.Get(t.Context(), "good:v1")
		if err != nil {
			t.Fatal(err)
		}
		rootfs, err := s.Rootfs(t.Context(), img)
		if err != nil {
			t.Fatal(err)
		}
		if data, err := os.ReadFile(filepath.Join(rootfs, "which")); err != nil || string(data) != "good" {
			t.Errorf("good:v1 has /which = %q, %v; want \"good\"", data, err)
		}
	}
	checkRefused := func(t *testing.T, err error, want v1.Hash) {
		t.Helper()
		var de *DigestError
		if !errors.As(err, &de) || !strings.Contains(err.Error(), want.String()) {
			t.Fatalf("Load(poisoned) err = %v, want a DigestError naming %s", err, want)
		}
	}
	for _, tt := range tests {
		t.Run(tt.name+", after the good image", func(t *testing.T) {
			s := newStore(t)
			if _, err := loadFile(t, s, goodArchive); err != nil {
				t.Fatal(err)
			}
			before := tree(t, s.Dir())
			_, err := loadFile(t, s, poisonedArchive(t, evilLayer, tt.claims))
			checkRefused(t, err, tt.want)
			if after := tree(t, s.Dir()); after != before {
				t.Errorf("the refused load changed the store:\nbefore:\n%s\nafter:\n%s", before, after)
			}
			checkGood(t, s)
		})
		t.Run(tt.name+", before the good image", func(t *testing.T) {
			s := newStore(t)
			_, err := loadFile(t, s, poisonedArchive(t, evilLayer, tt.claims))
			checkRefused(t, err, tt.want)
			if _, err := loadFile(t, s, goodArchive); err != nil {
				t.Fatal(err)
			}
			checkGood(t, s)
		})
	}
}

// TestLayerRefusesInvalidWhiteouts applies layers with the whiteout names
// containerd refuses (".wh.", ".wh..", ".wh..."): they would delete the
// directory they are in, or its parent, which for an entry at the top is
// the directory holding the root. Nothing outside the entry's directory
// may go; before, the store deleted whatever those names resolved to.
func TestLayerRefusesInvalidWhiteouts(t *testing.T) {
	for _, name := range []string{".wh.", ".wh..", ".wh...", "a/.wh..", "a/.wh...", "a/b/.wh..."} {
		t.Run(name, func(t *testing.T) {
			parent := t.TempDir()
			if err := os.WriteFile(filepath.Join(parent, "sibling"), []byte("s"), 0o644); err != nil {
				t.Fatal(err)
			}
			root := filepath.Join(parent, "root")
			if err := os.Mkdir(root, 0o755); err != nil {
				t.Fatal(err)
			}
			lower := buildTar(t, entry{name: "a/", typ: tar.TypeDir}, entry{name: "a/b/", typ: tar.TypeDir}, entry{name: "a/b/f", body: "f"}, entry{name: "top", body: "t"})
			if err := applyLayer(root, bytes.NewReader(lower)); err != nil {
				t.Fatal(err)
			}
			before := describe(t, root)
			err := applyLayer(root, bytes.NewReader(buildTar(t, entry{name: name})))
			var unsafe *UnsafeEntryError
			if !errors.As(err, &unsafe) || !strings.Contains(err.Error(), "invalid whiteout name") {
				t.Errorf("applyLayer(%q) err = %v, want an UnsafeEntryError: invalid whiteout name", name, err)
			}
			if _, err := os.Stat(filepath.Join(parent, "sibling")); err != nil {
				t.Errorf("the root's sibling is gone: %v", err)
			}
			if _, err := os.Stat(root); err != nil {
				t.Fatalf("the root is gone: %v", err)
			}
			if after := describe(t, root); after != before {
				t.Errorf("tree changed:\n%s\nwant:\n%s", after, before)
			}
		})
	}
}

// TestLayerTimesStayInRoot applies a layer that sets a file's mtime, then
// replaces the file's directory by a symlink to a host directory: the
// mtimes, set last, must not be set through the symlink on the host's file
// of the same name.
func TestLayerTimesStayInRoot(t *testing.T) {
	host := t.TempDir()
	victim := filepath.Join(host, "f")
	if err := os.WriteFile(victim, []byte("host"), 0o644); err != nil {
		t.Fatal(err)
	}
	hostTime := time.Date(2020, 5, 6, 7, 8, 9, 0, time.UTC)
	if err := os.Chtimes(victim, hostTime, hostTime); err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	layer := buildTar(t,
		entry{name: "d/", typ: tar.TypeDir},
		entry{name: "d/f", body: "layer"},
		entry{name: "d", typ: tar.TypeSymlink, link: host},
	)
	if err := applyLayer(root, bytes.NewReader(layer)); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(victim)
	if err != nil {
		t.Fatal(err)
	}
	if !fi.ModTime().Equal(hostTime) {
		t.Errorf("the host file's mtime changed to %v (the layer's is %v)", fi.ModTime(), fixtureTime)
	}
	if got := describe(t, root); got != "d Lrwxrwxrwx -> "+host {
		t.Errorf("tree = %q", got)
	}
}

// TestLayerRefusesOutOfRangeDeviceNumbers: Mkdev takes uint32s, so a
// larger number in the header would create another device than it names.
func TestLayerRefusesOutOfRangeDeviceNumbers(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("creating device nodes needs root")
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	// 1<<32 | 1 would be 0:1 (… or 1:3, /dev/null, with the minor too).
	if err := tw.WriteHeader(&tar.Header{Name: "null", Typeflag: tar.TypeChar, Mode: 0o666, Devmajor: 1<<32 | 1, Devminor: 3}); err != nil {
		t.Fatal(err)
	}
	tw.Close()
	root := t.TempDir()
	err := applyLayer(root, &buf)
	var unsafe *UnsafeEntryError
	if !errors.As(err, &unsafe) || !strings.Contains(err.Error(), "out of range") {
		t.Errorf("applyLayer err = %v, want an UnsafeEntryError: device number out of range", err)
	}
	if _, err := os.Lstat(filepath.Join(root, "null")); err == nil {
		t.Error("the device node was created")
	}
}

// TestImportStopsBeforeTheDiskIsFull imports a layer larger than the free
// space of a small tmpfs holding the store: Import fails with a
// DiskSpaceError (ENOSPC) before the disk fills, nothing of the layer
// stays, and the filesystem keeps its reserve free.
func TestImportStopsBeforeTheDiskIsFull(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	_, ctx := ktesting.NewTestContext(t)
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=16m"); err != nil {
		t.Skipf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() { _ = unix.Unmount(dir, unix.MNT_DETACH) })
	s, err := Open(ctx, Config{Dir: filepath.Join(dir, "images")})
	if err != nil {
		t.Fatal(err)
	}
	before := tree(t, s.Dir())
	// Incompressible, so the compressed blob is as large as the layer.
	big := make([]byte, 20<<20)
	if _, err := rand.Read(big); err != nil {
		t.Fatal(err)
	}
	_, err = s.Import(ctx, "big", bytes.NewReader(buildTar(t, entry{name: "big", body: string(big)})), ImportOptions{})
	var dse *DiskSpaceError
	if !errors.As(err, &dse) || !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), "not enough disk space") {
		t.Fatalf("Import(20 MiB on a 16 MiB disk) err = %v, want a DiskSpaceError", err)
	}
	t.Logf("Import: %v", err)
	if after := tree(t, s.Dir()); after != before {
		t.Errorf("the failed import left data behind:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	if free := int64(st.Bavail) * st.Bsize; free < 15<<20 {
		t.Errorf("%d bytes free after the failed import, want the space back", free)
	}
	// A layer that fits still does.
	if _, err := s.Import(ctx, "small", bytes.NewReader(buildTar(t, entry{name: "small", body: "s"})), ImportOptions{}); err != nil {
		t.Errorf("Import(small) = %v", err)
	}
}
