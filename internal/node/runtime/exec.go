package runtime

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// Exec runs cmd in the running container id with `runc exec` (inheriting the
// init's env, user and capabilities) and returns its exit code. A non-nil
// error means the exec could not run, not that cmd failed. When ctx is
// done, cmd and the processes it started are killed.
//
// With s.TTY, runc runs in the foreground with a terminal of ours as its
// stdio (runc refuses a console socket unless it detaches, and a detached
// exec's exit code is lost): runc puts that terminal in raw mode and relays
// it to the container's terminal, output goes to s.Stdout, and s.Resize sets
// our terminal's size (TIOCSWINSZ), which runc forwards on SIGWINCH.
// runc receives the container's terminal while the command already runs, so
// output of its first milliseconds may precede the raw mode ("\r\r\n") and
// the size.
func (r *Runtime) Exec(ctx context.Context, id string, cmd []string, s Streams) (int, error) {
	if len(cmd) == 0 {
		return -1, fmt.Errorf("exec in container %s: %w", id, ErrNoCommand)
	}
	if _, err := r.loadMeta(id); err != nil {
		return -1, fmt.Errorf("exec in container %s: %w", id, err)
	}
	st, err := r.runcStatus(ctx, id)
	if err != nil || st.Status != "running" {
		return -1, fmt.Errorf("exec in container %s: %w", id, ErrNotRunning)
	}
	pidNS, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", st.Pid))
	pidFile, err := r.execPidFile(id)
	if err != nil {
		return -1, fmt.Errorf("exec in container %s: %w", id, err)
	}
	defer os.Remove(pidFile)
	oci := r.ociOf(id)
	args := []string{"exec", "--pid-file", pidFile}
	var oomScoreAdj *int
	if oci.name == Crun {
		proc, adj, err := r.execProcessFile(id, cmd, s.TTY)
		if err != nil {
			return -1, fmt.Errorf("exec in container %s: %w", id, err)
		}
		defer os.Remove(proc)
		args = append(args, "--process", proc, id)
		oomScoreAdj = adj
	} else {
		if s.TTY {
			args = append(args, "--tty")
		}
		args = append(append(args, id), cmd...)
	}
	c := oci.command(ctx, args...)
	if oomScoreAdj != nil {
		// runc exec gives the process the container's oom_score_adj;
		// crun exec leaves it the one crun has, so crun starts with it
		// (util-linux's choom sets it and execs crun).
		choom, err := exec.LookPath("choom")
		if err != nil {
			return -1, fmt.Errorf("exec in container %s: %w", id, err)
		}
		c.Args = append([]string{choom, "-n", strconv.Itoa(*oomScoreAdj), "--"}, c.Args...)
		c.Path = choom
	}
	// When ctx ends (a probe's timeout), kill what runc started, not
	// only runc; once more afterwards, in case runc started it late.
	c.Cancel = func() error {
		killExec(pidFile, pidNS)
		return c.Process.Kill()
	}
	defer func() {
		if ctx.Err() != nil {
			killExec(pidFile, pidNS)
		}
	}()
	if !s.TTY {
		c.Stdout, c.Stderr = orDiscard(s.Stdout), orDiscard(s.Stderr)
		c.WaitDelay = execWaitDelay
		if s.Stdin == nil {
			return exitCode(id, ignoreWaitDelay(c.Run()))
		}
		// Not c.Stdin = s.Stdin: Wait would wait for the copy of stdin,
		// which ends only when the client closes it. Like containerd, the
		// exec ends when the command exits; the copy ends at the next read
		// or write after that, or when the session's streams close.
		in, err := c.StdinPipe()
		if err != nil {
			return -1, fmt.Errorf("exec in container %s: %w", id, err)
		}
		if err := c.Start(); err != nil {
			return -1, fmt.Errorf("exec in container %s: %w", id, err)
		}
		go func() {
			_, _ = io.Copy(in, s.Stdin)
			in.Close()
		}()
		return exitCode(id, ignoreWaitDelay(c.Wait()))
	}
	master, slave, err := openPty()
	if err != nil {
		return -1, fmt.Errorf("exec in container %s: %w", id, err)
	}
	defer master.Close()
	// A size already queued is set before runc starts, which copies it to
	// the container's terminal at once.
	if s.Resize != nil {
		select {
		case sz := <-s.Resize:
			_ = unix.IoctlSetWinsize(int(master.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: sz.Height, Col: sz.Width})
		default:
		}
	}
	c.Stdin, c.Stdout, c.Stderr = slave, slave, slave
	c.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	err = c.Start()
	slave.Close() // the master sees EIO once runc closes its copies
	if err != nil {
		return -1, fmt.Errorf("exec in container %s: %w", id, err)
	}
	done := make(chan struct{})
	defer close(done)
	if s.Resize != nil {
		go func() {
			for {
				select {
				case sz, ok := <-s.Resize:
					if !ok {
						return
					}
					ws := &unix.Winsize{Row: sz.Height, Col: sz.Width}
					_ = unix.IoctlSetWinsize(int(master.Fd()), unix.TIOCSWINSZ, ws)
					if oci.name == Crun {
						resizeExecTerminal(pidFile, ws)
					}
				case <-done:
					return
				}
			}
		}()
	}
	if s.Stdin != nil {
		go func() { _, _ = io.Copy(master, s.Stdin) }()
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_, _ = io.Copy(orDiscard(s.Stdout), master) // ends with EIO
	}()
	err = c.Wait()
	wg.Wait()
	return exitCode(id, err)
}

// resizeExecTerminal sets the size of the terminal of the process that
// `crun exec --tty` started (its pid in pidFile): crun relays the
// terminal's data but not SIGWINCH, as runc does. The size is set on the
// container's side of its terminal, the process's stdin, which signals
// the process's foreground group as a resize of the master would.
func resizeExecTerminal(pidFile string, ws *unix.Winsize) {
	b, err := os.ReadFile(pidFile)
	if err != nil {
		return
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return
	}
	f, err := os.OpenFile(fmt.Sprintf("/proc/%d/fd/0", pid), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		return
	}
	defer f.Close()
	_ = unix.IoctlSetWinsize(int(f.Fd()), unix.TIOCSWINSZ, ws)
}

// openPty returns a new pseudo-terminal pair.
func openPty() (master, slave *os.File, err error) {
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("open pty: %w", err)
	}
	fd := int(m.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		m.Close()
		return nil, nil, fmt.Errorf("unlock pty: %w", err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		m.Close()
		return nil, nil, fmt.Errorf("get pty number: %w", err)
	}
	sl, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		m.Close()
		return nil, nil, fmt.Errorf("open pty slave: %w", err)
	}
	return m, sl, nil
}

// exitCode turns runc's exit into the exec's exit code. runc exits with the
// process's code; 255 is also what runc uses for its own failures.
func exitCode(id string, err error) (int, error) {
	if err == nil {
		return 0, nil
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() >= 0 {
		return ee.ExitCode(), nil
	}
	return -1, fmt.Errorf("exec in container %s: %w", id, err)
}

func orDiscard(w io.Writer) io.Writer {
	if w == nil {
		return io.Discard
	}
	return w
}

// ignoreWaitDelay treats exec.ErrWaitDelay as success: the command
// exited 0 and a process it left behind still holds its output.
func ignoreWaitDelay(err error) error {
	if errors.Is(err, exec.ErrWaitDelay) {
		return nil
	}
	return err
}
