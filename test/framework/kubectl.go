package framework

import (
	"bufio"
	"bytes"
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Dashed turns a kubectl version into a name suffix: "1.27" is "1-27".
func Dashed(v string) string { return strings.ReplaceAll(v, ".", "-") }

// ApplyPod applies manifest, a pod in the default namespace, with the
// newest kubectl (after importing busybox and waiting for the default
// service account), and deletes the pod without grace when the test ends.
func (c *Cluster) ApplyPod(t testing.TB, name, manifest string) {
	t.Helper()
	c.ImportBusybox(t, "busybox")
	WaitServiceAccount(t, c.Client(t), "default")
	if _, err := c.KubectlStdin(t.Context(), Newest(), manifest, "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// t.Context() is canceled before cleanups run.
		c.Client(t).CoreV1().Pods("default").Delete(context.Background(), name, metav1.DeleteOptions{GracePeriodSeconds: new(int64)})
	})
}

// KubectlSplit runs kubectl v against the cluster with stdin and returns
// stdout and stderr apart, for commands whose stderr is part of what is
// checked.
func (c *Cluster) KubectlSplit(ctx context.Context, v, stdin string, args ...string) (string, string, error) {
	cmd := exec.CommandContext(ctx, Kubectl(v), append([]string{"--kubeconfig", c.Kubeconfig}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.String(), stderr.String(), err
}

// LineReader is a running kubectl whose stdout it hands out line by line.
type LineReader struct {
	cmd    *exec.Cmd
	lines  chan string
	stderr bytes.Buffer
	waited chan error
}

// StartKubectlLines starts kubectl v with args against the cluster; it is
// killed when the test ends.
func (c *Cluster) StartKubectlLines(t testing.TB, v string, args ...string) *LineReader {
	t.Helper()
	r := &LineReader{lines: make(chan string, 1000), waited: make(chan error, 1)}
	r.cmd = exec.Command(Kubectl(v), append([]string{"--kubeconfig", c.Kubeconfig}, args...)...)
	r.cmd.Stderr = &r.stderr
	out, err := r.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		s := bufio.NewScanner(out)
		for s.Scan() {
			r.lines <- s.Text()
		}
		close(r.lines)
		r.waited <- r.cmd.Wait()
	}()
	t.Cleanup(func() { r.cmd.Process.Kill() })
	return r
}

// Stderr is what kubectl wrote to stderr so far.
func (r *LineReader) Stderr() string { return r.stderr.String() }

// Next returns the next line, or fails the test after timeout.
func (r *LineReader) Next(t testing.TB, timeout time.Duration) string {
	t.Helper()
	select {
	case l, ok := <-r.lines:
		if !ok {
			t.Fatalf("kubectl ended before the next line; stderr: %s", r.stderr.String())
		}
		return l
	case <-time.After(timeout):
		t.Fatalf("no line from kubectl within %s; stderr: %s", timeout, r.stderr.String())
	}
	return ""
}

// Wait waits for kubectl to exit by itself and returns any lines it
// printed after the ones read, and its exit error.
func (r *LineReader) Wait(t testing.TB, timeout time.Duration) ([]string, error) {
	t.Helper()
	var rest []string
	deadline := time.After(timeout)
	for {
		select {
		case l, ok := <-r.lines:
			if !ok {
				return rest, <-r.waited
			}
			rest = append(rest, l)
		case <-deadline:
			t.Fatalf("kubectl still running after %s; stderr: %s", timeout, r.stderr.String())
		}
	}
}
