package runtime

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestResolveUser(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	os.WriteFile(filepath.Join(root, "etc/passwd"), []byte("root:x:0:0:root:/root:/bin/sh\n# comment\napp:x:1000:1000::/home/app:/bin/sh\nweb:x:33:33::/var/www:/bin/false\n"), 0o644)
	os.WriteFile(filepath.Join(root, "etc/group"), []byte("root:x:0:\nwheel:x:10:app,web\napp:x:1000:app\naudio:x:29:app\nwww:x:33:\n"), 0o644)
	tests := []struct {
		spec    string
		want    User
		wantErr bool
	}{
		{spec: "", want: User{}},
		{spec: "0", want: User{}},
		{spec: "root", want: User{}},
		{spec: "app", want: User{UID: 1000, GID: 1000, AdditionalGIDs: []uint32{10, 29}}},
		{spec: "1000", want: User{UID: 1000, GID: 1000, AdditionalGIDs: []uint32{10, 29}}},
		{spec: "4242", want: User{UID: 4242}},
		{spec: "4242:4243", want: User{UID: 4242, GID: 4243}},
		{spec: "app:www", want: User{UID: 1000, GID: 33, AdditionalGIDs: []uint32{10, 1000, 29}}},
		{spec: "web:0", want: User{UID: 33, GID: 0, AdditionalGIDs: []uint32{10}}},
		{spec: "nobody", wantErr: true},
		{spec: "app:nogroup", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			got, err := ResolveUser(root, tt.spec)
			if (err != nil) != tt.wantErr {
				t.Fatalf("ResolveUser(%q) error = %v", tt.spec, err)
			}
			if !tt.wantErr && !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ResolveUser(%q) = %+v, want %+v", tt.spec, got, tt.want)
			}
		})
	}
}

// TestResolveUserStaysInRoot resolves user names against images whose
// /etc/passwd or /etc are links to the host's files, or a FIFO: the host's
// users are never seen and nothing blocks.
func TestResolveUserStaysInRoot(t *testing.T) {
	host := t.TempDir()
	os.WriteFile(filepath.Join(host, "passwd"), []byte("hostuser:x:4242:4242::/:/bin/sh\n"), 0o644)
	os.WriteFile(filepath.Join(host, "group"), []byte("hostgroup:x:4343:hostuser\n"), 0o644)
	tests := []struct {
		name  string
		setup func(root string)
	}{
		{"passwd links to a host file", func(root string) {
			os.MkdirAll(filepath.Join(root, "etc"), 0o755)
			os.Symlink(filepath.Join(host, "passwd"), filepath.Join(root, "etc/passwd"))
			os.Symlink("../../../../../../../../.."+filepath.Join(host, "group"), filepath.Join(root, "etc/group"))
		}},
		{"etc links to a host directory", func(root string) {
			os.Symlink(host, filepath.Join(root, "etc"))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			tt.setup(root)
			if u, err := ResolveUser(root, "hostuser"); err == nil {
				t.Errorf("ResolveUser(hostuser) = %+v, want no such user", u)
			}
			if u, err := ResolveUser(root, "0:hostgroup"); err == nil {
				t.Errorf("ResolveUser(0:hostgroup) = %+v, want no such group", u)
			}
		})
	}
	t.Run("passwd is a FIFO", func(t *testing.T) {
		root := t.TempDir()
		os.MkdirAll(filepath.Join(root, "etc"), 0o755)
		if err := unix.Mkfifo(filepath.Join(root, "etc/passwd"), 0o644); err != nil {
			t.Fatal(err)
		}
		// Before, this blocked in open(2) until a writer came.
		if u, err := ResolveUser(root, "app"); err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Errorf("ResolveUser = %+v, %v; want a not-a-regular-file error", u, err)
		}
	})
}
