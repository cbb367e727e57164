//go:build bench

package bench

import (
	"slices"
	"strconv"
	"testing"
	"time"
)

// quantile is the p-quantile of d as bench/podstart and bench/labels
// computed it: the element at index p·n of the sorted samples.
func quantile(d []time.Duration, p float64) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, int(p*float64(len(s))))]
}

// mean is the arithmetic mean of v.
func mean(v []float64) float64 {
	s := 0.0
	for _, x := range v {
		s += x
	}
	return s / float64(len(v))
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// reportQuantiles reports the p50, p99 (and with all, p90 and max) of d
// in milliseconds as name-p50-ms and so on.
func reportQuantiles(b *testing.B, name string, d []time.Duration, all bool) {
	b.Helper()
	if len(d) == 0 {
		return
	}
	b.ReportMetric(ms(quantile(d, 0.5)), name+"-p50-ms")
	b.ReportMetric(ms(quantile(d, 0.99)), name+"-p99-ms")
	if all {
		b.ReportMetric(ms(quantile(d, 0.9)), name+"-p90-ms")
		b.ReportMetric(ms(slices.Max(d)), name+"-max-ms")
	}
}

// noNsPerOp hides the ns/op figure: an iteration's loop time is not what
// these benchmarks measure (see the package doc).
func noNsPerOp(b *testing.B) { b.ReportMetric(0, "ns/op") }

// steadyAfter is how long after a burst of pods was Ready the memory
// benchmarks measure again, "steady": past pocketkube's 30 s heap trim
// (cmd/pocketkube/app/gomemory.go), when the burst's garbage is collected
// and returned; the peer gets the same wait.
const steadyAfter = 40 * time.Second

// rssKiB is VmRSS of process pid in KiB: with the pages of its binary
// that other processes share counted whole (pssKiB counts them once).
func rssKiB(pid int) (int, error) { return statusKiB(pid, "VmRSS:") }

// pssKiB is the proportional set size of process pid in KiB: its private
// pages, plus its share of the pages it maps with others (the one shim
// binary that every pod's shim runs counts once across them).
func pssKiB(pid int) (int, error) {
	return statusField("/proc/"+strconv.Itoa(pid)+"/smaps_rollup", "Pss:")
}
