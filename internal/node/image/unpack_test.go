package image

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// TestApplyLayer applies layer sequences to an empty root and compares the
// resulting tree.
func TestApplyLayer(t *testing.T) {
	dir := func(n string) entry { return entry{name: n, typ: tar.TypeDir} }
	file := func(n, body string) entry { return entry{name: n, body: body} }
	tests := []struct {
		name   string
		layers [][]entry
		want   []string
	}{
		{
			name: "opaque marker before the layer's own entries",
			layers: [][]entry{
				{dir("d/"), file("d/old", "o"), dir("d/sub/"), file("d/sub/f", "f")},
				{entry{name: "d/.wh..wh..opq"}, file("d/sub/new", "n")},
			},
			want: []string{"d drwxr-xr-x", "d/sub drwxr-xr-x", "d/sub/new -rw-r--r-- n"},
		},
		{
			name: "whiteout of a directory removes it all",
			layers: [][]entry{
				{dir("d/"), file("d/a", "a"), file("keep", "k")},
				{entry{name: ".wh.d"}},
			},
			want: []string{"keep -rw-r--r-- k"},
		},
		{
			name: "whiteout of something absent is a no-op",
			layers: [][]entry{
				{file("keep", "k")},
				{entry{name: "nodir/.wh.x"}, entry{name: ".wh.absent"}},
			},
			want: []string{"keep -rw-r--r-- k"},
		},
		{
			name: "file replaced by a directory and back",
			layers: [][]entry{
				{file("a", "file"), dir("b/"), file("b/c", "c")},
				{dir("a/"), file("a/x", "x"), file("b", "now a file")},
			},
			want: []string{"a drwxr-xr-x", "a/x -rw-r--r-- x", "b -rw-r--r-- now a file"},
		},
		{
			name: "writes through an in-root symlinked directory",
			layers: [][]entry{
				{dir("usr/"), dir("usr/lib/"), entry{name: "lib", typ: tar.TypeSymlink, link: "usr/lib"}},
				{file("lib/libc.so", "c"), entry{name: "lib/.wh.gone"}},
			},
			want: []string{"lib Lrwxrwxrwx -> usr/lib", "usr drwxr-xr-x", "usr/lib drwxr-xr-x", "usr/lib/libc.so -rw-r--r-- c"},
		},
		{
			name: "hardlink to a file of a lower layer, ./ prefixes",
			layers: [][]entry{
				{dir("./"), file("./bin/a", "x")},
				{entry{name: "./bin/b", typ: tar.TypeLink, link: "./bin/a"}},
			},
			want: []string{"bin drwxr-xr-x", "bin/a -rw-r--r-- x", "bin/b -rw-r--r-- x"},
		},
		{
			name: "symlink replaced by a directory",
			layers: [][]entry{
				{entry{name: "d", typ: tar.TypeSymlink, link: "/tmp"}},
				{dir("d/"), file("d/f", "f")},
			},
			want: []string{"d drwxr-xr-x", "d/f -rw-r--r-- f"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			for _, l := range tt.layers {
				if err := applyLayer(root, bytes.NewReader(buildTar(t, l...))); err != nil {
					t.Fatal(err)
				}
			}
			if got, want := describe(t, root), strings.Join(tt.want, "\n"); got != want {
				t.Errorf("tree:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

// describe lists a tree with file contents and link targets, for small
// test trees.
func describe(t *testing.T, root string) string {
	t.Helper()
	var lines []string
	err := filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil || p == root {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		line := rel + " " + fi.Mode().String()
		switch {
		case fi.Mode()&os.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			line += " -> " + target
		case fi.Mode().IsRegular():
			data, _ := os.ReadFile(p)
			line += " " + string(data)
		}
		lines = append(lines, line)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(lines, "\n")
}

func TestDecompress(t *testing.T) {
	plain := buildTar(t, entry{name: "f", body: "hello"})
	var gz, zst bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(plain)
	zw.Close()
	enc, _ := zstd.NewWriter(&zst)
	enc.Write(plain)
	enc.Close()
	for name, data := range map[string][]byte{"plain": plain, "gzip": gz.Bytes(), "zstd": zst.Bytes()} {
		t.Run(name, func(t *testing.T) {
			root := t.TempDir()
			r, closeFn, err := decompress(bytes.NewReader(data))
			if err != nil {
				t.Fatal(err)
			}
			defer closeFn()
			if err := applyLayer(root, r); err != nil {
				t.Fatal(err)
			}
			if got := describe(t, root); got != "f -rw-r--r-- hello" {
				t.Errorf("tree = %q", got)
			}
		})
	}
}
