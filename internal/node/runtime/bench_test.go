package runtime

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkCreateStart measures CreateContainer + StartContainer + the exit
// notification of `true` (the container is removed outside the timer), with
// each kind of shim: this test binary re-executed (as `pocketkube
// runtime-shim` is, but with fewer packages to initialise), the small
// cmd/pocketkube-shim binary (built here with the go tool), and, when
// $POCKETKUBE_BIN names a pocketkube binary, its runtime-shim command.
func BenchmarkCreateStart(b *testing.B) {
	b.Run("shim=test-binary", func(b *testing.B) { benchCreateStart(b, newTestEnv(b)) })
	b.Run("shim=pocketkube-shim", func(b *testing.B) {
		p := buildShim(b)
		benchCreateStart(b, newTestEnv(b, func(c *Config) { c.ShimPath, c.ShimArgs = p, nil }))
	})
	b.Run("shim=pocketkube-runtime-shim", func(b *testing.B) {
		p := os.Getenv("POCKETKUBE_BIN")
		if p == "" {
			b.Skip("set POCKETKUBE_BIN to a pocketkube binary to measure its runtime-shim command")
		}
		benchCreateStart(b, newTestEnv(b, func(c *Config) { c.ShimPath, c.ShimArgs = p, []string{"runtime-shim"} }))
	})
}

func benchCreateStart(b *testing.B, e *testEnv) {
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

// buildShim builds cmd/pocketkube-shim as `make build` does.
func buildShim(tb testing.TB) string {
	tb.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		tb.Skip("needs the go tool in $PATH to build the shim")
	}
	p := filepath.Join(tb.TempDir(), "pocketkube-shim")
	cmd := exec.Command(goBin, "build", "-trimpath", "-ldflags", "-s -w", "-o", p, "github.com/pocketkube/pocketkube/cmd/pocketkube-shim")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("build shim: %v\n%s", err, out)
	}
	return p
}
