package image

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// entry is one tar entry of a test fixture.
type entry struct {
	name string
	typ  byte
	body string
	link string
	mode int64
}

var fixtureTime = time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)

func buildTar(t testing.TB, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		typ := e.typ
		if typ == 0 {
			typ = tar.TypeReg
		}
		mode := e.mode
		if mode == 0 {
			mode = 0o644
			if typ == tar.TypeDir {
				mode = 0o755
			}
		}
		hdr := &tar.Header{Name: e.name, Typeflag: typ, Linkname: e.link, Mode: mode, ModTime: fixtureTime, Uid: 0, Gid: 0}
		if typ == tar.TypeReg {
			hdr.Size = int64(len(e.body))
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if typ == tar.TypeReg {
			if _, err := io.WriteString(tw, e.body); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// busyboxRootfs is a root filesystem tar holding the host's static busybox
// and a few of its applet links.
func busyboxRootfs(t testing.TB) []byte {
	t.Helper()
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Skipf("needs a static busybox at /bin/busybox (Debian busybox-static): %v", err)
	}
	return buildTar(t,
		entry{name: "bin/", typ: tar.TypeDir},
		entry{name: "bin/busybox", body: string(bb), mode: 0o755},
		entry{name: "bin/sh", typ: tar.TypeSymlink, link: "busybox"},
		entry{name: "bin/ls", typ: tar.TypeSymlink, link: "/bin/busybox"},
		entry{name: "bin/cat", typ: tar.TypeLink, link: "bin/busybox"},
		entry{name: "etc/", typ: tar.TypeDir},
		entry{name: "etc/passwd", body: "root:x:0:0:root:/root:/bin/sh\n"},
		entry{name: "tmp/", typ: tar.TypeDir, mode: 0o1777},
		entry{name: "usr/bin/", typ: tar.TypeDir},
		entry{name: "usr/bin/env", typ: tar.TypeSymlink, link: "../../bin/busybox"},
		entry{name: "sbin/su", body: "setuid", mode: 0o4755},
	)
}

func newStore(t testing.TB) *Store {
	t.Helper()
	s, err := Open(t.Context(), Config{Dir: filepath.Join(t.TempDir(), "images")})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func layerOf(t testing.TB, tarball_ []byte) v1.Layer {
	t.Helper()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(tarball_)), nil })
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// imageOf builds a linux/GOARCH image of the given layer tars.
func imageOf(t testing.TB, cmd []string, layers ...[]byte) v1.Image {
	t.Helper()
	img := empty.Image
	for _, l := range layers {
		var err error
		if img, err = mutate.AppendLayers(img, layerOf(t, l)); err != nil {
			t.Fatal(err)
		}
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", runtime.GOARCH
	cf.Config.Cmd = cmd
	cf.Created = v1.Time{Time: fixtureTime}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// whiteoutImage has two layers: the second deletes a/gone with a whiteout
// and makes opq/ opaque.
func whiteoutImage(t testing.TB) v1.Image {
	return imageOf(t, []string{"sh"},
		buildTar(t,
			entry{name: "a/", typ: tar.TypeDir},
			entry{name: "a/keep", body: "keep"},
			entry{name: "a/gone", body: "gone"},
			entry{name: "opq/", typ: tar.TypeDir},
			entry{name: "opq/old", body: "old"},
			entry{name: "opq/sub/old2", body: "old2"},
		),
		buildTar(t,
			entry{name: "a/.wh.gone"},
			entry{name: "opq/new", body: "new"},
			entry{name: "opq/.wh..wh..opq"},
			entry{name: "a/added", body: "added"},
		),
	)
}

// dockerArchive writes images as `docker save` does.
func dockerArchive(t testing.TB, imgs map[string]v1.Image) string {
	t.Helper()
	refs := map[name.Reference]v1.Image{}
	for n, img := range imgs {
		tag, err := name.NewTag(n)
		if err != nil {
			t.Fatal(err)
		}
		refs[tag] = img
	}
	p := filepath.Join(t.TempDir(), "save.tar")
	if err := tarball.MultiRefWriteToFile(p, refs); err != nil {
		t.Fatal(err)
	}
	return p
}

// ociArchive writes images as an OCI image layout in a tar, named by
// containerd's annotation.
func ociArchive(t testing.TB, imgs map[string]v1.Image) string {
	t.Helper()
	dir := t.TempDir()
	lp, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	for n, img := range imgs {
		if err := lp.AppendImage(img, layout.WithAnnotations(map[string]string{
			annotationContainerdName: n, annotationRefName: n,
		})); err != nil {
			t.Fatal(err)
		}
	}
	return tarDir(t, dir)
}

func tarDir(t testing.TB, dir string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "oci.tar")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	if err := tw.AddFS(os.DirFS(dir)); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return p
}

// tree lists every path under dir with its type, mode and content digest,
// to compare a store before and after an operation.
func tree(t testing.TB, dir string) string {
	t.Helper()
	var lines []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		line := fmt.Sprintf("%s %v", rel, fi.Mode())
		if fi.Mode().IsRegular() && rel != "lock" {
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			line += fmt.Sprintf(" %x", sha256.Sum256(data))
		}
		lines = append(lines, line)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}
