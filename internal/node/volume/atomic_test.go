package volume

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"k8s.io/klog/v2/ktesting"

	"github.com/pocketkube/pocketkube/internal/golden"
)

func TestWriteAtomic(t *testing.T) {
	steps := []struct {
		name        string
		payload     map[string]FileProjection
		wantChanged bool
	}{
		{name: "first write", wantChanged: true, payload: map[string]FileProjection{
			"a": {Data: []byte("1"), Mode: 0o644}, "b": {Data: []byte("2"), Mode: 0o600}, "d/x": {Data: []byte("3"), Mode: 0o644},
		}},
		{name: "unchanged", wantChanged: false, payload: map[string]FileProjection{
			"a": {Data: []byte("1"), Mode: 0o644}, "b": {Data: []byte("2"), Mode: 0o600}, "d/x": {Data: []byte("3"), Mode: 0o644},
		}},
		{name: "mode only is no change", wantChanged: false, payload: map[string]FileProjection{
			"a": {Data: []byte("1"), Mode: 0o400}, "b": {Data: []byte("2"), Mode: 0o600}, "d/x": {Data: []byte("3"), Mode: 0o644},
		}},
		{name: "added changed removed", wantChanged: true, payload: map[string]FileProjection{
			"a": {Data: []byte("one"), Mode: 0o400}, "c": {Data: []byte("new"), Mode: 0o644}, "d/y": {Data: []byte("4"), Mode: 0o644},
		}},
		{name: "key removed only", wantChanged: true, payload: map[string]FileProjection{
			"a": {Data: []byte("one"), Mode: 0o400}, "d/y": {Data: []byte("4"), Mode: 0o644},
		}},
		{name: "empty", wantChanged: true, payload: map[string]FileProjection{}},
	}
	_, ctx := ktesting.NewTestContext(t)
	dir := t.TempDir()
	var prevData, prevPrevData string
	var prevStat map[string]syscall.Stat_t
	swapped := false
	for i, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			changed, err := WriteAtomic(ctx, dir, s.payload, nil)
			if err != nil {
				t.Fatal(err)
			}
			if changed != s.wantChanged {
				t.Errorf("changed = %v, want %v", changed, s.wantChanged)
			}
			data, err := os.Readlink(filepath.Join(dir, "..data"))
			if err != nil {
				t.Fatal(err)
			}
			if !tsDirRE.MatchString(data) || strings.Contains(data, "/") {
				t.Errorf("..data -> %q, want a relative timestamped directory", data)
			}
			if _, err := os.Lstat(filepath.Join(dir, "..data_tmp")); !os.IsNotExist(err) {
				t.Errorf("..data_tmp left behind: %v", err)
			}
			stat := statTree(t, dir)
			if s.wantChanged {
				if data == prevData {
					t.Errorf("..data not swapped: still %s", data)
				}
				// The previous directory stays until the next write, for
				// readers that resolved ..data just before the swap; the
				// one before it goes.
				if _, err := os.Stat(filepath.Join(dir, prevData)); prevData != "" && err != nil {
					t.Errorf("previous data dir %s removed: %v", prevData, err)
				}
				if _, err := os.Stat(filepath.Join(dir, prevPrevData)); prevPrevData != "" && !os.IsNotExist(err) {
					t.Errorf("data dir %s of two writes ago not removed: %v", prevPrevData, err)
				}
				swapped = swapped || prevData != ""
			} else {
				if data != prevData {
					t.Errorf("..data swapped to %s on an unchanged payload", data)
				}
				for p, st := range prevStat {
					if now := stat[p]; now.Ino != st.Ino || now.Mtim != st.Mtim || now.Ctim != st.Ctim {
						t.Errorf("%s was rewritten (inode/mtime/ctime changed)", p)
					}
				}
			}
			entries, _ := os.ReadDir(dir)
			var ts int
			for _, e := range entries {
				if tsDirRE.MatchString(e.Name()) {
					ts++
				}
			}
			if want := map[bool]int{false: 1, true: 2}[swapped]; ts != want {
				t.Errorf("%d timestamped directories, want %d", ts, want)
			}
			golden.Check(t, fmt.Sprintf("TestWriteAtomic/%d.golden", i), []byte(renderTree(t, dir)))
			if data != prevData {
				prevPrevData = prevData
			}
			prevData, prevStat = data, stat
		})
	}
}

