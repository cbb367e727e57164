package agent

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/pocketkube/pocketkube/internal/node/runtime"
)

// endlessExec writes n bytes to stdout and stderr alike, in 64 KiB
// writes, as `cat /dev/zero` would until its probe's timeout.
type endlessExec struct{ n int }

func (e endlessExec) Exec(_ context.Context, _ string, _ []string, s runtime.Streams) (int, error) {
	chunk := bytes.Repeat([]byte{'z'}, 64<<10)
	for written := 0; written < e.n; written += 2 * len(chunk) {
		if _, err := s.Stdout.Write(chunk); err != nil {
			return -1, err
		}
		if _, err := s.Stderr.Write(chunk); err != nil {
			return -1, err
		}
	}
	return 0, nil
}

// TestExecSyncCapsOutput checks that a probe's or hook's output is kept
// up to containerd's 16 MiB and the rest read and dropped (issue 13:
// `cat /dev/zero` as an exec probe grew pocketkube until the OOM killer
// came), and that the command is not stopped by the cap.
func TestExecSyncCapsOutput(t *testing.T) {
	tests := []struct {
		name    string
		written int
		want    int
	}{
		{name: "small", written: 128 << 10, want: 128 << 10},
		{name: "at the cap", written: maxExecSyncOutput, want: maxExecSyncOutput},
		{name: "endless", written: 256 << 20, want: maxExecSyncOutput},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, code, err := execSync{endlessExec{tt.written}}.ExecSync(context.Background(), "c", []string{"cat", "/dev/zero"}, time.Second)
			if err != nil || code != 0 {
				t.Fatalf("ExecSync: %d, %v", code, err)
			}
			if len(out) != tt.want {
				t.Errorf("kept %d bytes, want %d", len(out), tt.want)
			}
		})
	}
}
