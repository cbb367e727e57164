package framework

import (
	"bytes"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// NewNetNS creates a network namespace joined to the host by a veth pair
// (see NetNS), for a process the test runs in it itself, such as a
// `pocketkube agent`. Remove deletes it.
func NewNetNS() (*NetNS, error) { return newNetNS() }

// Remove kills what runs in the namespace or its cgroup root, unmounts
// what is mounted under dataDir (if not empty), deletes the namespace and
// removes the cgroup root. It reports what it had to kill or unmount, or
// could not remove, as an error: a process stopped cleanly leaves nothing.
func (ns *NetNS) Remove(dataDir string) error {
	var errs []error
	killed, err := ns.remove()
	for _, k := range killed {
		errs = append(errs, fmt.Errorf("killed process left: %s", k))
	}
	if dataDir != "" {
		for _, m := range unmountUnder(dataDir) {
			errs = append(errs, fmt.Errorf("unmounted mount left: %s", m))
		}
	}
	errs = append(errs, err)
	for _, l := range ns.Leftovers() {
		errs = append(errs, errors.New(l))
	}
	return errors.Join(errs...)
}

// Process is a pocketkube command running in a network namespace.
type Process struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error
	mu   sync.Mutex
	out  bytes.Buffer
}

// StartIn runs binary with args in ns's network namespace (nsenter, as
// ClusterConfig.NetNS does).
func StartIn(ns *NetNS, binary string, args ...string) (*Process, error) {
	p := &Process{done: make(chan struct{})}
	p.cmd = exec.Command("nsenter", append([]string{"--net=" + ns.Path(), "--", binary}, args...)...)
	p.cmd.Stdout = lockedWriter{&p.mu, &p.out}
	p.cmd.Stderr = lockedWriter{&p.mu, &p.out}
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s %s: %w", binary, strings.Join(args, " "), err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// Output is what the process wrote so far, stdout and stderr interleaved.
func (p *Process) Output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Wait waits up to timeout for the process to exit by itself and returns
// its exit.
func (p *Process) Wait(timeout time.Duration) error {
	select {
	case <-p.done:
		return p.err
	case <-time.After(timeout):
		p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("not exited after %s, killed", timeout)
	}
}

// Stop sends Ctrl-C (SIGINT) and waits up to timeout for the exit, then
// kills the process. It returns the exit, or that it had to kill it.
func (p *Process) Stop(timeout time.Duration) error {
	select {
	case <-p.done:
		return p.err
	default:
	}
	p.cmd.Process.Signal(syscall.SIGINT)
	return p.Wait(timeout)
}

// Kill sends SIGKILL, as kill -9, and waits for the exit. What the
// process started (a pod's shims) keeps running.
func (p *Process) Kill() {
	p.cmd.Process.Kill()
	<-p.done
}
