package runtime

import (
	"testing"
	"time"
)

// BenchmarkCreateStart measures CreateContainer + StartContainer + the exit
// notification of `true` (the container is removed outside the timer).
func BenchmarkCreateStart(b *testing.B) {
	e := newTestEnv(b)
	pod := e.pod(b, "bench")
	cfg := e.container(pod, "true", "true")
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		id := e.run(b, cfg)
		for got := ""; got != id; {
			select {
			case got = <-e.exitCh:
			case <-time.After(time.Minute):
				b.Fatalf("no exit of %s", id)
			}
		}
		b.StopTimer()
		if err := e.r.RemoveContainer(e.ctx, id); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}
