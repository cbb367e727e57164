package runtime

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
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
