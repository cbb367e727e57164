package sharedcerts

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/client-go/kubernetes/fake"
)

// Upload then Fetch hands over every file; the etcd CA only when the
// uploading server has one (an embedded etcd), and a missing file of the
// others is an error.
func TestUploadFetch(t *testing.T) {
	ctx := context.Background()
	key, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	for _, withEtcd := range []bool{true, false} {
		dir := t.TempDir()
		for _, f := range Files {
			if optional(f) && !withEtcd {
				continue
			}
			if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, f)), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, f), []byte("content of "+f), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		client := fake.NewClientset()
		if err := Upload(ctx, client, dir, key); err != nil {
			t.Fatalf("etcd CA %v: Upload: %v", withEtcd, err)
		}
		files, err := Fetch(ctx, client, key)
		if err != nil {
			t.Fatalf("etcd CA %v: Fetch: %v", withEtcd, err)
		}
		for _, f := range Files {
			got, ok := files[f]
			if want := withEtcd || !optional(f); ok != want || ok && string(got) != "content of "+f {
				t.Errorf("etcd CA %v: fetched %s: %q (present %v, want %v)", withEtcd, f, got, ok, want)
			}
		}
		if _, err := Fetch(ctx, client, strings.Repeat("0", 64)); err != ErrWrongKey {
			t.Errorf("Fetch with a wrong key: %v, want ErrWrongKey", err)
		}
	}
	dir := t.TempDir()
	if err := Upload(ctx, fake.NewClientset(), dir, key); err == nil || !strings.Contains(err.Error(), "ca.crt") {
		t.Errorf("Upload of an empty directory: %v, want an error naming ca.crt", err)
	}
}
