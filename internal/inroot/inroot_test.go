package inroot

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestReadFileStaysInRoot reads files of a tree whose links point out of
// it, at FIFOs and at large files: nothing outside the tree is read and
// nothing blocks.
func TestReadFileStaysInRoot(t *testing.T) {
	host := t.TempDir()
	if err := os.WriteFile(filepath.Join(host, "shadow"), []byte("host secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	mk := func(rel string) string {
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write := func(rel, body string) {
		if err := os.WriteFile(mk(rel), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	link := func(rel, target string) {
		if err := os.Symlink(target, mk(rel)); err != nil {
			t.Fatal(err)
		}
	}
	write("etc/passwd", "root:x:0:0::/:/bin/sh\n")
	write(filepath.Join(host[1:], "shadow"), "tree's own\n")
	link("abs/passwd", filepath.Join(host, "shadow"))
	link("rel/passwd", "../../../../../../../../.."+filepath.Join(host, "shadow"))
	link("linkdir", host)
	link("dangling/passwd", "/nowhere")
	if err := unix.Mkfifo(mk("fifo/passwd"), 0o644); err != nil {
		t.Fatal(err)
	}
	write("big/passwd", strings.Repeat("x", 100))

	tests := []struct {
		name    string
		path    string
		want    string
		wantErr error
	}{
		{"plain", "/etc/passwd", "root:x:0:0::/:/bin/sh\n", nil},
		{"relative name", "etc/passwd", "root:x:0:0::/:/bin/sh\n", nil},
		{"absolute symlink resolves in the tree", "/abs/passwd", "tree's own\n", nil},
		{"relative symlink climbing out stops at the root", "/rel/passwd", "tree's own\n", nil},
		{"symlinked directory resolves in the tree", "/linkdir/shadow", "tree's own\n", nil},
		{"dotdot in the name stops at the root", "/../../../../../../.." + filepath.Join(host, "shadow"), "tree's own\n", nil},
		{"dangling symlink", "/dangling/passwd", "", fs.ErrNotExist},
		{"missing", "/nope", "", fs.ErrNotExist},
		{"FIFO is refused without blocking", "/fifo/passwd", "", ErrNotRegular},
		{"directory", "/etc", "", ErrNotRegular},
		{"larger than the limit", "/big/passwd", "", ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ReadFile(root, tt.path, 64)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("ReadFile(%q) = %q, %v; want an error wrapping %v", tt.path, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || string(got) != tt.want {
				t.Fatalf("ReadFile(%q) = %q, %v; want %q", tt.path, got, err, tt.want)
			}
		})
	}
}
