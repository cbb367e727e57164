package image

import (
	"bytes"
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"k8s.io/klog/v2/ktesting"
	testingclock "k8s.io/utils/clock/testing"
)

// smallStore opens a store on a tmpfs of size, so that its disk usage is
// the test's own.
func smallStore(t *testing.T, size string) *Store {
	t.Helper()
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size="+size); err != nil {
		t.Skipf("mount tmpfs (needs root): %v", err)
	}
	t.Cleanup(func() { _ = unix.Unmount(dir, unix.MNT_DETACH) })
	s, err := Open(t.Context(), Config{Dir: filepath.Join(dir, "images")})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// importRandom imports an image of one file of n random bytes.
func importRandom(t *testing.T, s *Store, name string, n int) Image {
	t.Helper()
	body := make([]byte, n)
	if _, err := rand.Read(body); err != nil {
		t.Fatal(err)
	}
	img, err := s.Import(t.Context(), name, bytes.NewReader(buildTar(t, entry{name: "data", body: string(body)})), ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// fillToAvailable makes a file in dir take what it takes for the
// filesystem to have about avail bytes available.
func fillToAvailable(t *testing.T, dir string, avail int64) {
	t.Helper()
	_, have, err := fsSpace(dir)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(dir, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := unix.Fallocate(int(f.Fd()), 0, 0, have-avail); err != nil {
		t.Fatal(err)
	}
}

func imageNames(t *testing.T, s *Store) string {
	t.Helper()
	imgs, err := s.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, img := range imgs {
		names = append(names, strings.TrimSuffix(strings.TrimPrefix(img.Name, "docker.io/library/"), ":latest"))
	}
	return strings.Join(names, ",")
}

// TestGCThresholds is kubelet's image GC on a real store on a 32 MiB
// tmpfs: nothing younger than the minimum age goes; past it, over the
// high threshold, unused images go least recently used first until the
// low threshold is reached; an image a container mounts or a pod names
// never goes; DeleteUnusedImages (the eviction manager's) takes every
// unused one.
func TestGCThresholds(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	s := smallStore(t, "32m")
	var imgs = map[string]Image{}
	for _, name := range []string{"used-once", "mounted", "named", "never-used"} {
		imgs[name] = importRandom(t, s, name, 2<<20)
	}
	t0 := time.Now()
	clk := testingclock.NewFakeClock(t0)
	podImages := []string{"named"}
	gc, err := NewGC(s, GCConfig{Clock: clk, PodImages: func() ([]string, error) { return podImages, nil }})
	if err != nil {
		t.Fatal(err)
	}

	// used-once is a container's root filesystem when GC first looks.
	rootfs, err := s.Rootfs(ctx, imgs["used-once"])
	if err != nil {
		t.Fatal(err)
	}
	unmount := mountContainer(t, rootfs, "c1")
	if err := gc.GarbageCollect(ctx); err != nil {
		t.Fatalf("GC below the high threshold: %v", err)
	}
	unmount()
	rootfs, err = s.Rootfs(ctx, imgs["mounted"])
	if err != nil {
		t.Fatal(err)
	}
	mountContainer(t, rootfs, "c2")

	// 15.5 % available: usage 85 %, at the high threshold; the low one
	// needs about 1.4 MiB more.
	capacity, _, err := fsSpace(s.Dir())
	if err != nil {
		t.Fatal(err)
	}
	fillToAvailable(t, filepath.Dir(s.Dir()), capacity*155/1000)

	clk.Step(time.Minute)
	err = gc.GarbageCollect(ctx)
	if err == nil || !strings.Contains(err.Error(), "Failed to garbage collect required amount of images. Attempted to free ") {
		t.Errorf("GC with every image younger than the minimum age: %v, want kubelet's error", err)
	}
	if got := imageNames(t, s); got != "mounted,named,never-used,used-once" {
		t.Errorf("images after GC under the minimum age: %s, want all", got)
	}

	clk.Step(2 * time.Minute)
	if err := gc.GarbageCollect(ctx); err != nil {
		t.Fatalf("GC past the minimum age: %v", err)
	}
	if got := imageNames(t, s); got != "mounted,named,used-once" {
		t.Errorf("images after GC: %s, want never-used (least recently used) gone, the rest kept", got)
	}
	c, avail, _ := fsSpace(s.Dir())
	if usage := 100 - int(avail*100/c); usage > DefaultGCLowThresholdPercent {
		t.Errorf("usage after GC %d%%, want at most %d%%", usage, DefaultGCLowThresholdPercent)
	}

	// The eviction manager's call: every unused image, whatever the usage.
	if err := gc.DeleteUnusedImages(ctx); err != nil {
		t.Fatal(err)
	}
	if got := imageNames(t, s); got != "mounted,named" {
		t.Errorf("images after DeleteUnusedImages: %s, want the mounted and the named one", got)
	}
	if _, err := os.Stat(rootfs); err != nil {
		t.Errorf("root filesystem of the mounted image: %v", err)
	}
	// Once no pod names it, the named image goes too (at a later time:
	// an image last used at the time of a collection counts as in use).
	podImages = nil
	clk.Step(time.Second)
	if err := gc.DeleteUnusedImages(ctx); err != nil {
		t.Fatal(err)
	}
	if got := imageNames(t, s); got != "mounted" {
		t.Errorf("images after the pod went: %s, want the mounted one", got)
	}
}

func TestNewGCValidates(t *testing.T) {
	for _, cfg := range []GCConfig{{HighThresholdPercent: 101}, {LowThresholdPercent: -1}, {HighThresholdPercent: 50, LowThresholdPercent: 60}} {
		if _, err := NewGC(nil, cfg); err == nil {
			t.Errorf("NewGC(%+v) accepted", cfg)
		}
	}
}

// TestGCPostHook: after a collection the hook gets the IDs of the images
// left and the collection's start (kubelet's PostImageGCHook, which the
// image pull manager uses to forget removed images).
func TestGCPostHook(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	s, err := Open(ctx, Config{Dir: filepath.Join(t.TempDir(), "images")})
	if err != nil {
		t.Fatal(err)
	}
	kept := importRandom(t, s, "kept", 1024)
	gone := importRandom(t, s, "gone", 1024)
	clk := testingclock.NewFakeClock(time.Now())
	var calls [][]string
	var starts []time.Time
	gc, err := NewGC(s, GCConfig{
		Clock: clk, MinAge: -1,
		PodImages: func() ([]string, error) { return []string{"kept"}, nil },
		PostGC: func(_ context.Context, ids []string, start time.Time) {
			calls = append(calls, ids)
			starts = append(starts, start)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	clk.Step(time.Minute)
	if err := gc.DeleteUnusedImages(ctx); err != nil {
		t.Fatal(err)
	}
	if len(calls) != 1 || strings.Join(calls[0], ",") != kept.ID || !starts[0].Equal(clk.Now()) {
		t.Fatalf("post-GC calls %q at %v; want one with %s (not %s) at %v", calls, starts, kept.ID, gone.ID, clk.Now())
	}
}
