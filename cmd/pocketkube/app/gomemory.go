package app

import (
	"context"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// How `up` and `agent` return the Go heap's free memory to the OS
// (trimGoMemory).
const (
	trimInterval = 30 * time.Second
	// trimThreshold is how much reclaimable heap trimGoMemory leaves
	// alone: heap allocated since the last GC beyond what that GC found
	// live, plus free heap (freed by a GC, still resident).
	trimThreshold = 16 << 20
)

// trimGoMemory collects the Go heap and returns its free memory to the OS
// (debug.FreeOSMemory: a GC, then the scavenger on every free page) at
// each interval after which more than threshold bytes of it are
// reclaimable, until ctx is done.
//
// Left alone, the runtime collects only when the heap reaches its GC goal
// (GOGC: twice the live heap at the last GC, or every 2 minutes), keeps
// freed heap resident for reuse under that goal, and its background
// scavenger returns the rest slowly: a minute after a 100-pod burst was
// deleted, the heap held 100 MiB of garbage or 80 MiB of free pages
// beside 125 MiB of live objects (docs/BENCHMARKS.md, "Idle RSS: where
// the 390 MiB go"). A soft memory limit (GOMEMLIMIT) also bounds that,
// but it binds while the node is busy too: at 220 MiB the burst's GC CPU
// went from 1.4 s to 19 s. This costs at most one GC per interval, which
// a busy node's GOGC runs far more often anyway; GOGC and GOMEMLIMIT stay
// the user's.
func trimGoMemory(ctx context.Context, interval time.Duration, threshold uint64) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if reclaimableHeap() > threshold {
			debug.FreeOSMemory()
		}
	}
}

// reclaimableHeap is what a GC and a scavenge could return now, as far as
// the runtime's counters tell: the heap's objects beyond those the last GC
// found live (allocated since; some may be live by now), and its free
// pages not yet returned to the OS.
func reclaimableHeap() uint64 {
	s := []metrics.Sample{
		{Name: "/memory/classes/heap/objects:bytes"},
		{Name: "/gc/heap/live:bytes"},
		{Name: "/memory/classes/heap/free:bytes"},
	}
	metrics.Read(s)
	for _, x := range s {
		if x.Value.Kind() != metrics.KindUint64 {
			return 0
		}
	}
	objects, live, free := s[0].Value.Uint64(), s[1].Value.Uint64(), s[2].Value.Uint64()
	return max(objects, live) - live + free
}
