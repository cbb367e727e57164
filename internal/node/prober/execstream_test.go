package prober

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/kubernetes/pkg/probe"
)

// zeroStreamer is a StreamExecutor whose command writes n bytes of
// output in 32 KiB writes, then exits with code.
type zeroStreamer struct {
	n, code int
	written int
}

func (z *zeroStreamer) ExecSync(context.Context, string, []string, time.Duration) ([]byte, int, error) {
	panic("ExecSync called on a StreamExecutor by a probe")
}

func (z *zeroStreamer) ExecStream(_ context.Context, _ string, _ []string, _ time.Duration, out io.Writer) (int, error) {
	chunk := make([]byte, 32<<10)
	for z.written < z.n {
		n, err := out.Write(chunk)
		if err != nil {
			return -1, err // a closed pipe, under a real runtime
		}
		z.written += n
	}
	return z.code, nil
}

// TestExecProbeStreams checks that an exec probe on a StreamExecutor
// keeps upstream's 10 KiB of output and lets the command write the rest
// (issue 13: `cat /dev/zero` as a probe had the runtime collect it all).
func TestExecProbeStreams(t *testing.T) {
	tests := []struct {
		name string
		code int
		want probe.Result
	}{
		{name: "succeeds", code: 0, want: probe.Success},
		{name: "fails", code: 1, want: probe.Failure},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ex := &zeroStreamer{n: 64 << 20, code: tt.code}
			p := &v1.Probe{ProbeHandler: v1.ProbeHandler{Exec: &v1.ExecAction{Command: []string{"cat", "/dev/zero"}}}, TimeoutSeconds: 1}
			tg := target{pod: &v1.Pod{}, container: &v1.Container{Name: "c"}, containerID: "id"}
			res, out, err := newProbers().runProbe(context.Background(), ex, p, tg)
			if err != nil || res != tt.want {
				t.Fatalf("probe = %v, %v; want %v", res, err, tt.want)
			}
			if len(out) != 10<<10 || strings.Trim(out, "\x00") != "" {
				t.Errorf("probe output %d bytes, want upstream's 10240 zeros", len(out))
			}
			if ex.written != ex.n {
				t.Errorf("command wrote %d of %d bytes: its output was cut", ex.written, ex.n)
			}
		})
	}
}
