package framework

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// KubectlDir holds the real kubectl binaries, one per minor version, named
// kubectl.1.27 and so on: $KUBECTL_DIR, by default where
// scripts/install-deps.sh builds them (hack/kubectl/build.sh). The Google
// Cloud CLI's /usr/lib/google-cloud-sdk/bin has the same layout.
var KubectlDir = cmp.Or(os.Getenv("KUBECTL_DIR"), "/var/cache/pocketkube/kubectl/bin")

// KubectlVersions are the kubectl minor versions every kubectl test runs with.
var KubectlVersions = []string{"1.27", "1.33"}

// Newest is the newest kubectl minor version, the one tests drive by default.
func Newest() string { return KubectlVersions[len(KubectlVersions)-1] }

// Kubectl is the path of the kubectl of minor version v.
func Kubectl(v string) string { return filepath.Join(KubectlDir, "kubectl."+v) }

// Run runs a command and returns its stdout; the error includes stderr.
func Run(ctx context.Context, stdin io.Reader, name string, args ...string) (string, error) {
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

// Curl runs the real curl with args and returns the body and HTTP status
// (from -w); the error is curl's own (its exit code is in *exec.ExitError).
func Curl(ctx context.Context, args ...string) (body string, status int, err error) {
	out, err := Run(ctx, nil, "curl", append([]string{"-sS", "-w", "\n%{http_code}"}, args...)...)
	i := strings.LastIndexByte(out, '\n')
	if i < 0 {
		return out, 0, err
	}
	status, _ = strconv.Atoi(strings.TrimSpace(out[i+1:]))
	return out[:i], status, err
}

// Proxy is a running `pocketkube proxy` or `kubectl proxy`.
type Proxy struct {
	URL string
	cmd *exec.Cmd
}

// StartProxy runs binary (pocketkube, or a kubectl) with args, a proxy
// command line without --port, on a free loopback port (proxies serve on
// 127.0.0.1), and waits for its "Starting to serve" line.
func StartProxy(binary string, args ...string) (*Proxy, error) {
	port, err := FreePort("127.0.0.1")
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

// Tail returns the last n lines of s.
func Tail(s string, n int) string {
	lines := 0
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == '\n' {
			lines++
			if lines > n {
				return s[i+1:]
			}
		}
	}
	return s
}
