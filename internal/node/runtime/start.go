package runtime

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// execFifo is the FIFO in runc's state directory of a created container
// on which its `runc init` waits: opening it for reading lets the init
// exec the container's process (runc's libcontainer execFifoFilename).
const execFifo = "exec.fifo"

// startCreated is `runc start` of a created container without the runc
// process (a fork and exec of runc on every container start, ~10 ms of a
// pod's start): what runc's Container.exec does. The init, blocked
// opening the FIFO for writing, writes a byte once a reader opens it and
// then execs the container's process; the reader reads it and removes the
// FIFO, which makes the container "running" to runc. While the open
// waits, the init is checked every 100 ms, as runc does: when it died, the
// open is released by a writer of our own and the start fails. ok is
// false when there is no FIFO to open (not created, or started already):
// then runc itself says what is wrong.
func (r *Runtime) startCreated(ctx context.Context, id string) (ok bool, err error) {
	st, err := r.runcStatus(ctx, id)
	if err != nil || st.Status != "created" {
		return false, nil
	}
	if oci := r.ociOf(id); oci.name == Crun {
		return startCrunCreated(filepath.Join(oci.root, id, execFifo))
	}
	path := filepath.Join(r.runcRoot(), id, execFifo)
	type opened struct {
		f   *os.File
		err error
	}
	ch := make(chan opened, 1)
	go func() {
		f, err := os.OpenFile(path, os.O_RDONLY, 0)
		ch <- opened{f, err}
	}()
	// release ends a blocked open: a writer that leaves at once gives the
	// reader EOF without the init's byte.
	release := func() {
		if w, err := os.OpenFile(path, os.O_WRONLY|unix.O_NONBLOCK, 0); err == nil {
			w.Close()
		}
	}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case o := <-ch:
			if o.err != nil {
				if errors.Is(o.err, os.ErrNotExist) {
					return false, nil
				}
				return true, fmt.Errorf("open exec fifo: %w", o.err)
			}
			defer o.f.Close()
			b, err := io.ReadAll(o.f)
			if err != nil {
				return true, fmt.Errorf("read exec fifo: %w", err)
			}
			if len(b) == 0 {
				return true, errors.New("container process is already dead")
			}
			if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
				return true, err
			}
			return true, nil
		case <-tick.C:
			if s, err := r.runcStatus(ctx, id); err == nil && s.Status != "created" {
				release()
			}
		case <-ctx.Done():
			release()
			go func() {
				if o := <-ch; o.f != nil {
					o.f.Close()
				}
			}()
			return true, ctx.Err()
		}
	}
}
