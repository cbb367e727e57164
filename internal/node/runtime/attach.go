package runtime

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/sys/unix"
)

// The attach socket (<bundle>/attach.sock, served by the shim) carries
// frames both ways: a 1-byte type, a 4-byte big-endian length, the data.
// Shim → client: frameStdout / frameStderr with the container's output.
// Client → shim: frameStdin (an empty one closes the container's stdin when
// the container has StdinOnce) and frameResize (4 bytes: width, height).
const (
	frameStdout byte = 1
	frameStderr byte = 2
	frameStdin  byte = 3
	frameResize byte = 4
)

func writeFrame(w io.Writer, typ byte, data []byte) error {
	hdr := [5]byte{typ}
	binary.BigEndian.PutUint32(hdr[1:], uint32(len(data)))
	if _, err := w.Write(append(hdr[:], data...)); err != nil {
		return err
	}
	return nil
}

func readFrame(r io.Reader) (byte, []byte, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[1:])
	if n > 1<<20 {
		return 0, nil, fmt.Errorf("attach frame of %d bytes", n)
	}
	data := make([]byte, n)
	_, err := io.ReadFull(r, data)
	return hdr[0], data, err
}

// sockPath names a socket in dir through /proc/self/fd, so that long state
// directories do not hit the 108-byte sun_path limit (as conmon does). The
// returned func closes the directory fd.
func sockPath(dir, name string) (string, func(), error) {
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", nil, fmt.Errorf("open %s: %w", dir, err)
	}
	return fmt.Sprintf("/proc/self/fd/%d/%s", fd, name), func() { unix.Close(fd) }, nil
}

// attachServer fans the container's output out to attached clients and
// feeds their input to the container.
type attachServer struct {
	mu        sync.Mutex
	conns     map[net.Conn]bool
	stdin     io.WriteCloser // nil without stdin
	stdinOnce bool
	resize    func(TerminalSize) // nil without a terminal
}

func (a *attachServer) output(typ byte) io.Writer {
	return writerFunc(func(p []byte) (int, error) {
		a.mu.Lock()
		defer a.mu.Unlock()
		for c := range a.conns {
			if writeFrame(c, typ, p) != nil {
				c.Close()
				delete(a.conns, c)
			}
		}
		return len(p), nil
	})
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func (a *attachServer) serve(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		a.mu.Lock()
		if a.conns == nil {
			a.conns = map[net.Conn]bool{}
		}
		a.conns[c] = true
		a.mu.Unlock()
		go a.input(c)
	}
}

func (a *attachServer) input(c net.Conn) {
	for {
		typ, data, err := readFrame(c)
		if err != nil {
			return
		}
		switch typ {
		case frameStdin:
			if a.stdin == nil {
				continue
			}
			if len(data) == 0 {
				if a.stdinOnce {
					a.stdin.Close()
				}
				continue
			}
			_, _ = a.stdin.Write(data)
		case frameResize:
			if a.resize != nil && len(data) == 4 {
				a.resize(TerminalSize{Width: binary.BigEndian.Uint16(data), Height: binary.BigEndian.Uint16(data[2:])})
			}
		}
	}
}

func (a *attachServer) closeAll() {
	a.mu.Lock()
	defer a.mu.Unlock()
	for c := range a.conns {
		c.Close()
	}
	a.conns = nil
}

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
	path, done, err := sockPath(r.containerDir(id), "attach.sock")
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
		return writeFrame(conn, typ, data)
	}
	if s.Stdin != nil {
		go func() {
			buf := make([]byte, 32*1024)
			for {
				n, err := s.Stdin.Read(buf)
				if n > 0 && send(frameStdin, buf[:n]) != nil {
					return
				}
				if err != nil {
					_ = send(frameStdin, nil)
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
				if send(frameResize, b[:]) != nil {
					return
				}
			}
		}()
	}
	for {
		typ, data, err := readFrame(conn)
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
		if typ == frameStderr && !s.TTY {
			w = s.Stderr
		}
		if w != nil {
			if _, err := w.Write(data); err != nil {
				return fmt.Errorf("attach to container %s: %w", id, err)
			}
		}
	}
}

// listenAttach starts the shim's attach socket in bundle.
func listenAttach(bundle string) (net.Listener, error) {
	path, done, err := sockPath(bundle, "attach.sock")
	if err != nil {
		return nil, err
	}
	defer done()
	_ = os.Remove(filepath.Join(bundle, "attach.sock"))
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listen on attach socket: %w", err)
	}
	return ln, nil
}
