package image

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
	"k8s.io/klog/v2/ktesting"
)

// mountContainer mounts rootfs as the lower directory of an overlayfs, as
// the runtime mounts a container's root filesystem, under dir/<id>/rootfs.
func mountContainer(t *testing.T, rootfs, id string) (unmount func()) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), id)
	for _, d := range []string{"rootfs", "upper", "work"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	data := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", rootfs, filepath.Join(dir, "upper"), filepath.Join(dir, "work"))
	if err := unix.Mount("overlay", filepath.Join(dir, "rootfs"), "overlay", 0, data); err != nil {
		t.Skipf("mount overlayfs (needs root): %v", err)
	}
	mounted := true
	unmount = func() {
		if mounted {
			mounted = false
			if err := unix.Unmount(filepath.Join(dir, "rootfs"), unix.MNT_DETACH); err != nil {
				t.Error(err)
			}
		}
	}
	t.Cleanup(unmount)
	return unmount
}

// TestInUseRootfsSurvivesReplaceAndRemove is issue 13: importing a tag
// again, or removing the image, deleted the root filesystem that running
// containers had as their overlayfs lower directory.
func TestInUseRootfsSurvivesReplaceAndRemove(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	s := newStore(t)
	first, err := s.Import(ctx, "inuse", bytes.NewReader(buildTar(t, entry{name: "hello", body: "world"})), ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rootfs, err := s.Rootfs(ctx, first)
	if err != nil {
		t.Fatal(err)
	}
	const container = "0123456789abcdef"
	unmount := mountContainer(t, rootfs, container)

	// Another process (`pocketkube images rm`) refuses, and removes nothing.
	other, err := Open(ctx, Config{Dir: s.Dir()})
	if err != nil {
		t.Fatal(err)
	}
	err = other.Remove(ctx, "inuse")
	var inUse *InUseError
	if !errors.Is(err, ErrInUse) || !errors.As(err, &inUse) || len(inUse.Containers) != 1 || inUse.Containers[0] != container {
		t.Fatalf("Remove of an image in use err = %v, want an InUseError naming %s", err, container)
	}
	if want := `remove image "inuse": image used by ` + container + `: image is in use by a container`; err.Error() != want {
		t.Errorf("Remove err = %q, want %q", err, want)
	}
	if _, err := s.Get(ctx, "inuse"); err != nil {
		t.Errorf("Get after refused Remove: %v", err)
	}
	checkFile(t, rootfs, "hello", "world", 0o644)

	// Importing the tag again replaces the image but keeps what the
	// container uses.
	second, err := other.Import(ctx, "inuse", bytes.NewReader(buildTar(t, entry{name: "bye", body: "x"})), ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s.Get(ctx, "inuse"); err != nil || got.ID != second.ID {
		t.Errorf("Get after re-import = %+v, %v; want ID %s", got, err, second.ID)
	}
	checkFile(t, rootfs, "hello", "world", 0o644)
	if err := s.Collect(ctx); err != nil {
		t.Fatal(err)
	}
	checkFile(t, rootfs, "hello", "world", 0o644)

	// Once the container is gone, collection deletes it.
	unmount()
	if err := s.Collect(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(rootfs); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("rootfs of the replaced image after its container went: %v, want it deleted", err)
	}
	if entries, _ := os.ReadDir(s.path("tmp")); len(entries) != 0 {
		t.Errorf("tmp holds %v", entries)
	}
	if err := s.Remove(ctx, "inuse"); err != nil {
		t.Errorf("Remove of an image no container uses: %v", err)
	}
}

func TestUnescapeMount(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"/a/b", "/a/b"},
		{`/a\040b`, "/a b"},
		{`/a\134b\054c`, `/a\b,c`},
		{`/a\0`, `/a\0`},
	} {
		if got := unescapeMount(tc.in); got != tc.want {
			t.Errorf("unescapeMount(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
