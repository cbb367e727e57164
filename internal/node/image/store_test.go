package image

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"k8s.io/klog/v2/ktesting"
)

func TestImportListGetRootfsRemove(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	s := newStore(t)
	img, err := s.Import(ctx, "busybox", bytes.NewReader(busyboxRootfs(t)), ImportOptions{Cmd: []string{"sh"}, Env: []string{"PATH=/bin"}})
	if err != nil {
		t.Fatal(err)
	}
	if img.Name != "docker.io/library/busybox:latest" || !strings.HasPrefix(img.ID, "sha256:") || !strings.HasPrefix(img.Digest, "sha256:") {
		t.Errorf("Import = %+v", img)
	}
	if !slices.Equal(img.Config.Cmd, []string{"sh"}) || !slices.Equal(img.Config.Env, []string{"PATH=/bin"}) || img.Size == 0 {
		t.Errorf("Import config = %+v, size %d", img.Config, img.Size)
	}

	list, err := s.List(ctx)
	if err != nil || len(list) != 1 || list[0].ID != img.ID || list[0].Size != img.Size {
		t.Fatalf("List = %+v, %v", list, err)
	}
	for _, ref := range []string{"busybox", "busybox:latest", "docker.io/library/busybox:latest", img.ID,
		strings.TrimPrefix(img.ID, "sha256:")[:12], img.Digest, "busybox@" + img.Digest} {
		if got, err := s.Get(ctx, ref); err != nil || got.ID != img.ID {
			t.Errorf("Get(%q) = %+v, %v", ref, got, err)
		}
	}
	if _, err := s.Get(ctx, "busybox:other"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get(busybox:other) err = %v, want ErrNotFound", err)
	}

	rootfs, err := s.Rootfs(ctx, img)
	if err != nil {
		t.Fatal(err)
	}
	bb, _ := os.ReadFile("/bin/busybox")
	checkFile(t, rootfs, "bin/busybox", string(bb), 0o755)
	checkFile(t, rootfs, "etc/passwd", "root:x:0:0:root:/root:/bin/sh\n", 0o644)
	checkFile(t, rootfs, "sbin/su", "setuid", 0o755|fs.ModeSetuid)
	checkLink(t, rootfs, "bin/sh", "busybox")
	checkLink(t, rootfs, "bin/ls", "/bin/busybox")
	checkLink(t, rootfs, "usr/bin/env", "../../bin/busybox")
	if fi, err := os.Stat(filepath.Join(rootfs, "tmp")); err != nil || fi.Mode() != fs.ModeDir|fs.ModeSticky|0o777 {
		t.Errorf("tmp: %v, %v", fi.Mode(), err)
	}
	a, _ := os.Stat(filepath.Join(rootfs, "bin/busybox"))
	b, _ := os.Stat(filepath.Join(rootfs, "bin/cat"))
	if !os.SameFile(a, b) {
		t.Errorf("bin/cat is not a hardlink of bin/busybox")
	}
	if !a.ModTime().Equal(fixtureTime) {
		t.Errorf("bin/busybox mtime = %v, want %v", a.ModTime(), fixtureTime)
	}
	if fi, _ := os.Stat(filepath.Join(rootfs, "etc")); !fi.ModTime().Equal(fixtureTime) {
		t.Errorf("etc mtime = %v, want %v", fi.ModTime(), fixtureTime)
	}
	if again, err := s.Rootfs(ctx, img); err != nil || again != rootfs {
		t.Errorf("second Rootfs = %q, %v", again, err)
	}

	if err := s.Remove(ctx, "busybox"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "busybox"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get after Remove err = %v, want ErrNotFound", err)
	}
	for _, dir := range []string{"blobs/sha256", "rootfs", "tmp"} {
		if entries, _ := os.ReadDir(s.path(dir)); len(entries) != 0 {
			t.Errorf("%s after Remove holds %v", dir, entries)
		}
	}
	if err := s.Remove(ctx, "busybox"); !errors.Is(err, ErrNotFound) {
		t.Errorf("second Remove err = %v, want ErrNotFound", err)
	}
}

func checkFile(t *testing.T, root, name, content string, mode fs.FileMode) {
	t.Helper()
	p := filepath.Join(root, name)
	data, err := os.ReadFile(p)
	if err != nil {
		t.Errorf("read %s: %v", name, err)
		return
	}
	if string(data) != content {
		t.Errorf("%s holds %d bytes, want %d", name, len(data), len(content))
	}
	if fi, _ := os.Lstat(p); fi.Mode() != mode {
		t.Errorf("%s mode = %v, want %v", name, fi.Mode(), mode)
	}
}

