//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Binary is the pocketkube binary under test.
var Binary string

// KubectlDir holds the real kubectl binaries, one per minor version, named
// kubectl.1.27 and so on: $KUBECTL_DIR, by default where
// scripts/install-deps.sh builds them (hack/kubectl/build.sh). The Google
// Cloud CLI's /usr/lib/google-cloud-sdk/bin has the same layout.
var KubectlDir = cmp.Or(os.Getenv("KUBECTL_DIR"), "/var/cache/pocketkube/kubectl/bin")

// KubectlVersions are the kubectl minor versions every kubectl test runs with.
var KubectlVersions = []string{"1.27", "1.33"}

// ListenHost is the address clusters serve the API on. TestMain sets it
// to an address of an interface it creates: pods reach the API server
// at its --listen address (the kubernetes Service's endpoint), which a
// loopback address is not, and tests do not bind 0.0.0.0.
var ListenHost = "127.0.0.1"

// Cluster is a running `pocketkube up`.
type Cluster struct {
	DataDir    string
	Kubeconfig string
	Server     string // https://HOST:PORT
	Host       string // the --listen address: ListenHost when started
	Port       int

	cmd  *exec.Cmd
	done chan struct{}
	err  error // the process's exit, once done is closed

	mu  sync.Mutex
	out bytes.Buffer // stdout and stderr, interleaved
}

// FreePort returns a loopback TCP port nothing listens on now, below the
// kernel's ephemeral range (net.ipv4.ip_local_port_range, 32768 and up):
// tests restart clusters on the same port, and an ephemeral port can be
// taken meanwhile by any outgoing connection on the machine.
func FreePort() (int, error) {
	for range 100 {
		port := 20000 + rand.IntN(12000)
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		l.Close()
		return port, nil
	}
	return 0, errors.New("no free port below the ephemeral range")
}

type lockedWriter struct {
	mu  *sync.Mutex
	buf *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

// StartCluster runs `pocketkube up` on dataDir and a free loopback port, with
// extra flags, and waits until it prints that it is up.
func StartCluster(dataDir string, extra ...string) (*Cluster, error) {
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	return StartClusterOnPort(dataDir, port, extra...)
}

// StartClusterOnPort is StartCluster on a given port of ListenHost.
func StartClusterOnPort(dataDir string, port int, extra ...string) (*Cluster, error) {
	c := &Cluster{DataDir: dataDir, Host: ListenHost, Port: port, done: make(chan struct{})}
	args := append([]string{"up", "--data-dir", dataDir, "--listen", net.JoinHostPort(c.Host, strconv.Itoa(port))}, extra...)
	c.cmd = exec.Command(Binary, args...)
	stdout, err := c.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	c.cmd.Stderr = lockedWriter{&c.mu, &c.out}
	if err := c.cmd.Start(); err != nil {
		return nil, err
	}
	upLine := make(chan string, 1)
	go func() {
		s := bufio.NewScanner(stdout)
		for s.Scan() {
			line := s.Text()
			lockedWriter{&c.mu, &c.out}.Write([]byte(line + "\n"))
			if strings.HasPrefix(line, "pocketkube is up") {
				select {
				case upLine <- line:
				default:
				}
			}
		}
	}()
	go func() {
		c.err = c.cmd.Wait()
		close(c.done)
	}()
	select {
	case <-upLine:
	case <-c.done:
		return nil, fmt.Errorf("pocketkube up exited before it was up: %v\n%s", c.err, c.Output())
	case <-time.After(2 * time.Minute):
		c.Kill()
		return nil, fmt.Errorf("pocketkube up not up after 2m\n%s", c.Output())
	}
	c.Kubeconfig = filepath.Join(dataDir, "kubeconfig")
	c.Server = "https://" + net.JoinHostPort(c.Host, strconv.Itoa(port))
	return c, nil
}

// Output returns what the process printed so far.
func (c *Cluster) Output() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.out.String()
}

// Pid is the process id of `pocketkube up`.
func (c *Cluster) Pid() int { return c.cmd.Process.Pid }

// Stop sends SIGINT, as Ctrl-C does, and waits up to timeout for the
// process to exit. It returns how long the exit took and the exit error.
func (c *Cluster) Stop(timeout time.Duration) (time.Duration, error) {
	start := time.Now()
	if err := c.cmd.Process.Signal(syscall.SIGINT); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return 0, err
	}
	select {
	case <-c.done:
		return time.Since(start), c.err
	case <-time.After(timeout):
		c.Kill()
		return time.Since(start), fmt.Errorf("pocketkube up still running %s after SIGINT", timeout)
	}
}

// Kill kills the process and waits for it.
func (c *Cluster) Kill() {
	c.cmd.Process.Kill()
	<-c.done
}

// Kubectl runs the kubectl of minor version v against the cluster and
// returns its stdout; the error carries stderr.
func (c *Cluster) Kubectl(ctx context.Context, v string, args ...string) (string, error) {
	return run(ctx, nil, filepath.Join(KubectlDir, "kubectl."+v), append([]string{"--kubeconfig", c.Kubeconfig}, args...)...)
}

// KubectlStdin is Kubectl with stdin.
func (c *Cluster) KubectlStdin(ctx context.Context, v string, stdin string, args ...string) (string, error) {
	return run(ctx, strings.NewReader(stdin), filepath.Join(KubectlDir, "kubectl."+v), append([]string{"--kubeconfig", c.Kubeconfig}, args...)...)
}

// run runs a command and returns its stdout; the error includes stderr.
func run(ctx context.Context, stdin io.Reader, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdin = stdin
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		return stdout.String(), fmt.Errorf("%s %s: %w\n%s", filepath.Base(name), strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

// Proxy is a running `pocketkube proxy` or `kubectl proxy`.
type Proxy struct {
	URL string
	cmd *exec.Cmd
}

// StartProxy runs binary (pocketkube, or a kubectl) with args, a proxy
// command line without --port, on a free port, and waits for its
// "Starting to serve" line.
func StartProxy(binary string, args ...string) (*Proxy, error) {
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(binary, append(args, "--port", strconv.Itoa(port))...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	started := make(chan string, 1)
	go func() {
		s := bufio.NewScanner(stdout)
		for s.Scan() {
			select {
			case started <- s.Text():
			default:
			}
		}
	}()
	select {
	case line := <-started:
		if want := fmt.Sprintf("Starting to serve on 127.0.0.1:%d", port); line != want {
			cmd.Process.Kill()
			cmd.Wait()
			return nil, fmt.Errorf("proxy printed %q, want %q", line, want)
		}
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		cmd.Wait()
		return nil, fmt.Errorf("proxy did not start: %s", stderr.String())
	}
	return &Proxy{URL: fmt.Sprintf("http://127.0.0.1:%d", port), cmd: cmd}, nil
}

// Stop kills the proxy.
func (p *Proxy) Stop() {
	p.cmd.Process.Kill()
	p.cmd.Wait()
}

// Curl runs the real curl with args and returns the body and HTTP status
// (from -w); the error is curl's own (its exit code is in *exec.ExitError).
func Curl(ctx context.Context, args ...string) (body string, status int, err error) {
	out, err := run(ctx, nil, "curl", append([]string{"-sS", "-w", "\n%{http_code}"}, args...)...)
	i := strings.LastIndexByte(out, '\n')
	if i < 0 {
		return out, 0, err
	}
	status, _ = strconv.Atoi(strings.TrimSpace(out[i+1:]))
	return out[:i], status, err
}
