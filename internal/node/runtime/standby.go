package runtime

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"k8s.io/klog/v2"

	"github.com/pocketkube/pocketkube/internal/node/runtime/shim"
)

// A container's creation runs `runc create` under a new shim process, and
// on these machines a process start (fork, exec, the Go runtime's start)
// is ~15 ms of a ~180 ms pod start. So the runtime keeps one shim started
// ahead, waiting for its bundle (shim.Standby), and a creation takes it
// instead of starting one; the next is started as soon as that creation's
// create is done, beside the container's start, off the create's path.
// Creations that find none (the first, or several at once) start their
// own, as before.
//
// A waiting shim holds no container and no state of the runtime's: it
// ends when the runtime lets it go (Close), or when pocketkube ends, as
// either closes the pipe it waits on.

// standbyStartTimeout bounds how long startStandby waits for a shim to say
// that it waits for its bundle.
const standbyStartTimeout = 10 * time.Second

// standbyShim is a shim started with --standby: fd 3 is its report pipe,
// as for any shim, fd 4 the pipe it reads its bundle from.
type standbyShim struct {
	cmd    *exec.Cmd
	report *os.File // read end of the shim's fd 3
	bundle *os.File // write end of the shim's fd 4
}

// standbys holds the Runtime's waiting shim.
type standbys struct {
	mu       sync.Mutex
	waiting  *standbyShim
	starting bool
	closed   bool // by Close, or after a shim failed to wait
}

// startStandby starts a shim that waits for its bundle.
func (r *Runtime) startStandby() (*standbyShim, error) {
	reportR, reportW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	bundleR, bundleW, err := os.Pipe()
	if err != nil {
		reportR.Close()
		reportW.Close()
		return nil, err
	}
	cmd, err := startRetryBusy(func() *exec.Cmd {
		args := append(append([]string{}, r.cfg.ShimArgs...), "--"+shim.StandbyFlag, "--bundle", r.standbyPlaceholder())
		cmd := exec.Command(r.cfg.ShimPath, args...)
		cmd.ExtraFiles = []*os.File{reportW, bundleR}
		// A session of its own, as every shim's (startShim).
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		return cmd
	})
	reportW.Close()
	bundleR.Close()
	if err != nil {
		reportR.Close()
		bundleW.Close()
		return nil, err
	}
	go func() { _ = cmd.Wait() }() // reap the shim when it exits
	s := &standbyShim{cmd: cmd, report: reportR, bundle: bundleW}
	// It waits once it says so; one that exits first (e.g. a shim binary
	// that knows no --standby) or hangs is let go.
	ready := make([]byte, 1)
	err = reportR.SetReadDeadline(time.Now().Add(standbyStartTimeout))
	if err == nil {
		_, err = io.ReadFull(reportR, ready)
	}
	if err == nil && ready[0] != shim.StandbyReady {
		err = fmt.Errorf("shim said %q, want %q", ready, shim.StandbyReady)
	}
	if err == nil {
		err = reportR.SetReadDeadline(time.Time{})
	}
	if err != nil {
		s.release()
		return nil, fmt.Errorf("shim started ahead: %w", err)
	}
	return s, nil
}

// release lets a waiting shim go: it reads no bundle and exits.
func (s *standbyShim) release() {
	s.bundle.Close()
	s.report.Close()
}

// claim gives the waiting shim its bundle. It returns the shim's report
// pipe, or false when the shim did not take the bundle (it died while it
// waited); the shim is let go then.
func (s *standbyShim) claim(bundle string) (*os.File, bool) {
	_, err := io.WriteString(s.bundle, bundle)
	if cerr := s.bundle.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		s.report.Close()
		return nil, false
	}
	return s.report, true
}

// standbyPlaceholder is a waiting shim's --bundle argument: as long as a
// container's bundle directory, which the shim writes over it when it
// gets one (shim.Standby), so that ps shows which bundle a shim runs.
func (r *Runtime) standbyPlaceholder() string {
	return strings.Repeat(string(shim.StandbyPlaceholder), len(r.containerDir(strings.Repeat("0", 64))))
}

// takeStandby returns the waiting shim, or nil when there is none or the
// bundle's path does not fit its placeholder (a pause container's may not).
func (r *Runtime) takeStandby(bundle string) *standbyShim {
	if len(bundle) > len(r.standbyPlaceholder()) {
		return nil
	}
	r.standby.mu.Lock()
	defer r.standby.mu.Unlock()
	s := r.standby.waiting
	r.standby.waiting = nil
	return s
}

// refillStandby starts a waiting shim unless one waits or is starting,
// or the runtime is closed.
func (r *Runtime) refillStandby(ctx context.Context) {
	r.standby.mu.Lock()
	if r.standby.waiting != nil || r.standby.starting || r.standby.closed {
		r.standby.mu.Unlock()
		return
	}
	r.standby.starting = true
	r.standby.mu.Unlock()

	s, err := r.startStandby()
	if err != nil {
		klog.FromContext(ctx).Info("No shim started ahead any more: each container's shim starts with it", "err", err)
	}
	r.standby.mu.Lock()
	defer r.standby.mu.Unlock()
	r.standby.starting = false
	if s == nil {
		// A shim that cannot wait will not wait the next time either.
		r.standby.closed = true
		return
	}
	if r.standby.closed {
		s.release()
		return
	}
	r.standby.waiting = s
}

// closeStandby lets the waiting shim go and starts no other.
func (r *Runtime) closeStandby() {
	r.standby.mu.Lock()
	defer r.standby.mu.Unlock()
	r.standby.closed = true
	if s := r.standby.waiting; s != nil {
		s.release()
		r.standby.waiting = nil
	}
}