func checkLink(t *testing.T, root, name, target string) {
	t.Helper()
	got, err := os.Readlink(filepath.Join(root, name))
	if err != nil || got != target {
		t.Errorf("%s -> %q, %v; want -> %q", name, got, err, target)
	}
}

func TestImportGzipAndRetag(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	s := newStore(t)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(buildTar(t, entry{name: "hello", body: "world"}))
	zw.Close()
	first, err := s.Import(ctx, "localhost:5000/hello:v1", &gz, ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if first.Name != "localhost:5000/hello:v1" {
		t.Errorf("Name = %q", first.Name)
	}
	rootfs, err := s.Rootfs(ctx, first)
	if err != nil {
		t.Fatal(err)
	}
	checkFile(t, rootfs, "hello", "world", 0o644)
	// Importing the same name again replaces the image and collects the old one.
	second, err := s.Import(ctx, "localhost:5000/hello:v1", bytes.NewReader(buildTar(t, entry{name: "bye", body: "x"})), ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if list, _ := s.List(ctx); len(list) != 1 || list[0].ID != second.ID {
		t.Errorf("List = %+v", list)
	}
	if _, err := os.Stat(rootfs); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("old rootfs still there: %v", err)
	}
	if _, err := s.Import(ctx, "Bad Name", bytes.NewReader(nil), ImportOptions{}); err == nil || !strings.Contains(err.Error(), `"Bad Name"`) {
		t.Errorf("Import(bad name) err = %v", err)
	}
}

func TestUnsafeTars(t *testing.T) {
	outside := t.TempDir()
	tests := []struct {
		name    string
		layers  [][]byte
		wantErr string
	}{
		{"absolute path", [][]byte{buildTar(t, entry{name: filepath.Join(outside, "abs"), body: "x"})}, "absolute path"},
		{"dotdot escape", [][]byte{buildTar(t, entry{name: "a/../../../../../../../../" + outside + "/x", body: "x"})}, "escapes the root"},
		{"symlink escape then write", [][]byte{buildTar(t,
			entry{name: "evil", typ: tar.TypeSymlink, link: "../../../../../../../../../.." + outside},
			entry{name: "evil/x", body: "x"},
		)}, `"evil/x"`},
		{"symlink in lower layer then write", [][]byte{
			buildTar(t, entry{name: "d/", typ: tar.TypeDir}, entry{name: "d/evil", typ: tar.TypeSymlink, link: "../.."}),
			buildTar(t, entry{name: "d/evil/tmp/x", body: "x"}),
		}, "symlink in its path escapes"},
		{"hardlink escape", [][]byte{buildTar(t, entry{name: "passwd", typ: tar.TypeLink, link: "../../../../../../etc/passwd"})}, "escapes the root"},
		{"absolute hardlink", [][]byte{buildTar(t, entry{name: "passwd", typ: tar.TypeLink, link: "/etc/passwd"})}, "absolute path"},
		{"hardlink through symlink", [][]byte{buildTar(t,
			entry{name: "etc", typ: tar.TypeSymlink, link: "../../../../../../../../etc"},
			entry{name: "passwd", typ: tar.TypeLink, link: "etc/passwd"},
		)}, "through a symlink"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, ctx := ktesting.NewTestContext(t)
			s := newStore(t)
			if _, err := s.Import(ctx, "seed", bytes.NewReader(buildTar(t, entry{name: "f", body: "seed"})), ImportOptions{}); err != nil {
				t.Fatal(err)
			}
			before := tree(t, s.Dir())
			check := func(op string, err error) {
				t.Helper()
				var unsafe *UnsafeEntryError
				if !errors.As(err, &unsafe) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("%s err = %v, want an UnsafeEntryError with %q", op, err, tt.wantErr)
				}
				if after := tree(t, s.Dir()); after != before {
					t.Errorf("%s changed the store:\nbefore:\n%s\nafter:\n%s", op, before, after)
				}
				if entries, _ := os.ReadDir(outside); len(entries) != 0 {
					t.Errorf("%s wrote outside the root: %v", op, entries)
				}
			}
			if len(tt.layers) == 1 {
				_, err := s.Import(ctx, "evil", bytes.NewReader(tt.layers[0]), ImportOptions{})
				check("Import", err)
			}
			archive := dockerArchive(t, map[string]v1.Image{"evil:latest": imageOf(t, nil, tt.layers...)})
			f, err := os.Open(archive)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			_, err = s.Load(ctx, f)
			check("Load", err)
		})
	}
}

