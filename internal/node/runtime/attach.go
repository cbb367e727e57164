package runtime

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"

	"github.com/pocketkube/pocketkube/internal/node/runtime/shim"
)

// Attach connects s to the running container's stdio through its shim: the
// output from now on goes to s.Stdout/s.Stderr (a terminal's to s.Stdout),
// s.Stdin goes to the container's stdin (if it has one; at EOF a StdinOnce
// container's stdin is closed), s.Resize resizes its terminal. It returns
// when the container exits, when ctx is done, or with an error when the
// container does not run.
func (r *Runtime) Attach(ctx context.Context, id string, s Streams) error {
	if _, err := r.loadMeta(id); err != nil {
		return fmt.Errorf("attach to container %s: %w", id, err)
	}
	path, done, err := shim.SockPath(r.containerDir(id), shim.AttachSocket)
	if err != nil {
		return fmt.Errorf("attach to container %s: %w", id, err)
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", path)
	done()
	if err != nil {
		return fmt.Errorf("attach to container %s: %w", id, err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	var wmu sync.Mutex
	send := func(typ byte, data []byte) error {
		wmu.Lock()
		defer wmu.Unlock()
		return shim.WriteFrame(conn, typ, data)
	}
	if s.Stdin != nil {
		go func() {
			buf := make([]byte, 32*1024)
			for {
				n, err := s.Stdin.Read(buf)
				if n > 0 && send(shim.FrameStdin, buf[:n]) != nil {
					return
				}
				if err != nil {
					_ = send(shim.FrameStdin, nil)
					return
				}
			}
		}()
	}
	if s.Resize != nil {
		go func() {
			for sz := range s.Resize {
				var b [4]byte
				binary.BigEndian.PutUint16(b[:], sz.Width)
				binary.BigEndian.PutUint16(b[2:], sz.Height)
				if send(shim.FrameResize, b[:]) != nil {
					return
				}
			}
		}()
	}
	for {
		typ, data, err := shim.ReadFrame(conn)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || errors.Is(err, io.ErrUnexpectedEOF) {
				return nil
			}
			return fmt.Errorf("attach to container %s: %w", id, err)
		}
		w := s.Stdout
		if typ == shim.FrameStderr && !s.TTY {
			w = s.Stderr
		}
		if w != nil {
			if _, err := w.Write(data); err != nil {
				return fmt.Errorf("attach to container %s: %w", id, err)
			}
		}
	}
}
