package volume

import (
	"os"
	"path/filepath"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2/ktesting"
)

// EmptyDirUsage counts what the files take on disk, as du: a sparse file
// only its written blocks, a hard link once, a missing volume nothing.
func TestEmptyDirUsage(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	m := newTestManager(t, Config{})
	pod := testPod("uid-u")
	vol := &v1.Volume{Name: "scratch", VolumeSource: v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{}}}
	mnt, err := m.Setup(ctx, pod, vol, nil)
	if err != nil {
		t.Fatal(err)
	}
	empty, err := m.EmptyDirUsage("uid-u", "scratch")
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 1<<20)
	for i := range data {
		data[i] = 1
	}
	if err := os.MkdirAll(filepath.Join(mnt.Path, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(mnt.Path, "sub", "mib"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(filepath.Join(mnt.Path, "sub", "mib"), filepath.Join(mnt.Path, "link")); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(mnt.Path, "sparse"))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(1 << 30); err != nil {
		t.Fatal(err)
	}
	f.Close()
	got, err := m.EmptyDirUsage("uid-u", "scratch")
	if err != nil {
		t.Fatal(err)
	}
	// The MiB once, plus the new directory's block(s): well under 2 MiB.
	if got-empty < 1<<20 || got-empty >= 2<<20 {
		t.Errorf("usage = %d bytes (%d empty), want 1 MiB and a directory", got, empty)
	}
	if n, err := m.EmptyDirUsage("uid-u", "none"); err != nil || n != 0 {
		t.Errorf("usage of a volume not set up = %d, %v; want 0", n, err)
	}
	if _, err := m.EmptyDirUsage("../x", "scratch"); err == nil {
		t.Error("a UID with a path in it was measured")
	}
}