func statTree(t *testing.T, dir string) map[string]syscall.Stat_t {
	t.Helper()
	out := map[string]syscall.Stat_t{}
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		out[p] = *fi.Sys().(*syscall.Stat_t)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestWriteAtomicSetPermsAndOwner(t *testing.T) {
	requireRoot(t)
	_, ctx := ktesting.NewTestContext(t)
	dir := t.TempDir()
	var got []string
	payload := map[string]FileProjection{"tok": {Data: []byte("t"), Mode: 0o600, FsUser: ptr[int64](1001)}}
	if _, err := WriteAtomic(ctx, dir, payload, func(sub string) error { got = append(got, sub); return nil }); err != nil {
		t.Fatal(err)
	}
	data, _ := os.Readlink(filepath.Join(dir, "..data"))
	if len(got) != 1 || got[0] != data {
		t.Errorf("setPerms called with %v, want [%s]", got, data)
	}
	for _, p := range []string{"tok", "..data/tok"} {
		fi, err := os.Lstat(filepath.Join(dir, p))
		if err != nil {
			t.Fatal(err)
		}
		if uid := fi.Sys().(*syscall.Stat_t).Uid; uid != 1001 {
			t.Errorf("%s owned by %d, want FsUser 1001", p, uid)
		}
	}
	if _, err := WriteAtomic(ctx, dir, payload, func(string) error { t.Error("setPerms called on an unchanged payload"); return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := WriteAtomic(ctx, filepath.Join(dir, "missing"), payload, nil); err == nil {
		t.Error("WriteAtomic into a missing directory succeeded")
	}
}

// A reader that resolved ..data just before a swap still finds complete
// files there (upstream's writer removes that directory at once, so such a
// reader gets ENOENT); after one more write the directory goes.
func TestWriteAtomicKeepsPreviousDirectory(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	dir := t.TempDir()
	write := func(v string) {
		t.Helper()
		if _, err := WriteAtomic(ctx, dir, map[string]FileProjection{"labels": {Data: []byte(v), Mode: 0o644}}, nil); err != nil {
			t.Fatal(err)
		}
	}
	write(`app="1"`)
	resolved, err := filepath.EvalSymlinks(filepath.Join(dir, "labels"))
	if err != nil {
		t.Fatal(err)
	}
	write(`app="2"`)
	if b, err := os.ReadFile(resolved); err != nil || string(b) != `app="1"` {
		t.Errorf("after one swap, the path resolved before it reads %q, %v; want the old bytes", b, err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "labels")); string(b) != `app="2"` {
		t.Errorf("labels = %q after the swap", b)
	}
	write(`app="3"`)
	if _, err := os.ReadFile(resolved); !os.IsNotExist(err) {
		t.Errorf("two writes later, the old directory is still there: %v", err)
	}
}

// TestWriteAtomicConcurrentReader reads the volume the way a container does
// (through the top-level symlinks) while the payload is swapped 200 times.
// Guaranteed, and checked strictly: no read sees a partial or mixed file, the
// top-level entries of keys present in every payload never disappear, and a
// read that re-resolves ..data succeeds. Not guaranteed by upstream's writer
// (nor kubelet's): a reader whose path walk resolved the old ..data target
// just before the swap can get ENOENT inside it while the writer removes the
// old directory. Such reads are retried and counted, not failed.
func TestWriteAtomicConcurrentReader(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	dir := t.TempDir()
	const size = 16 << 10
	payloadFor := func(v int) map[string]FileProjection {
		p := map[string]FileProjection{
			"big":        {Data: bytes.Repeat([]byte{byte('a' + v%26)}, size), Mode: 0o644},
			"nested/ver": {Data: []byte(fmt.Sprintf("%08d", v)), Mode: 0o644},
		}
		// A key that comes and goes, so removals are part of the swaps.
		if v%2 == 0 {
			p[fmt.Sprintf("even-%d", v)] = FileProjection{Data: []byte("e"), Mode: 0o644}
		}
		return p
	}
	if _, err := WriteAtomic(ctx, dir, payloadFor(0), nil); err != nil {
		t.Fatal(err)
	}
	var (
		stop      atomic.Bool
		reads     atomic.Int64
		transient atomic.Int64
		wg        sync.WaitGroup
		errMu     sync.Mutex
		errs      []string
	)
	fail := func(format string, args ...any) {
		errMu.Lock()
		defer errMu.Unlock()
		if len(errs) < 10 {
			errs = append(errs, fmt.Sprintf(format, args...))
		}
	}
	// read retries a read that lost the race with the old directory's removal.
	read := func(p string) ([]byte, error) {
		for try := 0; ; try++ {
			b, err := os.ReadFile(p)
			if err == nil || !os.IsNotExist(err) || try == 3 {
				return b, err
			}
			transient.Add(1)
		}
	}
	for r := 0; r < 2; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				for _, top := range []string{"big", "nested"} {
					if _, err := os.Lstat(filepath.Join(dir, top)); err != nil {
						fail("top-level entry %s: %v", top, err)
					}
				}
				b, err := read(filepath.Join(dir, "big"))
				if err != nil {
					fail("read big: %v", err)
				} else if len(b) != size || bytes.Count(b, b[:1]) != size {
					fail("big is partial or mixed: %d bytes", len(b))
				}
				v, err := read(filepath.Join(dir, "nested", "ver"))
				if err != nil {
					fail("read nested/ver: %v", err)
				} else if len(v) != 8 {
					fail("nested/ver is partial: %q", v)
				}
				reads.Add(1)
			}
		}()
	}
	for v := 1; v <= 200; v++ {
		changed, err := WriteAtomic(ctx, dir, payloadFor(v), nil)
		if err != nil || !changed {
			t.Fatalf("swap %d: changed=%v err=%v", v, changed, err)
		}
	}
	stop.Store(true)
	wg.Wait()
	for _, e := range errs {
		t.Error(e)
	}
	t.Logf("%d consistent reads during 200 swaps, %d transient ENOENT retried", reads.Load(), transient.Load())
	if b, _ := os.ReadFile(filepath.Join(dir, "nested", "ver")); string(b) != "00000200" {
		t.Errorf("final nested/ver = %q", b)
	}
	if _, err := os.Lstat(filepath.Join(dir, "even-198")); !os.IsNotExist(err) {
		t.Errorf("even-198 link still present after its key was removed: %v", err)
	}
}

