package volume

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// subPathVolume makes the volume directory "vol" of pod uid as an emptyDir
// (mode 0750|setgid, so that created subPaths show they took its mode) and
// returns it with a directory outside the pod.
func subPathVolume(t *testing.T, m *Manager, uid string) (vol, outside string) {
	t.Helper()
	vol = filepath.Join(m.podDir(uid), "volumes", emptyDirPluginDir, "vol")
	if err := os.MkdirAll(vol, 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(vol, 0o750|os.ModeSetgid); err != nil {
		t.Fatal(err)
	}
	outside = t.TempDir()
	mkdir(t, outside+"/x")
	write(t, outside+"/MARKER")
	return vol, outside
}

func TestPrepareSubPath(t *testing.T) {
	requireRoot(t)
	tests := []struct {
		name    string
		setup   func(t *testing.T, vol, outside string)
		subPath string
		want    string // what the source must be, relative to the volume
		wantErr string
	}{
		{name: "creates a directory", subPath: "a", want: "a"},
		{name: "creates nested directories", subPath: "a/b/c", want: "a/b/c"},
		{name: "existing file", subPath: "f", want: "f",
			setup: func(t *testing.T, vol, _ string) { write(t, vol+"/f") }},
		{name: "symlink inside the volume", subPath: "link/x", want: "real/x",
			setup: func(t *testing.T, vol, _ string) {
				mkdir(t, vol+"/real/x")
				symlink(t, "real", vol+"/link")
			}},
		{name: "configmap key through ..data", subPath: "key", want: "..2026_11_23_10_00_00.1/key",
			setup: func(t *testing.T, vol, _ string) {
				mkdir(t, vol+"/..2026_11_23_10_00_00.1")
				write(t, vol+"/..2026_11_23_10_00_00.1/key")
				symlink(t, "..2026_11_23_10_00_00.1", vol+"/..data")
				symlink(t, "..data/key", vol+"/key")
			}},
		{name: "absolute", subPath: "/etc", wantErr: "error SubPath `/etc` must not be an absolute path"},
		{name: "backsteps", subPath: "a/../../etc", wantErr: "unable to provision SubPath `a/../../etc`: must not contain '..'"},
		{name: "symlink to the host's root", subPath: "esc", wantErr: `subpath "/" not within volume path`,
			setup: func(t *testing.T, vol, _ string) { symlink(t, "/", vol+"/esc") }},
		{name: "symlink out of the volume", subPath: "esc", wantErr: "not within volume path",
			setup: func(t *testing.T, vol, outside string) { symlink(t, outside, vol+"/esc") }},
		{name: "relative symlink out of the volume", subPath: "esc", wantErr: "not within volume path",
			setup: func(t *testing.T, vol, _ string) { symlink(t, "../..", vol+"/esc") }},
		{name: "creation through an escaping symlink", subPath: "esc/new", wantErr: ErrCreateSubPath.Error(),
			setup: func(t *testing.T, vol, outside string) { symlink(t, outside, vol+"/esc") }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := newTestManager(t, Config{})
			vol, outside := subPathVolume(t, m, "uid")
			if tc.setup != nil {
				tc.setup(t, vol, outside)
			}
			sp := SubPath{PodUID: "uid", Container: "c", Index: 2, Volume: "vol", VolumePath: vol, Path: tc.subPath}
			got, err := m.PrepareSubPath(context.Background(), sp)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("PrepareSubPath(%q) = %q, %v; want error containing %q", tc.subPath, got, err, tc.wantErr)
				}
				if _, err := os.Stat(outside + "/new"); !os.IsNotExist(err) {
					t.Errorf("a directory was created outside the volume: %v", err)
				}
				if mounts, _ := mountsUnder(m.podDir("uid")); len(mounts) != 0 {
					t.Errorf("mounts left after a refused subPath: %v", mounts)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if want := filepath.Join(m.podDir("uid"), "volume-subpaths/vol/c/2"); got != want {
				t.Errorf("source %s, want %s", got, want)
			}
			mustSameFile(t, got, filepath.Join(vol, tc.want))
			if tc.setup == nil {
				// Created with the mode of the volume root, as kubelet does.
				for p := filepath.Join(vol, tc.subPath); p != vol; p = filepath.Dir(p) {
					if fi, err := os.Stat(p); err != nil || fi.Mode() != os.ModeDir|os.ModeSetgid|0o750 {
						t.Errorf("%s: %v, %v; want mode %v", p, fi.Mode(), err, os.ModeDir|os.ModeSetgid|0o750)
					}
				}
			}
			// The next start of the container finds the same mount.
			again, err := m.PrepareSubPath(context.Background(), sp)
			if err != nil || again != got {
				t.Errorf("again: %q, %v; want %q", again, err, got)
			}
			if mounts, _ := mountsUnder(m.podDir("uid")); len(mounts) != 1 {
				t.Errorf("mounts after two starts: %v, want one", mounts)
			}
		})
	}
}

