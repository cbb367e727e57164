package app

import (
	"context"
	"runtime"
	"runtime/debug"
	"testing"
	"time"
)

// TestTrimGoMemory: 64 MiB of dropped objects, still in the heap as
// garbage (the GC is off, as it is while an idle heap stays under its
// goal) or collected and kept as free pages, are reclaimable until
// trimGoMemory collects and returns them; it stops when its context is
// done.
func TestTrimGoMemory(t *testing.T) {
	const size, threshold = 64 << 20, 16 << 20
	for _, tc := range []struct {
		name    string
		collect bool // GC after dropping the objects: free pages, not garbage
	}{
		{"garbage", false},
		{"free pages", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer debug.SetGCPercent(debug.SetGCPercent(-1))
			runtime.GC()
			var keep [][]byte
			for range size >> 20 {
				keep = append(keep, make([]byte, 1<<20))
			}
			for _, b := range keep {
				b[0] = 1
			}
			keep = nil
			if tc.collect {
				runtime.GC()
			}
			if r := reclaimableHeap(); r < size/2 {
				t.Fatalf("reclaimable heap %d bytes after dropping %d: the runtime's counters do not show it", r, size)
			}
			ctx, cancel := context.WithCancel(t.Context())
			done := make(chan struct{})
			go func() { trimGoMemory(ctx, 10*time.Millisecond, threshold); close(done) }()
			deadline := time.Now().Add(10 * time.Second)
			for reclaimableHeap() > threshold && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			if r := reclaimableHeap(); r > threshold {
				t.Errorf("reclaimable heap %d bytes after trimGoMemory, want at most %d", r, threshold)
			}
			cancel()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Error("trimGoMemory still runs after its context was cancelled")
			}
		})
	}
}