func TestAbsoluteSymlinkStaysInRoot(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	s := newStore(t)
	outside := t.TempDir()
	img, err := s.Import(ctx, "abs", bytes.NewReader(buildTar(t,
		entry{name: "escape", typ: tar.TypeSymlink, link: outside},
		entry{name: "escape/x", body: "inside"},
	)), ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rootfs, err := s.Rootfs(ctx, img)
	if err != nil {
		t.Fatal(err)
	}
	checkFile(t, rootfs, filepath.Join(outside, "x"), "inside", 0o644)
	if entries, _ := os.ReadDir(outside); len(entries) != 0 {
		t.Errorf("wrote outside the root: %v", entries)
	}
}

func TestDeviceNodes(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("creating device nodes needs root")
	}
	_, ctx := ktesting.NewTestContext(t)
	s := newStore(t)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "dev/null", Typeflag: tar.TypeChar, Mode: 0o666, Devmajor: 1, Devminor: 3})
	tw.WriteHeader(&tar.Header{Name: "fifo", Typeflag: tar.TypeFifo, Mode: 0o600})
	tw.Close()
	img, err := s.Import(ctx, "dev", &buf, ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rootfs, _ := s.Rootfs(ctx, img)
	fi, err := os.Lstat(filepath.Join(rootfs, "dev/null"))
	if err != nil || fi.Mode()&fs.ModeCharDevice == 0 || fi.Sys().(*syscall.Stat_t).Rdev != 0x103 {
		t.Errorf("dev/null: %v, %v", fi, err)
	}
	if fi, err := os.Lstat(filepath.Join(rootfs, "fifo")); err != nil || fi.Mode()&fs.ModeNamedPipe == 0 {
		t.Errorf("fifo: %v, %v", fi, err)
	}
}

func TestLoad(t *testing.T) {
	bb := imageOf(t, []string{"sh"}, busyboxRootfs(t))
	tests := []struct {
		name    string
		archive func(t testing.TB, imgs map[string]v1.Image) string
	}{
		{"docker save", dockerArchive},
		{"OCI layout", ociArchive},
		{"docker save | gzip", func(t testing.TB, imgs map[string]v1.Image) string {
			data, err := os.ReadFile(dockerArchive(t, imgs))
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			zw := gzip.NewWriter(&buf)
			zw.Write(data)
			zw.Close()
			p := filepath.Join(t.TempDir(), "save.tar.gz")
			if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			return p
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, ctx := ktesting.NewTestContext(t)
			s := newStore(t)
			archive := tt.archive(t, map[string]v1.Image{
				"busybox:1.36":           bb,
				"example.com/team/wh:v2": whiteoutImage(t),
			})
			data, err := os.ReadFile(archive)
			if err != nil {
				t.Fatal(err)
			}
			// A reader that is not a file, as stdin is; and a file.
			var in io.Reader = bytes.NewReader(data)
			if strings.HasSuffix(archive, ".gz") {
				f, err := os.Open(archive)
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				in = f
			}
			imgs, err := s.Load(ctx, in)
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, img := range imgs {
				names = append(names, img.Name)
			}
			slices.Sort(names)
			if want := []string{"docker.io/library/busybox:1.36", "example.com/team/wh:v2"}; !slices.Equal(names, want) {
				t.Errorf("Load = %v, want %v", names, want)
			}
			wh, err := s.Get(ctx, "example.com/team/wh:v2")
			if err != nil {
				t.Fatal(err)
			}
			if wh.Config.Cmd[0] != "sh" || wh.Created != fixtureTime {
				t.Errorf("config = %+v, created %v", wh.Config, wh.Created)
			}
			rootfs, err := s.Rootfs(ctx, wh)
			if err != nil {
				t.Fatal(err)
			}
			if got := tree(t, rootfs); got != strings.Join([]string{
				". drwxr-xr-x",
				"a drwxr-xr-x",
				"a/added -rw-r--r-- " + sha("added"),
				"a/keep -rw-r--r-- " + sha("keep"),
				"opq drwxr-xr-x",
				"opq/new -rw-r--r-- " + sha("new"),
			}, "\n") {
				t.Errorf("whiteout rootfs:\n%s", got)
			}
			bimg, err := s.Get(ctx, "busybox:1.36")
			if err != nil {
				t.Fatal(err)
			}
			bootfs, err := s.Rootfs(ctx, bimg)
			if err != nil {
				t.Fatal(err)
			}
			checkLink(t, bootfs, "bin/sh", "busybox")
		})
	}
}