// The subPath's bind mount goes with the pod, and the file it showed
// (here outside the pod's directory, as a hostPath's) stays.
func TestPrepareSubPathTeardown(t *testing.T) {
	requireRoot(t)
	m := newTestManager(t, Config{})
	_, host := subPathVolume(t, m, "uid")
	sp := SubPath{PodUID: "uid", Container: "c", Volume: "host", VolumePath: host, Path: "x"}
	if _, err := m.PrepareSubPath(context.Background(), sp); err != nil {
		t.Fatal(err)
	}
	if err := m.TeardownPod(context.Background(), "uid"); err != nil {
		t.Fatal(err)
	}
	if mounts, _ := mountsUnder(m.podDir("uid")); len(mounts) != 0 {
		t.Errorf("mounts left: %v", mounts)
	}
	if _, err := os.Stat(m.podDir("uid")); !os.IsNotExist(err) {
		t.Errorf("pod directory left: %v", err)
	}
	if _, err := os.Stat(host + "/x"); err != nil {
		t.Errorf("the subPath's own directory went with the pod: %v", err)
	}
}

// CVE-2017-1002101 / CVE-2021-25741: while the subPath is prepared, the
// container swaps its directory with a symlink to a host directory
// (renameat2 RENAME_EXCHANGE) and back, in a loop. Whatever PrepareSubPath
// returns is then bind-mounted as runc mounts a source; the mount must
// always be the volume's directory, never the host's. The code before
// PrepareSubPath (resolve the path, check it, return the string) let
// about half the mounts show the host's directory.
func TestPrepareSubPathSymlinkSwapNeverEscapes(t *testing.T) {
	requireRoot(t)
	const iterations = 2000
	m := newTestManager(t, Config{})
	vol, outside := subPathVolume(t, m, "uid")
	mkdir(t, vol+"/a")
	symlink(t, outside, vol+"/b")
	dir, err := os.Stat(vol + "/a")
	if err != nil {
		t.Fatal(err)
	}

	stop := make(chan struct{})
	done := make(chan struct{})
	var swaps atomic.Int64
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			// "a" is the symlink for a moment, then the directory
			// again for longer, so that most preparations get as far as
			// their mount, which races the next swap.
			for _, pause := range []bool{false, true} {
				if err := unix.Renameat2(unix.AT_FDCWD, vol+"/a", unix.AT_FDCWD, vol+"/b", unix.RENAME_EXCHANGE); err != nil {
					t.Errorf("swap: %v", err)
					return
				}
				swaps.Add(1)
				if pause {
					time.Sleep(200 * time.Microsecond)
				}
			}
		}
	}()

	container := t.TempDir() // where runc would mount the source
	var mounted, refused, escaped int
	for range iterations {
		sp := SubPath{PodUID: "uid", Container: "c", Volume: "vol", VolumePath: vol, Path: "a"}
		source, err := m.PrepareSubPath(context.Background(), sp)
		if err != nil {
			refused++
			continue
		}
		// runc mounts the source a while later, once its init runs.
		time.Sleep(100 * time.Microsecond)
		if err := unix.Mount(source, container, "", unix.MS_BIND, ""); err != nil {
			// The source turned into a file, or a symlink's target: runc
			// fails too.
			refused++
		} else {
			mounted++
			if fi, err := os.Stat(container); err != nil || !os.SameFile(fi, dir) {
				escaped++
			}
			if err := unix.Unmount(container, 0); err != nil {
				t.Fatal(err)
			}
		}
		// A fresh preparation each time: the container's next start.
		if strings.HasPrefix(source, m.podDir("uid")+"/") {
			if err := unmount(source); err != nil {
				t.Fatal(err)
			}
		}
	}
	close(stop)
	<-done
	t.Logf("%d preparations during %d swaps: %d mounted, %d refused, %d showed another directory", iterations, swaps.Load(), mounted, refused, escaped)
	if escaped > 0 {
		t.Errorf("%d of %d mounts were not the volume's directory (the host's, through the symlink)", escaped, mounted)
	}
	if mounted == 0 {
		t.Errorf("no preparation succeeded: the test proves nothing")
	}
}

func mustSameFile(t *testing.T, a, b string) {
	t.Helper()
	fa, err := os.Stat(a)
	if err != nil {
		t.Fatal(err)
	}
	fb, err := os.Stat(b)
	if err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(fa, fb) {
		t.Errorf("%s is not %s", a, b)
	}
}

func mkdir(t *testing.T, p string) {
	t.Helper()
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
}

func write(t *testing.T, p string) {
	t.Helper()
	if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
}

func symlink(t *testing.T, target, p string) {
	t.Helper()
	if err := os.Symlink(target, p); err != nil {
		t.Fatal(err)
	}
}
