package prober

import (
	"context"
	"io"
	"time"
)

// StreamExecutor is an Executor that can also write a command's output
// (stdout and stderr) to out as it comes, instead of collecting it. The
// exec prober then keeps what upstream's keeps (10 KiB, maxReadLength)
// and nothing more is held in memory: a probe like `cat /dev/zero` would
// otherwise have the runtime collect up to its cap (16 MiB) every period.
// Optional: found by type assertion. out is written by one goroutine at
// a time.
type StreamExecutor interface {
	ExecStream(ctx context.Context, containerID string, cmd []string, timeout time.Duration, out io.Writer) (exitCode int, err error)
}

// execOutput runs e's command, streaming its output into e.out when the
// executor can (the output is then not returned), and collecting it
// otherwise.
func (e *execCmd) execOutput(ctx context.Context) ([]byte, int, error) {
	if s, ok := e.exec.(StreamExecutor); ok && e.out != nil {
		code, err := s.ExecStream(ctx, e.containerID, e.cmd, e.timeout, &keepHead{w: e.out})
		return nil, code, err
	}
	return e.exec.ExecSync(ctx, e.containerID, e.cmd, e.timeout)
}

// keepHead writes to w until a write fails (upstream's LimitWriter once
// full) and then reads and drops the rest, so that the command goes on
// as it would under kubelet rather than dying of a closed pipe.
type keepHead struct {
	w    io.Writer
	full bool
}

func (k *keepHead) Write(p []byte) (int, error) {
	if !k.full {
		if _, err := k.w.Write(p); err != nil {
			k.full = true
		}
	}
	return len(p), nil
}