// BenchmarkWriteAtomic measures a small payload update (3 files, one of them
// changed each time, as a token refresh): one ..data swap per iteration, on
// the test's disk and on a tmpfs (where secrets live).
func BenchmarkWriteAtomic(b *testing.B) {
	payloads := [2]map[string]FileProjection{}
	for i := range payloads {
		payloads[i] = map[string]FileProjection{
			"namespace": {Data: []byte("default"), Mode: 0o644},
			"ca.crt":    {Data: bytes.Repeat([]byte("c"), 1200), Mode: 0o644},
			"token":     {Data: bytes.Repeat([]byte{byte('a' + i)}, 900), Mode: 0o644},
		}
	}
	benchDirs(b, func(b *testing.B, dir string) {
		ctx := context.Background() // no test logger: measure the writer, not logging
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			if _, err := WriteAtomic(ctx, dir, payloads[i%2], nil); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkWriteAtomicUnchanged measures the no-op path a resync takes.
func BenchmarkWriteAtomicUnchanged(b *testing.B) {
	p := map[string]FileProjection{
		"namespace": {Data: []byte("default"), Mode: 0o644},
		"ca.crt":    {Data: bytes.Repeat([]byte("c"), 1200), Mode: 0o644},
		"token":     {Data: bytes.Repeat([]byte("t"), 900), Mode: 0o644},
	}
	benchDirs(b, func(b *testing.B, dir string) {
		ctx := context.Background()
		if _, err := WriteAtomic(ctx, dir, p, nil); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := WriteAtomic(ctx, dir, p, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// benchDirs runs f in a directory of b.TempDir's file system and, as root, on
// a fresh tmpfs.
func benchDirs(b *testing.B, f func(b *testing.B, dir string)) {
	b.Run("disk", func(b *testing.B) { f(b, b.TempDir()) })
	b.Run("tmpfs", func(b *testing.B) {
		requireRoot(b)
		dir := b.TempDir()
		if err := mountTmpfs(dir, 64<<20); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() {
			if err := unmount(dir); err != nil {
				b.Error(err)
			}
		})
		f(b, dir)
	})
}
