package runtime

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"k8s.io/klog/v2"

	"github.com/pocketkube/pocketkube/internal/node/runtime/shim"
)

// A container whose shim died before it recorded the exit (the shim was
// killed, the host rebooted) would never exit for the agent: nothing
// writes its exit file. The runtime records one instead, as containerd
// does for a task whose shim is gone:
//
//   - the init is gone too (a reboot, or both were killed): exit code 255,
//     reason "Unknown", which containerd's CRI gives a container it finds
//     running without a task after a restart (internal/cri/server/restart.go:
//     unknownExitCode, unknownExitReason);
//   - the init still runs, its output going nowhere: it is killed, as
//     containerd's cleanupAfterDeadShim does with the shim's `delete`
//     (runc delete --force), and exits 137 (128+SIGKILL, the status that
//     delete reports), reason "Error".
//
// The exit file's appearance then reports the exit (Config.OnExit) like
// any other.
const (
	unknownExitCode   = 255
	unknownExitReason = "Unknown"
)

// lostShimCheckPeriod is how often the runtime looks for shims that died:
// kubelet's PLEG relists containers every second.
const lostShimCheckPeriod = time.Second

// shimPIDFile holds "<pid> <start time>" of a bundle's shim, written by
// startShim: the start time tells the shim from a later process with its
// PID (after a reboot PIDs start over).
const shimPIDFile = "shim.pid"

func recordShim(bundle string, pid int) error {
	_, start, err := procStat(pid)
	if err != nil {
		return fmt.Errorf("record shim: %w", err)
	}
	return writeFileAtomic(filepath.Join(bundle, shimPIDFile), fmt.Appendf(nil, "%d %d", pid, start))
}

// shimGone reports whether the shim of bundle has exited (a zombie
// included). A bundle without a shim.pid (a shim started by an earlier
// pocketkube, or one being started) is not known to be gone.
func shimGone(bundle string) bool {
	b, err := os.ReadFile(filepath.Join(bundle, shimPIDFile))
	if err != nil {
		return false
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return false
	}
	pid, err1 := strconv.Atoi(f[0])
	start, err2 := strconv.ParseUint(f[1], 10, 64)
	if err1 != nil || err2 != nil {
		return false
	}
	state, got, err := procStat(pid)
	return err != nil || got != start || state == 'Z' || state == 'X'
}

// recordLostExit writes the exit file of container id if its shim died
// without writing one, killing the container's init first if it still
// runs; it reports whether it wrote one.
func (r *Runtime) recordLostExit(ctx context.Context, id string) (bool, error) {
	if _, err := os.Stat(r.exitFile(id)); err == nil {
		return false, nil
	}
	dir := r.containerDir(id)
	if !shimGone(dir) {
		return false, nil
	}
	// The shim writes the exit file before it exits: looking again after
	// seeing it gone cannot miss one it wrote.
	if _, err := os.Stat(r.exitFile(id)); err == nil {
		return false, nil
	}
	if _, err := os.Stat(dir); err != nil {
		return false, nil // removed meanwhile
	}
	ex := shim.ExitStatus{ExitCode: unknownExitCode, Reason: unknownExitReason}
	st, err := r.runcStatus(ctx, id)
	if err != nil {
		return false, err
	}
	if st.Status == "running" || st.Status == "created" {
		if _, err := r.runc(ctx, id, "kill", id, "KILL"); err != nil && !r.gone(ctx, id) {
			return false, fmt.Errorf("kill container %s of a dead shim: %w", id, err)
		}
		for !r.gone(ctx, id) {
			if ctx.Err() != nil {
				return false, ctx.Err()
			}
			time.Sleep(10 * time.Millisecond)
		}
		ex = shim.ExitStatus{ExitCode: 128 + 9}
	}
	ex.FinishedAt = time.Now().UTC()
	if err := writeJSONAtomic(r.exitFile(id), ex); err != nil {
		return false, fmt.Errorf("record exit of container %s: %w", id, err)
	}
	klog.FromContext(ctx).Info("Container's shim is gone; recorded its exit", "containerID", id, "exitCode", ex.ExitCode)
	return true, nil
}

// watchLostShims records the exits of containers whose shim died, every
// lostShimCheckPeriod, until the runtime is closed.
func (r *Runtime) watchLostShims(ctx context.Context) {
	logger := klog.FromContext(ctx)
	t := time.NewTicker(lostShimCheckPeriod)
	defer t.Stop()
	for {
		entries, err := os.ReadDir(filepath.Join(r.cfg.StateDir, "containers"))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			logger.Error(err, "Looking for containers whose shim is gone")
		}
		for _, e := range entries {
			if _, err := r.recordLostExit(ctx, e.Name()); err != nil {
				logger.Error(err, "Recording the exit of a container whose shim is gone", "containerID", e.Name())
			}
		}
		select {
		case <-t.C:
		case <-r.done:
			return
		case <-ctx.Done():
			return
		}
	}
}
