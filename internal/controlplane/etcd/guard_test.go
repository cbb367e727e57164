package etcd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// smallFS mounts a tmpfs of size bytes for the test.
func smallFS(t *testing.T, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size="+size+",mode=0700"); err != nil {
		t.Skipf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() { _ = unix.Unmount(dir, unix.MNT_DETACH) })
	return dir
}

// fillTo fills file's filesystem until about free bytes are left (etcd
// may write meanwhile: what it took is left out).
func fillTo(t *testing.T, file string, free int64) {
	t.Helper()
	f, err := os.OpenFile(file, os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for range 10 {
		have, err := freeBytes(filepath.Dir(file))
		if err != nil {
			t.Fatal(err)
		}
		fi, err := f.Stat()
		if err != nil {
			t.Fatal(err)
		}
		n := have - free
		if n <= 0 {
			return
		}
		if err = unix.Fallocate(int(f.Fd()), 0, fi.Size(), n); err == nil {
			return
		} else if !errors.Is(err, unix.ENOSPC) {
			t.Fatal(err)
		}
	}
	t.Fatal("cannot fill the filesystem: etcd keeps taking space")
}

// TestDiskGuardRefusesWritesBelowReserve fills the data directory's
// filesystem past the reserve: etcd refuses writes with its NOSPACE error
// and serves reads, never exits, and accepts writes again once the space
// is freed, with everything it acknowledged.
func TestDiskGuardRefusesWritesBelowReserve(t *testing.T) {
	ctx := context.Background()
	mnt := smallFS(t, "256m")
	dir := filepath.Join(mnt, "etcd")
	s, err := Start(ctx, Config{DataDir: dir, ReserveBytes: 96 << 20, GuardPeriod: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c := startClient(t, s)
	if _, err := c.Put(ctx, "/registry/before", "v"); err != nil {
		t.Fatal(err)
	}
	filler := filepath.Join(mnt, "filler")
	fillTo(t, filler, 32<<20)

	// Writes go on until the guard sees the space; then none is taken.
	var putErr error
	for i := 0; i < 200; i++ {
		if _, putErr = c.Put(ctx, "/registry/until-alarm", strings.Repeat("x", 1000)); putErr != nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if putErr == nil || !strings.Contains(putErr.Error(), NoSpaceError) {
		t.Fatalf("put with the disk past the reserve: %v, want %q", putErr, NoSpaceError)
	}
	// Many more writes are refused, none is applied, etcd stays up.
	for i := 0; i < 500; i++ {
		if _, err := c.Put(ctx, "/registry/during", strings.Repeat("x", 100000)); err == nil {
			t.Fatal("a put was accepted under the NOSPACE alarm")
		}
	}
	select {
	case err := <-s.Err():
		t.Fatalf("etcd failed: %v", err)
	default:
	}
	got, err := c.Get(ctx, "/registry/before")
	if err != nil || len(got.Kvs) != 1 {
		t.Fatalf("read under the alarm: %v %v", got, err)
	}
	if _, err := c.Delete(ctx, "/registry/before"); err != nil {
		t.Fatalf("delete under the alarm: %v", err)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		if _, putErr = c.Put(ctx, "/registry/after", "v"); putErr == nil {
			break
		}
		if i == 200 {
			t.Fatalf("put after freeing space: %v", putErr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if len(s.etcd.Server.Alarms()) != 0 {
		t.Errorf("alarms after freeing space: %v", s.etcd.Server.Alarms())
	}

	// A restart keeps what was acknowledged and nothing that was refused.
	c.Close()
	s.Close()
	s, err = Start(ctx, Config{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c = startClient(t, s)
	for key, want := range map[string]int{"/registry/before": 0, "/registry/during": 0, "/registry/after": 1} {
		got, err := c.Get(ctx, key)
		if err != nil || len(got.Kvs) != want {
			t.Errorf("after restart %s: %v %v, want %d keys", key, got, err, want)
		}
	}
}

// TestDiskGuardLeavesQuotaAlarm: the alarm etcd raises itself when its
// database reaches its quota is not disarmed by the guard, however much
// disk is free: it needs a compaction and defragmentation first.
func TestDiskGuardLeavesQuotaAlarm(t *testing.T) {
	ctx := context.Background()
	s, err := Start(ctx, Config{DataDir: filepath.Join(t.TempDir(), "etcd"), GuardPeriod: 10 * time.Millisecond, QuotaBackendBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c := startClient(t, s)
	// etcd sees its database's size as of its last commit (every
	// 100 ms): put until it has.
	var putErr error
	for i := 0; i < 3000 && putErr == nil; i++ {
		_, putErr = c.Put(ctx, fmt.Sprintf("/registry/%d", i), strings.Repeat("x", 100000))
		time.Sleep(time.Millisecond)
	}
	if putErr == nil || !strings.Contains(putErr.Error(), NoSpaceError) {
		t.Fatalf("puts past the quota: %v, want %q", putErr, NoSpaceError)
	}
	// The guard looks many times; the alarm stays.
	time.Sleep(200 * time.Millisecond)
	if len(s.etcd.Server.Alarms()) != 1 {
		t.Fatalf("alarms %v, want etcd's NOSPACE", s.etcd.Server.Alarms())
	}
	if _, err := c.Put(ctx, "/registry/x", "v"); err == nil || !strings.Contains(err.Error(), NoSpaceError) {
		t.Errorf("put under the quota alarm: %v", err)
	}
}
