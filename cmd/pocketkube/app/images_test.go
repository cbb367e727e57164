package app

import (
	"archive/tar"
	"bytes"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"k8s.io/klog/v2/ktesting"
)

func rootfsTar(t *testing.T, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for n, body := range files {
		if err := tw.WriteHeader(&tar.Header{Name: n, Typeflag: tar.TypeReg, Mode: 0o755, Size: int64(len(body))}); err != nil {
			t.Fatal(err)
		}
		io.WriteString(tw, body)
	}
	if err := tw.WriteHeader(&tar.Header{Name: "bin/sh", Typeflag: tar.TypeSymlink, Linkname: "busybox"}); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func testImage(t *testing.T, files map[string]string) v1.Image {
	t.Helper()
	data := rootfsTar(t, files)
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(emptyLinuxImage(t), layer)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func emptyLinuxImage(t *testing.T) v1.Image {
	t.Helper()
	img, err := mutate.ConfigFile(empty.Image, &v1.ConfigFile{OS: "linux", Architecture: runtime.GOARCH, RootFS: v1.RootFS{Type: "layers"}})
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func TestImagesCommands(t *testing.T) {
	dir := t.TempDir()
	rootfs := filepath.Join(dir, "rootfs.tar")
	if err := os.WriteFile(rootfs, rootfsTar(t, map[string]string{"bin/busybox": "#!fake"}), 0o644); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad.tar")
	if err := os.WriteFile(bad, rootfsTar(t, map[string]string{"../../escape": "x"}), 0o644); err != nil {
		t.Fatal(err)
	}
	archive := filepath.Join(dir, "save.tar")
	tag, _ := name.NewTag("example.com/tools/bb:1.0")
	if err := tarball.MultiRefWriteToFile(archive, map[name.Reference]v1.Image{tag: testImage(t, map[string]string{"bin/busybox": "saved"})}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	pushed := testImage(t, map[string]string{"bin/busybox": "pushed"})
	ref, _ := name.ParseReference(host + "/pushed:v1")
	if err := remote.Write(ref, pushed); err != nil {
		t.Fatal(err)
	}
	layers, _ := pushed.Layers()
	layerDigest, _ := layers[0].Digest()
	data := filepath.Join(dir, "data")

	var importedID string
	tests := []struct {
		name    string
		args    []string
		stdin   []byte
		want    string // regexp the output must match
		wantErr string // the error must contain it
	}{
		{name: "import", args: []string{"import", "--name", "busybox", "--cmd", `["sh"]`, "--env", "A=b", rootfs}, want: `^sha256:[0-9a-f]{64}\n$`},
		{name: "import from stdin", args: []string{"import", "--name", "localhost:5000/stdin:v2", "-c", "CMD echo hi", "-"}, stdin: rootfsTar(t, nil), want: `^sha256:[0-9a-f]{64}\n$`},
		{name: "import missing file", args: []string{"import", "--name", "x", filepath.Join(dir, "none.tar")}, wantErr: "none.tar: no such file"},
		{name: "import bad name", args: []string{"import", "--name", "Not:Valid:", rootfs}, wantErr: `"Not:Valid:"`},
		{name: "import without name", args: []string{"import", rootfs}, wantErr: "--name is required"},
		{name: "import bad change", args: []string{"import", "--name", "x", "-c", "RUN rm -rf /", rootfs}, wantErr: `unsupported instruction "RUN"`},
		{name: "import unsafe tar", args: []string{"import", "--name", "bad", bad}, wantErr: `bad.tar: import image docker.io/library/bad:latest: refusing tar entry "../../escape"`},
		{name: "load", args: []string{"load", "-i", archive}, want: "^Loaded image: example.com/tools/bb:1.0\n$"},
		{name: "load missing archive", args: []string{"load", "-i", filepath.Join(dir, "nope.tar")}, wantErr: "nope.tar"},
		{name: "load not an archive", args: []string{"load", "-i", rootfs}, wantErr: "neither a docker save archive"},
		{name: "pull", args: []string{"pull", host + "/pushed:v1"}, want: layerDigest.Hex[:12] + ": Pull complete\nDigest: sha256:"},
		{name: "pull missing", args: []string{"pull", host + "/pushed:nope"}, wantErr: `failed to pull and unpack image "` + host + `/pushed:nope"`},
		{name: "list", args: []string{"list"}, want: `^IMAGE +TAG +IMAGE ID +SIZE\n` +
			regexp.QuoteMeta(host) + `/pushed +v1 +[0-9a-f]{13} +\d+B\n` +
			`docker.io/library/busybox +latest +IMPORTED +\d+B\n` +
			`example.com/tools/bb +1.0 +[0-9a-f]{13} +\d+B\n` +
			`localhost:5000/stdin +v2 +[0-9a-f]{13} +\d+B\n$`},
		{name: "ls", args: []string{"ls", "-q"}, want: `^(sha256:[0-9a-f]{64}\n){4}$`},
		{name: "rm", args: []string{"rm", "busybox", "localhost:5000/stdin:v2"}, want: "^Deleted: busybox\nDeleted: localhost:5000/stdin:v2\n$"},
		{name: "rm missing", args: []string{"rm", "busybox"}, wantErr: `"busybox": not found`},
		{name: "list after rm", args: []string{"ls"}, want: `^IMAGE +TAG +IMAGE ID +SIZE\n\S+/pushed .*\nexample.com/tools/bb .*\n$`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, ctx := ktesting.NewTestContext(t)
			cmd := NewImagesCommand()
			var out bytes.Buffer
			cmd.SetOut(&out)
			cmd.SetErr(io.Discard)
			cmd.SetIn(bytes.NewReader(tt.stdin))
			cmd.SetArgs(append(tt.args, "--data-dir", data))
			err := cmd.ExecuteContext(ctx)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("err = %v, want one with %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("err = %v\n%s", err, out.String())
			}
			want := strings.ReplaceAll(tt.want, "IMPORTED", importedID)
			if !regexp.MustCompile(want).MatchString(out.String()) {
				t.Errorf("output:\n%s\ndoes not match %q", out.String(), want)
			}
			if tt.name == "import" {
				importedID = strings.TrimPrefix(out.String(), "sha256:")[:13]
			}
		})
	}
}
