package image

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// BenchmarkImport imports the busybox root filesystem: one read of the tar
// that unpacks it, gzips it into a blob and hashes both.
func BenchmarkImport(b *testing.B) {
	ctx := context.Background()
	rootfs := busyboxRootfs(b)
	s := newStore(b)
	b.SetBytes(int64(len(rootfs)))
	b.ResetTimer()
	for range b.N {
		if _, err := s.Import(ctx, "busybox", bytes.NewReader(rootfs), ImportOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRootfs unpacks the busybox image from its stored blob, as the
// first container of a pulled image does.
func BenchmarkRootfs(b *testing.B) {
	ctx := context.Background()
	rootfs := busyboxRootfs(b)
	s := newStore(b)
	img, err := s.Import(ctx, "busybox", bytes.NewReader(rootfs), ImportOptions{})
	if err != nil {
		b.Fatal(err)
	}
	dir := s.path("rootfs", strings.TrimPrefix(img.ID, "sha256:"))
	b.SetBytes(int64(len(rootfs)))
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		if err := removeAll(dir); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if _, err := s.Rootfs(ctx, img); err != nil {
			b.Fatal(err)
		}
	}
}
