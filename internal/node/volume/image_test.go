package volume

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2/ktesting"
)

type fakeImages struct {
	fakeSources
	rootfs string
}

func (f *fakeImages) ImageRootfs(context.Context, *v1.Pod, *v1.Volume) (string, error) {
	return f.rootfs, nil
}

// TestSetupImage checks an image volume: the image's files, read-only, in
// a mount the image store counts as a use (an overlayfs lower directory),
// a subPath inside it, a missing subPath refused rather than created, and
// the mount gone with TeardownPod.
func TestSetupImage(t *testing.T) {
	requireRoot(t)
	_, ctx := ktesting.NewTestContext(t)
	rootfs := filepath.Join(t.TempDir(), "rootfs:with,odd")
	if err := os.MkdirAll(filepath.Join(rootfs, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(rootfs, "etc", "os-release"), []byte("ID=test\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	m := newTestManager(t, Config{NodeAllocatableMemory: 1 << 30})
	pod := testPod("uid-img")
	vol := &v1.Volume{Name: "img", VolumeSource: v1.VolumeSource{Image: &v1.ImageVolumeSource{Reference: "example/image"}}}
	src := &fakeImages{rootfs: rootfs}
	mnt, err := m.Setup(ctx, pod, vol, src)
	if err != nil {
		t.Fatal(err)
	}
	want := filepath.Join(m.podsDir, "uid-img", "volumes", imagePluginDir, "img")
	if mnt.Path != want || !mnt.ReadOnly || mnt.Managed {
		t.Errorf("Mounted = %+v, want read-only, unmanaged at %s", mnt, want)
	}
	info := mountOf(t, want)
	if info == nil || info.FSType != "overlay" {
		t.Fatalf("mount at %s: %+v, want an overlay", want, info)
	}
	if b, err := os.ReadFile(filepath.Join(want, "etc", "os-release")); err != nil || string(b) != "ID=test\n" {
		t.Errorf("file of the image: %q, %v", b, err)
	}
	if err := os.WriteFile(filepath.Join(want, "new"), nil, 0o644); err == nil {
		t.Error("wrote into the image volume")
	}
	if _, err := m.Setup(ctx, pod, vol, src); err != nil {
		t.Fatal(err)
	}
	if mounts, _ := mountsUnder(want); len(mounts) != 1 {
		t.Errorf("mounts after a second Setup: %v", mounts)
	}
	sp := SubPath{PodUID: "uid-img", Container: "c", Volume: "img", VolumePath: want, Image: true}
	sp.Path = "etc"
	if source, err := m.PrepareSubPath(ctx, sp); err != nil {
		t.Errorf("subPath etc: %v", err)
	} else if b, err := os.ReadFile(filepath.Join(source, "os-release")); err != nil || string(b) != "ID=test\n" {
		t.Errorf("subPath etc: %q, %v", b, err)
	}
	sp.Path, sp.Index = "not-existing", 1
	if _, err := m.PrepareSubPath(ctx, sp); !errors.Is(err, ErrImageSubPath) {
		t.Errorf("missing subPath: %v, want ErrImageSubPath", err)
	}
	if err := m.TeardownPod(ctx, "uid-img"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(rootfs, "etc", "os-release")); err != nil {
		t.Errorf("image root filesystem after teardown: %v", err)
	}
	if _, err := m.Setup(ctx, pod, vol, &fakeSources{}); err == nil {
		t.Error("Setup without an ImageSource succeeded")
	}
}
