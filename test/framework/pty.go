package framework

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"k8s.io/apimachinery/pkg/util/wait"
)

// PTY is a command whose stdin, stdout and stderr are the slave of a
// pseudo-terminal we hold the master of, as a shell in a terminal
// emulator: kubectl -t then sees a real terminal, puts it in raw mode and
// sends its size, and a TIOCSWINSZ on the master sends it SIGWINCH.
type PTY struct {
	master *os.File
	cmd    *exec.Cmd
	mu     sync.Mutex
	out    bytes.Buffer
	read   chan struct{} // closed when the master reads EIO (all slaves closed)
}

// StartInPty starts name with args on a new terminal of rows × cols; it
// is killed when the test ends.
func StartInPty(t testing.TB, rows, cols uint16, name string, args ...string) *PTY {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	fd := int(master.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	slave, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	p := &PTY{master: master, read: make(chan struct{})}
	p.Resize(t, rows, cols)
	p.cmd = exec.Command(name, args...)
	p.cmd.Stdin, p.cmd.Stdout, p.cmd.Stderr = slave, slave, slave
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	slave.Close()
	go func() {
		defer close(p.read)
		buf := make([]byte, 4096)
		for {
			n, err := master.Read(buf)
			p.mu.Lock()
			p.out.Write(buf[:n])
			p.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		master.Close()
	})
	return p
}

// Resize sets the terminal's size.
func (p *PTY) Resize(t testing.TB, rows, cols uint16) {
	t.Helper()
	if err := unix.IoctlSetWinsize(int(p.master.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: rows, Col: cols}); err != nil {
		t.Fatal(err)
	}
}

// Output is what the terminal showed so far.
func (p *PTY) Output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// Write types s.
func (p *PTY) Write(t testing.TB, s string) {
	t.Helper()
	if _, err := p.master.Write([]byte(s)); err != nil {
		t.Fatal(err)
	}
}

// WaitFor waits until the terminal output (from offset from on) contains
// s, or fails the test after timeout.
func (p *PTY) WaitFor(t testing.TB, from int, s string, timeout time.Duration) {
	t.Helper()
	err := wait.PollUntilContextTimeout(t.Context(), 20*time.Millisecond, timeout, true, func(context.Context) (bool, error) {
		out := p.Output()
		return len(out) >= from && strings.Contains(out[from:], s), nil
	})
	if err != nil {
		t.Fatalf("terminal never showed %q; it shows:\n%q", s, p.Output())
	}
}

// Exit waits for the process and returns its exit code.
func (p *PTY) Exit(t testing.TB, timeout time.Duration) int {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		<-p.read
		if err == nil {
			return 0
		}
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode()
		}
		t.Fatal(err)
	case <-time.After(timeout):
		t.Fatalf("process still running after %s; terminal:\n%q", timeout, p.Output())
	}
	return -1
}
