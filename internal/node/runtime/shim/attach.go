package shim

import (
	"encoding/binary"
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
// Shim → client: FrameStdout / FrameStderr with the container's output.
// Client → shim: FrameStdin (an empty one closes the container's stdin when
// the container has StdinOnce) and FrameResize (4 bytes: width, height, big
// endian). Shims of earlier versions speak the same: keep it compatible.
const (
	FrameStdout byte = 1
	FrameStderr byte = 2
	FrameStdin  byte = 3
	FrameResize byte = 4
)

// maxFrame bounds a frame's data, so that a bad peer cannot make the other
// side allocate without limit.
const maxFrame = 1 << 20

// WriteFrame writes one frame of type typ carrying data, in one Write.
func WriteFrame(w io.Writer, typ byte, data []byte) error {
	hdr := [5]byte{typ}
	binary.BigEndian.PutUint32(hdr[1:], uint32(len(data)))
	if _, err := w.Write(append(hdr[:], data...)); err != nil {
		return err
	}
	return nil
}

// ReadFrame reads one frame and returns its type and data; frames over 1 MiB
// are an error.
func ReadFrame(r io.Reader) (byte, []byte, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[1:])
	if n > maxFrame {
		return 0, nil, fmt.Errorf("attach frame of %d bytes", n)
	}
	data := make([]byte, n)
	_, err := io.ReadFull(r, data)
	return hdr[0], data, err
}

// SockPath names a socket in dir through /proc/self/fd, so that long state
// directories do not hit the 108-byte sun_path limit (as conmon does). The
// returned func closes the directory fd.
func SockPath(dir, name string) (string, func(), error) {
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
	resize    func(width, height uint16) // nil without a terminal
}

func (a *attachServer) output(typ byte) io.Writer {
	return writerFunc(func(p []byte) (int, error) {
		a.mu.Lock()
		defer a.mu.Unlock()
		for c := range a.conns {
			if WriteFrame(c, typ, p) != nil {
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
		typ, data, err := ReadFrame(c)
		if err != nil {
			return
		}
		switch typ {
		case FrameStdin:
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
		case FrameResize:
			if a.resize != nil && len(data) == 4 {
				a.resize(binary.BigEndian.Uint16(data), binary.BigEndian.Uint16(data[2:]))
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

// listenAttach starts the shim's attach socket in bundle.
func listenAttach(bundle string) (net.Listener, error) {
	path, done, err := SockPath(bundle, AttachSocket)
	if err != nil {
		return nil, err
	}
	defer done()
	_ = os.Remove(filepath.Join(bundle, AttachSocket))
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listen on attach socket: %w", err)
	}
	return ln, nil
}
