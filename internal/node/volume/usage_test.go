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

// DiskUsage counts the inodes as kubelet's fs.Find: the directory itself,
// each file and subdirectory, a hard link once.
func TestDiskUsageInodes(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "a", "b"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"f1", "a/f2", "a/b/f3"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Link(filepath.Join(dir, "f1"), filepath.Join(dir, "a", "l1")); err != nil {
		t.Fatal(err)
	}
	bytes, inodes, err := DiskUsage(dir)
	if err != nil {
		t.Fatal(err)
	}
	if inodes != 6 || bytes <= 0 {
		t.Errorf("DiskUsage = %d bytes, %d inodes; want > 0 bytes and 6 inodes (3 dirs, 3 files)", bytes, inodes)
	}
}

func TestVolumePath(t *testing.T) {
	m := newTestManager(t, Config{})
	for _, tc := range []struct {
		src    v1.VolumeSource
		plugin string
	}{
		{v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{}}, "kubernetes.io~empty-dir"},
		{v1.VolumeSource{ConfigMap: &v1.ConfigMapVolumeSource{}}, "kubernetes.io~configmap"},
		{v1.VolumeSource{Secret: &v1.SecretVolumeSource{}}, "kubernetes.io~secret"},
		{v1.VolumeSource{DownwardAPI: &v1.DownwardAPIVolumeSource{}}, "kubernetes.io~downward-api"},
		{v1.VolumeSource{Projected: &v1.ProjectedVolumeSource{}}, "kubernetes.io~projected"},
		{v1.VolumeSource{HostPath: &v1.HostPathVolumeSource{Path: "/"}}, ""},
	} {
		got, ok := m.VolumePath("uid-v", &v1.Volume{Name: "v", VolumeSource: tc.src})
		want := filepath.Join(m.podsDir, "uid-v", "volumes", tc.plugin, "v")
		if tc.plugin == "" && ok || tc.plugin != "" && got != want {
			t.Errorf("VolumePath(%s) = %q, %v; want %q", tc.plugin, got, ok, want)
		}
	}
	if _, ok := m.VolumePath("../x", &v1.Volume{Name: "v", VolumeSource: v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{}}}); ok {
		t.Error("a UID with a path in it has a volume path")
	}
}