func sha(s string) string { return fmt.Sprintf("%x", sha256.Sum256([]byte(s))) }

func TestLoadRejectsGarbage(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	s := newStore(t)
	if _, err := s.Load(ctx, bytes.NewReader(buildTar(t, entry{name: "x", body: "y"}))); err == nil || !strings.Contains(err.Error(), "neither") {
		t.Errorf("Load(garbage) err = %v", err)
	}
}

// TestConcurrentStores imports from several Store instances on one
// directory at once, as `pocketkube images import` does while `up` runs: the
// flock serialises their commits, and every instance sees every image.
func TestConcurrentStores(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	dir := filepath.Join(t.TempDir(), "images")
	reader, err := Open(ctx, Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if list, err := reader.List(ctx); err != nil || len(list) != 0 {
		t.Fatalf("List = %v, %v", list, err)
	}
	const n = 4
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := Open(ctx, Config{Dir: dir})
			if err != nil {
				errs[i] = err
				return
			}
			_, errs[i] = s.Import(ctx, "img"+string(rune('a'+i)), bytes.NewReader(buildTar(t, entry{name: "f", body: string(rune('a' + i))})), ImportOptions{})
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	list, err := reader.List(ctx)
	if err != nil || len(list) != n {
		t.Fatalf("List in another Store = %+v, %v", list, err)
	}
	// Two stores unpacking the same image at once: one unpack, both see it.
	img := list[0]
	if err := removeAll(reader.path("rootfs", strings.TrimPrefix(img.ID, "sha256:"))); err != nil {
		t.Fatal(err)
	}
	other, _ := Open(ctx, Config{Dir: dir})
	paths := make([]string, 2*n)
	errs = make([]error, 2*n)
	for i := range paths {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := reader
			if i%2 == 1 {
				s = other
			}
			paths[i], errs[i] = s.Rootfs(ctx, img)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	for _, p := range paths {
		if p != paths[0] {
			t.Errorf("Rootfs paths differ: %v", paths)
		}
	}
	if entries, _ := os.ReadDir(reader.path("tmp")); len(entries) != 0 {
		t.Errorf("tmp holds %v", entries)
	}
}

func TestNormalize(t *testing.T) {
	tests := []struct {
		in, want string
		wantErr  bool
	}{
		{in: "busybox", want: "docker.io/library/busybox:latest"},
		{in: "busybox:1.36", want: "docker.io/library/busybox:1.36"},
		{in: "library/busybox", want: "docker.io/library/busybox:latest"},
		{in: "docker.io/busybox", want: "docker.io/library/busybox:latest"},
		{in: "index.docker.io/library/busybox", want: "docker.io/library/busybox:latest"},
		{in: "foo/bar", want: "docker.io/foo/bar:latest"},
		{in: "localhost/x", want: "localhost/x:latest"},
		{in: "localhost:5000/x", want: "localhost:5000/x:latest"},
		{in: "registry.k8s.io/e2e-test-images/busybox:1.37.0-2", want: "registry.k8s.io/e2e-test-images/busybox:1.37.0-2"},
		{in: "x@sha256:" + strings.Repeat("a", 64), want: "docker.io/library/x@sha256:" + strings.Repeat("a", 64)},
		{in: "x:tag@sha256:" + strings.Repeat("a", 64), want: "docker.io/library/x@sha256:" + strings.Repeat("a", 64)},
		{in: "Busybox", wantErr: true},
		{in: "", wantErr: true},
		{in: "a b", wantErr: true},
		{in: "x@sha256:short", wantErr: true},
		{in: strings.Repeat("a", 64), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := Normalize(tt.in)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("Normalize(%q) = %q, %v; want %q, error %v", tt.in, got, err, tt.want, tt.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), `"`+tt.in+`"`) {
				t.Errorf("error %q does not name the reference", err)
			}
		})
	}
}

func TestSplitName(t *testing.T) {
	for _, tt := range []struct{ in, repo, tag string }{
		{"docker.io/library/busybox:latest", "docker.io/library/busybox", "latest"},
		{"localhost:5000/x:v1", "localhost:5000/x", "v1"},
		{"localhost:5000/x@sha256:abc", "localhost:5000/x", "<none>"},
	} {
		if repo, tag := SplitName(tt.in); repo != tt.repo || tag != tt.tag {
			t.Errorf("SplitName(%q) = %q, %q", tt.in, repo, tag)
		}
	}
}
