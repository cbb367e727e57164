//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/pocketkube/pocketkube/test/framework"
)

// dashed turns a kubectl version into a name suffix: "1.27" is "1-27".
func dashed(v string) string { return strings.ReplaceAll(v, ".", "-") }

// kubectlSplit runs kubectl v with stdin and returns stdout and stderr
// apart, for commands whose stderr is part of what is checked.
func kubectlSplit(ctx context.Context, c *framework.Cluster, v, stdin string, args ...string) (string, string, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(framework.KubectlDir, "kubectl."+v), append([]string{"--kubeconfig", c.Kubeconfig}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.String(), stderr.String(), err
}

// lineReader starts kubectl v with args and hands out its stdout line by
// line; stop kills it (if still framework.Running) and returns its exit error.
type lineReader struct {
	cmd    *exec.Cmd
	lines  chan string
	stderr bytes.Buffer
	waited chan error
}

func startKubectlLines(t *testing.T, c *framework.Cluster, v string, args ...string) *lineReader {
	t.Helper()
	r := &lineReader{lines: make(chan string, 1000), waited: make(chan error, 1)}
	r.cmd = exec.Command(filepath.Join(framework.KubectlDir, "kubectl."+v), append([]string{"--kubeconfig", c.Kubeconfig}, args...)...)
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

// next returns the next line, or fails the test after timeout.
func (r *lineReader) next(t *testing.T, timeout time.Duration) string {
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

// wait waits for kubectl to exit by itself and returns any lines it
// printed after the ones read, and its exit error.
func (r *lineReader) wait(t *testing.T, timeout time.Duration) ([]string, error) {
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

// kexec runs `kubectl exec pod -c container -- sh -c cmd` and returns
// stdout, stderr and the error.
func kexec(ctx context.Context, v, pod, container, cmd string) (string, string, error) {
	return kubectlSplit(ctx, shared, v, "", "exec", pod, "-c", container, "--", "sh", "-c", cmd)
}

// --- attach ------------------------------------------------------------

func TestAttach(t *testing.T) {
	ctx := context.Background()
	c := shared.Client(t)
	ticker := "attach-ticker"
	applyPod(t, shared, ticker, `apiVersion: v1
kind: Pod
metadata:
  name: attach-ticker
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: busybox
    command: ["sh", "-c", "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done"]
`)
	for _, v := range framework.KubectlVersions {
		t.Run("kubectl-"+v, func(t *testing.T) {
			// attach -i: stdin reaches the container's read; with
			// stdinOnce, kubectl's EOF closes the container's stdin, the
			// loop ends, and attach ends with the container.
			name := "attach-stdin-" + dashed(v)
			applyPod(t, shared, name, fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: %s
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: busybox
    stdin: true
    stdinOnce: true
    command: ["sh", "-c", "while read line; do echo got:$line; echo err:$line >&2; done; echo bye"]
`, name))
			waitPod(t, c, name, "Running", framework.Running)
			actx, cancel := context.WithTimeout(ctx, 60*time.Second)
			defer cancel()
			out, errOut, err := kubectlSplit(actx, shared, v, "one\ntwo\n", "attach", "-i", name)
			if err != nil || out != "got:one\ngot:two\nbye\n" || !strings.Contains(errOut, "err:one\nerr:two\n") {
				t.Errorf("attach -i: stdout %q, stderr %q, %v", out, errOut, err)
			}
			pod := waitPod(t, c, name, "Succeeded", phaseIs(corev1.PodSucceeded))
			if term := pod.Status.ContainerStatuses[0].State.Terminated; term == nil || term.ExitCode != 0 || term.Reason != "Completed" {
				t.Errorf("after attach: %s", framework.PodStatus(pod))
			}
			// kubectl refuses to attach to a completed pod, as upstream.
			_, errOut, err = kubectlSplit(ctx, shared, v, "", "attach", name)
			if err == nil || !strings.Contains(errOut, "cannot attach a container in a completed pod; current phase is Succeeded") {
				t.Errorf("attach to completed pod: %q, %v", errOut, err)
			}

			// Plain attach streams the output written from now on, not
			// what was written before.
			waitPod(t, c, ticker, "Running", framework.Running)
			var before int
			err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 20*time.Second, true, func(ctx context.Context) (bool, error) {
				logs, _ := shared.Kubectl(ctx, v, "logs", ticker)
				before = strings.Count(logs, "tick ")
				return before >= 3, nil
			})
			if err != nil {
				t.Fatalf("ticker never ticked: %v", err)
			}
			r := startKubectlLines(t, shared, v, "attach", ticker)
			prev := -1
			for i := 0; i < 4; i++ {
				line := r.next(t, 20*time.Second)
				n, err := strconv.Atoi(strings.TrimPrefix(line, "tick "))
				if err != nil || !strings.HasPrefix(line, "tick ") {
					t.Fatalf("attach printed %q", line)
				}
				if prev >= 0 && n != prev+1 {
					t.Errorf("attach: tick %d after tick %d", n, prev)
				}
				if prev < 0 && n < before-1 {
					t.Errorf("attach replayed old output: first line %q, %d ticks were logged before", line, before)
				}
				prev = n
			}
		})
	}
}

// --- exec -it ----------------------------------------------------------

// ptyProcess is a command whose stdin, stdout and stderr are the slave of
// a pseudo-terminal we hold the master of, as a shell in a terminal
// emulator: kubectl -t then sees a real terminal, puts it in raw mode and
// sends its size, and a TIOCSWINSZ on the master sends it SIGWINCH.
type ptyProcess struct {
	master *os.File
	cmd    *exec.Cmd
	mu     sync.Mutex
	out    bytes.Buffer
	read   chan struct{} // closed when the master reads EIO (all slaves closed)
}

func startInPty(t *testing.T, rows, cols uint16, name string, args ...string) *ptyProcess {
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
	p := &ptyProcess{master: master, read: make(chan struct{})}
	p.resize(t, rows, cols)
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

func (p *ptyProcess) resize(t *testing.T, rows, cols uint16) {
	t.Helper()
	if err := unix.IoctlSetWinsize(int(p.master.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: rows, Col: cols}); err != nil {
		t.Fatal(err)
	}
}

func (p *ptyProcess) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

func (p *ptyProcess) write(t *testing.T, s string) {
	t.Helper()
	if _, err := p.master.Write([]byte(s)); err != nil {
		t.Fatal(err)
	}
}

// waitFor waits until the terminal output (from offset from on) contains
// s, or fails the test after timeout.
func (p *ptyProcess) waitFor(t *testing.T, from int, s string, timeout time.Duration) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 20*time.Millisecond, timeout, true, func(context.Context) (bool, error) {
		out := p.output()
		return len(out) >= from && strings.Contains(out[from:], s), nil
	})
	if err != nil {
		t.Fatalf("terminal never showed %q; it shows:\n%q", s, p.output())
	}
}

// exit waits for the process and returns its exit code.
func (p *ptyProcess) exit(t *testing.T, timeout time.Duration) int {
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
		t.Fatalf("process still running after %s; terminal:\n%q", timeout, p.output())
	}
	return -1
}

func TestExecTTY(t *testing.T) {
	ctx := context.Background()
	c := shared.Client(t)
	applyPod(t, shared, "exec-tty", fmt.Sprintf(sleeperPod, "exec-tty"))
	waitPod(t, c, "exec-tty", "Running", framework.Running)
	for _, v := range framework.KubectlVersions {
		t.Run("kubectl-"+v, func(t *testing.T) {
			// Without -t there is no terminal.
			out, _, err := kexec(ctx, v, "exec-tty", "main", "tty")
			var exit *exec.ExitError
			if out != "not a tty\n" || !asExit(err, &exit) || exit.ExitCode() != 1 {
				t.Errorf("exec tty without -t: %q, %v", out, err)
			}

			p := startInPty(t, 37, 101, filepath.Join(framework.KubectlDir, "kubectl."+v), "--kubeconfig", shared.Kubeconfig, "exec", "-it", "exec-tty", "--", "sh")
			// busybox sh is interactive on a terminal: its prompt means
			// the terminal is set up and kubectl's first size was sent.
			p.waitFor(t, 0, "# ", 30*time.Second)
			from := len(p.output())
			p.write(t, "tty; stty size\n")
			p.waitFor(t, from, "/dev/pts/0\r\n", 10*time.Second)
			p.waitFor(t, from, "37 101\r\n", 10*time.Second)

			// A resize of our terminal reaches the container's: kubectl
			// gets SIGWINCH and sends the new size. The shell may run
			// before the resize arrives, so ask again until it shows.
			p.resize(t, 50, 132)
			err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 15*time.Second, true, func(context.Context) (bool, error) {
				from := len(p.output())
				p.write(t, "stty size\n")
				time.Sleep(100 * time.Millisecond)
				return strings.Contains(p.output()[from:], "50 132\r\n"), nil
			})
			if err != nil {
				t.Errorf("stty size never showed the new size 50 132:\n%q", p.output())
			}
			// Input is a terminal's: ^C reaches the shell as SIGINT, not
			// kubectl, which keeps running.
			from = len(p.output())
			p.write(t, "sleep 30\n")
			time.Sleep(300 * time.Millisecond)
			p.write(t, "\x03")
			p.write(t, "echo after-$((40+2))\n")
			p.waitFor(t, from, "after-42", 15*time.Second)
			p.write(t, "exit 3\n")
			if code := p.exit(t, 30*time.Second); code != 3 {
				t.Errorf("kubectl exec -it exited %d, want the shell's 3; terminal:\n%q", code, p.output())
			}
		})
	}
}

// --- logs --------------------------------------------------------------

func TestLogsFollow(t *testing.T) {
	ctx := context.Background()
	c := shared.Client(t)
	for _, v := range framework.KubectlVersions {
		t.Run("kubectl-"+v, func(t *testing.T) {
			name := "logs-follow-" + dashed(v)
			applyPod(t, shared, name, fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: %s
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: busybox
    command: ["sh", "-c", "echo first; until [ -e /tmp/go ]; do sleep 0.1; done; echo second; until [ -e /tmp/end ]; do sleep 0.1; done; echo last"]
`, name))
			waitPod(t, c, name, "Running", framework.Running)
			r := startKubectlLines(t, shared, v, "logs", "-f", name)
			if l := r.next(t, 20*time.Second); l != "first" {
				t.Fatalf("first line %q", l)
			}
			// A line written while kubectl follows reaches it.
			if _, _, err := kexec(ctx, v, name, "main", "touch /tmp/go"); err != nil {
				t.Fatal(err)
			}
			if l := r.next(t, 20*time.Second); l != "second" {
				t.Fatalf("second line %q", l)
			}
			// The follow ends, with success, when the container exits.
			if _, _, err := kexec(ctx, v, name, "main", "touch /tmp/end"); err != nil {
				t.Fatal(err)
			}
			rest, err := r.wait(t, 30*time.Second)
			if err != nil || strings.Join(rest, "\n") != "last" {
				t.Errorf("after the exit: %q, %v; stderr %s", rest, err, r.stderr.String())
			}
			waitPod(t, c, name, "Succeeded", phaseIs(corev1.PodSucceeded))
		})
	}
}

func TestLogsFollowPreviousSinceContainersTail(t *testing.T) {
	ctx := context.Background()
	c := shared.Client(t)
	applyPod(t, shared, "logs-restarts", `apiVersion: v1
kind: Pod
metadata:
  name: logs-restarts
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: busybox
    command: ["sh", "-c", "n=$(cat /data/n 2>/dev/null || echo 0); n=$((n+1)); echo $n > /data/n; echo attempt $n; if [ $n -ge 2 ]; then exec sleep 3600; fi; exit 1"]
    volumeMounts: [{name: data, mountPath: /data}]
  volumes:
  - name: data
    emptyDir: {}
`)
	applyPod(t, shared, "logs-multi", `apiVersion: v1
kind: Pod
metadata:
  name: logs-multi
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: a
    image: busybox
    command: ["sh", "-c", "echo from a; exec sleep 3600"]
  - name: b
    image: busybox
    command: ["sh", "-c", "for i in 1 2 3 4 5; do echo b$i; done; exec sleep 3600"]
`)
	waitPod(t, c, "logs-multi", "Running", framework.Running)
	// The first restart comes at once; kubelet's 10 s back-off starts after it.
	pod := waitPod(t, c, "logs-restarts", "restarted and running", func(p *corev1.Pod) bool {
		return framework.Running(p) && p.Status.ContainerStatuses[0].RestartCount == 1
	})
	if last := pod.Status.ContainerStatuses[0].LastTerminationState.Terminated; last == nil || last.ExitCode != 1 {
		t.Errorf("lastState %+v", pod.Status.ContainerStatuses[0].LastTerminationState)
	}
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 20*time.Second, true, func(ctx context.Context) (bool, error) {
		out, _ := shared.Kubectl(ctx, framework.Newest(), "logs", "logs-multi", "-c", "b")
		return strings.Contains(out, "b5"), nil
	})
	if err != nil {
		t.Fatalf("logs of b never complete: %v", err)
	}
	future := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	for _, v := range framework.KubectlVersions {
		t.Run("kubectl-"+v, func(t *testing.T) {
			for _, tc := range []struct {
				name     string
				args     []string
				stdout   string
				stderr   string // a substring; "" means none expected
				wantErr  bool
				anyOrder bool // kubectl may print the containers in any order
			}{
				{name: "current", args: []string{"logs-restarts"}, stdout: "attempt 2\n"},
				{name: "previous", args: []string{"logs-restarts", "--previous"}, stdout: "attempt 1\n"},
				{name: "previous-c", args: []string{"logs-restarts", "-p", "-c", "main"}, stdout: "attempt 1\n"},
				{name: "previous-none", args: []string{"logs-multi", "-c", "a", "--previous"}, wantErr: true,
					stderr: `previous terminated container "a" in pod "logs-multi" not found`},
				{name: "default-container", args: []string{"logs-multi"}, stdout: "from a\n",
					stderr: `Defaulted container "a" out of: a, b`},
				{name: "c-b", args: []string{"logs-multi", "-c", "b"}, stdout: "b1\nb2\nb3\nb4\nb5\n"},
				{name: "c-unknown", args: []string{"logs-multi", "-c", "nosuch"}, wantErr: true,
					stderr: "container nosuch is not valid for pod logs-multi"},
				{name: "tail-2", args: []string{"logs-multi", "-c", "b", "--tail=2"}, stdout: "b4\nb5\n"},
				{name: "tail-0", args: []string{"logs-multi", "-c", "b", "--tail=0"}, stdout: ""},
				{name: "tail-more", args: []string{"logs-multi", "-c", "b", "--tail=50"}, stdout: "b1\nb2\nb3\nb4\nb5\n"},
				{name: "since-1h", args: []string{"logs-multi", "-c", "b", "--since=1h"}, stdout: "b1\nb2\nb3\nb4\nb5\n"},
				{name: "since-time-future", args: []string{"logs-multi", "-c", "b", "--since-time=" + future}, stdout: ""},
				{name: "since-time-past", args: []string{"logs-multi", "-c", "b", "--since-time=2000-01-01T00:00:00Z"}, stdout: "b1\nb2\nb3\nb4\nb5\n"},
				{name: "since-tail", args: []string{"logs-multi", "-c", "b", "--since=1h", "--tail=1"}, stdout: "b5\n"},
				{name: "limit-bytes", args: []string{"logs-multi", "-c", "b", "--limit-bytes=5"}, stdout: "b1\nb2"},
				{name: "all-containers-prefix", args: []string{"logs-multi", "--all-containers", "--prefix"}, anyOrder: true,
					stdout: "[pod/logs-multi/a] from a\n[pod/logs-multi/b] b1\n[pod/logs-multi/b] b2\n[pod/logs-multi/b] b3\n[pod/logs-multi/b] b4\n[pod/logs-multi/b] b5\n"},
			} {
				t.Run(tc.name, func(t *testing.T) {
					out, errOut, err := kubectlSplit(ctx, shared, v, "", append([]string{"logs"}, tc.args...)...)
					if (err != nil) != tc.wantErr {
						t.Errorf("kubectl logs %v: err %v, stderr %q", tc.args, err, errOut)
					}
					if tc.anyOrder {
						out, tc.stdout = sortedLines(out), sortedLines(tc.stdout)
					}
					if !tc.wantErr && out != tc.stdout {
						t.Errorf("kubectl logs %v = %q, want %q", tc.args, out, tc.stdout)
					}
					if tc.stderr != "" && !strings.Contains(errOut, tc.stderr) {
						t.Errorf("kubectl logs %v: stderr %q, want it to contain %q", tc.args, errOut, tc.stderr)
					}
					if tc.stderr == "" && errOut != "" {
						t.Errorf("kubectl logs %v: unexpected stderr %q", tc.args, errOut)
					}
				})
			}
		})
	}
}

// sortedLines returns s's lines sorted.
func sortedLines(s string) string {
	lines := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
	slices.Sort(lines)
	return strings.Join(lines, "\n") + "\n"
}

// --- OOM ---------------------------------------------------------------

func TestOOMKilled(t *testing.T) {
	ctx := context.Background()
	c := shared.Client(t)
	// dd allocates its 64 MiB block and fills it from /dev/zero; the
	// container's memory cgroup allows 16 MiB, so the kernel's OOM killer
	// kills it (SIGKILL: exit code 137).
	applyPod(t, shared, "oom", `apiVersion: v1
kind: Pod
metadata:
  name: oom
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: busybox
    command: ["dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"]
    resources:
      limits: {memory: 16Mi}
`)
	pod := waitPod(t, c, "oom", "Failed", phaseIs(corev1.PodFailed))
	term := pod.Status.ContainerStatuses[0].State.Terminated
	if term == nil || term.Reason != "OOMKilled" || term.ExitCode != 137 {
		t.Errorf("terminated %+v, want reason OOMKilled, exit code 137", term)
	}
	for _, v := range framework.KubectlVersions {
		t.Run("kubectl-"+v, func(t *testing.T) {
			out, err := shared.Kubectl(ctx, v, "get", "pod", "oom", "--no-headers")
			if f := strings.Fields(out); err != nil || len(f) < 3 || f[1] != "0/1" || f[2] != "OOMKilled" {
				t.Errorf("kubectl get pod oom: %q, %v", out, err)
			}
			out, err = shared.Kubectl(ctx, v, "get", "pod", "oom", "-o", "jsonpath={.status.containerStatuses[0].state.terminated.reason}/{.status.containerStatuses[0].state.terminated.exitCode}")
			if err != nil || out != "OOMKilled/137" {
				t.Errorf("reason/exitCode = %q, %v", out, err)
			}
		})
	}
}

// --- securityContext ---------------------------------------------------

// capEff reads CapEff from the test process's /proc/self/status: a
// privileged container gets every capability the runtime holds, as
// containerd's privileged containers do.
func capEff(t *testing.T) string {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^CapEff:\s*([0-9a-f]+)$`).FindSubmatch(b)
	if m == nil {
		t.Fatal("no CapEff in /proc/self/status")
	}
	return string(m[1])
}

func TestSecurityContext(t *testing.T) {
	ctx := context.Background()
	c := shared.Client(t)
	applyPod(t, shared, "secctx", `apiVersion: v1
kind: Pod
metadata:
  name: secctx
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: default
    image: busybox
    command: ["sleep", "3600"]
  - name: user
    image: busybox
    command: ["sleep", "3600"]
    securityContext: {runAsUser: 1000, runAsGroup: 3000}
  - name: nonroot-uid
    image: busybox
    command: ["sleep", "3600"]
    securityContext: {runAsNonRoot: true, runAsUser: 1000}
  - name: readonly
    image: busybox
    command: ["sleep", "3600"]
    securityContext: {readOnlyRootFilesystem: true}
  - name: caps
    image: busybox
    command: ["sleep", "3600"]
    securityContext:
      capabilities: {drop: [ALL], add: [NET_ADMIN]}
  - name: nonewprivs
    image: busybox
    command: ["sleep", "3600"]
    securityContext: {allowPrivilegeEscalation: false}
`)
	// sysfs is mounted once per network namespace: the first container
	// of a pod to mount it decides whether it is read-only for all, so
	// the privileged container has a pod of its own.
	applyPod(t, shared, "secctx-priv", `apiVersion: v1
kind: Pod
metadata:
  name: secctx-priv
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: privileged
    image: busybox
    command: ["sleep", "3600"]
    securityContext: {privileged: true}
`)
	waitPod(t, c, "secctx", "Running", framework.Running)
	waitPod(t, c, "secctx-priv", "Running", framework.Running)
	hostCaps := capEff(t)
	// The status lines of the container's own process (grep's, which
	// inherits the container's set).
	status := `grep -E '^(CapEff|CapBnd|NoNewPrivs):' /proc/self/status`
	// Setting lo's MTU needs CAP_NET_ADMIN in the pod's network namespace.
	netAdmin := `ip link set lo mtu 65536 2>&1 && echo net-admin-ok`
	for _, v := range framework.KubectlVersions {
		t.Run("kubectl-"+v, func(t *testing.T) {
			for _, tc := range []struct {
				pod            string // "secctx" when empty
				container, cmd string
				want           string // stdout
				wantErr        bool
				stderr         string // a substring of stderr
			}{
				{container: "default", cmd: "id", want: "uid=0(root) gid=0(root) groups=0(root)\n"},
				{container: "default", cmd: status, want: "CapEff:\t00000000a80425fb\nCapBnd:\t00000000a80425fb\nNoNewPrivs:\t0\n"},
				{container: "default", cmd: netAdmin, want: "ip: SIOCSIFMTU: Operation not permitted\n", wantErr: true},
				{container: "default", cmd: "grep ' /sys ' /proc/mounts", want: "sysfs /sys sysfs ro,nosuid,nodev,noexec,relatime 0 0\n"},
				{container: "default", cmd: "echo x > /probe && cat /probe", want: "x\n"},
				{container: "user", cmd: "id", want: "uid=1000 gid=3000 groups=3000\n"},
				{container: "user", cmd: "touch /root/x", wantErr: true, stderr: "Permission denied"},
				{container: "nonroot-uid", cmd: "id -u", want: "1000\n"},
				{container: "readonly", cmd: "touch /x", wantErr: true, stderr: "touch: /x: Read-only file system"},
				{container: "readonly", cmd: "touch /tmp/x", wantErr: true, stderr: "touch: /tmp/x: Read-only file system"},
				{container: "readonly", cmd: "echo ok > /dev/shm/x && cat /dev/shm/x", want: "ok\n"},
				{container: "caps", cmd: status, want: "CapEff:\t0000000000001000\nCapBnd:\t0000000000001000\nNoNewPrivs:\t0\n"},
				{container: "caps", cmd: netAdmin, want: "net-admin-ok\n"},
				{container: "caps", cmd: "chown 1:1 /tmp", wantErr: true, stderr: "Operation not permitted"},
				{pod: "secctx-priv", container: "privileged", cmd: "grep -E '^CapEff:' /proc/self/status", want: "CapEff:\t" + hostCaps + "\n"},
				{pod: "secctx-priv", container: "privileged", cmd: netAdmin, want: "net-admin-ok\n"},
				{pod: "secctx-priv", container: "privileged", cmd: "grep ' /sys ' /proc/mounts", want: "sysfs /sys sysfs rw,nosuid,nodev,noexec,relatime 0 0\n"},
				// containerd gives a privileged container the host's devices
				// (oci.WithHostDevices).
				{pod: "secctx-priv", container: "privileged", cmd: "test -c /dev/kmsg && test -c /dev/loop-control && echo host-devices", want: "host-devices\n"},
				{container: "default", cmd: "test -e /dev/kmsg || echo no-kmsg", want: "no-kmsg\n"},
				{container: "nonewprivs", cmd: status, want: "CapEff:\t00000000a80425fb\nCapBnd:\t00000000a80425fb\nNoNewPrivs:\t1\n"},
			} {
				if tc.pod == "" {
					tc.pod = "secctx"
				}
				out, errOut, err := kexec(ctx, v, tc.pod, tc.container, tc.cmd)
				if (err != nil) != tc.wantErr || (tc.want != "" || !tc.wantErr) && out != tc.want || !strings.Contains(errOut, tc.stderr) {
					t.Errorf("%s: %s: stdout %q, stderr %q, err %v; want stdout %q, stderr containing %q, error %v",
						tc.container, tc.cmd, out, errOut, err, tc.want, tc.stderr, tc.wantErr)
				}
			}
		})
	}

	// runAsNonRoot without a runAsUser on an image that runs as root, and
	// with runAsUser 0: kubelet's verifyRunAsNonRoot messages, as
	// CreateContainerConfigError.
	manifest := `apiVersion: v1
kind: Pod
metadata:
  name: %s
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: busybox
    command: ["sleep", "3600"]
    securityContext: %s
`
	for _, tc := range []struct{ name, sc, format string }{
		{"nonroot-image-root", "{runAsNonRoot: true}", "container has runAsNonRoot and image will run as root (pod: %q, container: main)"},
		{"nonroot-uid-0", "{runAsNonRoot: true, runAsUser: 0}", "container's runAsUser breaks non-root policy (pod: %q, container: main)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			applyPod(t, shared, tc.name, fmt.Sprintf(manifest, tc.name, tc.sc))
			pod := waitPod(t, c, tc.name, "waiting with CreateContainerConfigError", func(p *corev1.Pod) bool {
				return len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].State.Waiting != nil &&
					p.Status.ContainerStatuses[0].State.Waiting.Reason == "CreateContainerConfigError"
			})
			want := fmt.Sprintf(tc.format, fmt.Sprintf("%s_default(%s)", tc.name, pod.UID))
			if got := pod.Status.ContainerStatuses[0].State.Waiting.Message; got != want {
				t.Errorf("message %q\nwant    %q", got, want)
			}
			if pod.Status.Phase != corev1.PodPending {
				t.Errorf("phase %s, want Pending", pod.Status.Phase)
			}
			for _, v := range framework.KubectlVersions {
				out, err := shared.Kubectl(ctx, v, "get", "pod", tc.name, "--no-headers")
				if f := strings.Fields(out); err != nil || len(f) < 3 || f[2] != "CreateContainerConfigError" {
					t.Errorf("kubectl %s get pod: %q, %v", v, out, err)
				}
			}
		})
	}
}

// --- imagePullSecrets --------------------------------------------------

// basicAuthRegistry is go-containerregistry's in-memory registry behind
// HTTP basic auth, as a private registry (registry:2 with htpasswd)
// answers: 401 with a Basic challenge without the right credentials.
// Without a user it serves everyone, as a public registry does.
type basicAuthRegistry struct {
	user, pass string
	next       http.Handler
	authorized atomic.Int64 // requests with the right credentials
	refused    atomic.Int64
}

func (r *basicAuthRegistry) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if u, p, ok := req.BasicAuth(); r.user == "" || ok && u == r.user && p == r.pass {
		r.authorized.Add(1)
		r.next.ServeHTTP(w, req)
		return
	}
	r.refused.Add(1)
	w.Header().Set("WWW-Authenticate", `Basic realm="e2e"`)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusUnauthorized)
	io.WriteString(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required","detail":null}]}`+"\n")
}

// startRegistry serves a registry (private when user is set) on a free
// loopback port until the test ends, and returns its host:port. The
// tests' images come from here: they never depend on a registry on the
// network.
func startRegistry(t *testing.T, user, pass string) (string, *basicAuthRegistry) {
	t.Helper()
	port, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	reg := &basicAuthRegistry{user: user, pass: pass, next: registry.New(registry.Logger(log.New(io.Discard, "", 0)))}
	srv := &http.Server{Handler: reg}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String(), reg
}

// pushBusybox pushes an image of the host's busybox with config to the
// registry reference image (host:port/repo:tag).
func pushBusybox(t *testing.T, image string, config v1.Config, auth authn.Authenticator) {
	t.Helper()
	tarPath := filepath.Join(t.TempDir(), "busybox.tar")
	if err := framework.BusyboxTar(tarPath, nil); err != nil {
		t.Fatal(err)
	}
	layer, err := tarball.LayerFromFile(tarPath)
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		t.Fatal(err)
	}
	img, err = mutate.Config(img, config)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(image)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img, remote.WithAuth(auth)); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
}

// startPrivateRegistry serves the registry on a free loopback port and
// pushes the busybox image to it as e2e/busybox:v1; it returns host:port.
func startPrivateRegistry(t *testing.T, user, pass string) (string, *basicAuthRegistry) {
	t.Helper()
	host, reg := startRegistry(t, user, pass)
	image := host + "/e2e/busybox:v1"
	pushBusybox(t, image, v1.Config{Cmd: []string{"sh"}, Env: []string{"PATH=/bin", "PUSHED=yes"}}, &authn.Basic{Username: user, Password: pass})
	// The registry really is private: an anonymous pull is refused.
	ref, err := name.ParseReference(image)
	if err != nil {
		t.Fatal(err)
	}
	var terr *transport.Error
	if _, err := remote.Get(ref); !errors.As(err, &terr) || terr.StatusCode != http.StatusUnauthorized {
		t.Fatalf("anonymous pull from the test registry: %v, want a 401", err)
	}
	return host, reg
}

func TestPullSecrets(t *testing.T) {
	ctx := context.Background()
	c := shared.Client(t)
	host, reg := startPrivateRegistry(t, "e2e-user", "e2e-pass")
	image := host + "/e2e/busybox:v1"
	manifest := `apiVersion: v1
kind: Pod
metadata:
  name: %s
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: %s
    imagePullPolicy: Always
    command: ["sh", "-c", "echo pushed=$PUSHED; exec sleep 3600"]
%s`
	// failsToPull waits for the pull failure and checks kubelet's reasons
	// and messages: ErrImagePull's is the runtime's error (containerd's
	// "failed to pull and unpack image ...", with the registry's refusal);
	// "Failed to pull image ..." is only the event's wording. The back-off
	// message carries the last pull error (image_manager.go pullImage).
	failsToPull := func(t *testing.T, name, secret string) {
		t.Helper()
		// A watch from before the pod exists sees every status write,
		// including the short-lived ErrImagePull.
		wctx, cancel := context.WithTimeout(ctx, framework.PodTimeout)
		defer cancel()
		watcher, err := c.CoreV1().Pods("default").Watch(wctx, metav1.ListOptions{FieldSelector: "metadata.name=" + name})
		if err != nil {
			t.Fatal(err)
		}
		defer watcher.Stop()
		pullSecrets := ""
		if secret != "" {
			pullSecrets = "  imagePullSecrets: [{name: " + secret + "}]\n"
		}
		applyPod(t, shared, name, fmt.Sprintf(manifest, name, image, pullSecrets))
		var pullMsg string
		var pod *corev1.Pod
		for ev := range watcher.ResultChan() {
			p, ok := ev.Object.(*corev1.Pod)
			if !ok || len(p.Status.ContainerStatuses) == 0 || p.Status.ContainerStatuses[0].State.Waiting == nil {
				continue
			}
			if w := p.Status.ContainerStatuses[0].State.Waiting; w.Reason == "ErrImagePull" && pullMsg == "" {
				pullMsg = w.Message
			} else if w.Reason == "ImagePullBackOff" {
				pod = p
				break
			}
		}
		if pod == nil {
			t.Fatalf("pod %s never in ImagePullBackOff", name)
		}
		if pullMsg == "" {
			t.Errorf("no ErrImagePull status before ImagePullBackOff, as kubelet writes")
		}
		refused := regexp.MustCompile(`(?i)401|unauthorized|authorization`)
		cause := fmt.Sprintf("failed to pull and unpack image %q: failed to resolve reference %q: ", image, image)
		if pullMsg != "" && (!strings.Contains(pullMsg, cause) || !refused.MatchString(pullMsg) || strings.HasPrefix(pullMsg, "Failed to pull image")) {
			t.Errorf("ErrImagePull message %q\nwant the runtime's error %q... with the registry's refusal, without the event's \"Failed to pull image\" prefix", pullMsg, cause)
		}
		w := pod.Status.ContainerStatuses[0].State.Waiting
		if prefix := fmt.Sprintf("Back-off pulling image %q: ErrImagePull: ", image); !strings.HasPrefix(w.Message, prefix) ||
			!strings.Contains(w.Message, cause) || !refused.MatchString(w.Message) {
			t.Errorf("ImagePullBackOff message %q\nwant %q followed by the pull error", w.Message, prefix)
		}
		// The events kubelet records for a failed pull (they are written
		// asynchronously, so wait for them).
		var out string
		err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 15*time.Second, true, func(ctx context.Context) (bool, error) {
			out, err = shared.Kubectl(ctx, framework.Newest(), "get", "events", "--field-selector", "involvedObject.name="+name, "-o", "jsonpath={range .items[*]}{.reason}|{.message}{\"\\n\"}{end}")
			return err == nil && strings.Contains(out, fmt.Sprintf("Failed|Failed to pull image %q: ", image)) && strings.Contains(out, cause) &&
				strings.Contains(out, "Failed|Error: ErrImagePull") && strings.Contains(out, fmt.Sprintf("Pulling|Pulling image %q", image)), nil
		})
		if err != nil {
			t.Errorf("events: %q, %v", out, err)
		}
		if pod.Status.Phase != corev1.PodPending {
			t.Errorf("phase %s, want Pending", pod.Status.Phase)
		}
		t.Logf("ErrImagePull message seen: %q; back-off message: %q; events:\n%s", pullMsg, w.Message, out)
	}

	t.Run("no-secret", func(t *testing.T) {
		failsToPull(t, "pull-nosecret", "")
		if reg.refused.Load() == 0 {
			t.Error("the registry refused nothing: the node never asked it")
		}
	})
	for _, v := range framework.KubectlVersions {
		t.Run("kubectl-"+v, func(t *testing.T) {
			secret := "regcred-" + dashed(v)
			if _, err := shared.Kubectl(ctx, v, "create", "secret", "docker-registry", secret,
				"--docker-server="+host, "--docker-username=e2e-user", "--docker-password=e2e-pass", "--docker-email=e2e@example.com"); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { shared.Kubectl(ctx, v, "delete", "secret", secret) })
			out, err := shared.Kubectl(ctx, v, "get", "secret", secret, "-o", "jsonpath={.type}")
			if err != nil || out != "kubernetes.io/dockerconfigjson" {
				t.Fatalf("secret type %q, %v", out, err)
			}
			before := reg.authorized.Load()
			name := "pull-secret-" + dashed(v)
			applyPod(t, shared, name, fmt.Sprintf(manifest, name, image, "  imagePullSecrets: [{name: "+secret+"}]\n"))
			pod := waitPod(t, c, name, "Running", framework.Running)
			if reg.authorized.Load() == before {
				t.Error("the pod runs, but the registry served no authorized request")
			}
			cs := pod.Status.ContainerStatuses[0]
			if cs.Image != image || !strings.HasPrefix(cs.ImageID, host+"/e2e/busybox@sha256:") {
				t.Errorf("status image %q imageID %q", cs.Image, cs.ImageID)
			}
			err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 10*time.Second, true, func(ctx context.Context) (bool, error) {
				out, _ = shared.Kubectl(ctx, v, "logs", name)
				return out != "", nil
			})
			if out != "pushed=yes\n" {
				t.Errorf("logs %q: not the pushed image's environment", out)
			}

			// A wrong password is refused like no secret.
			bad := "badcred-" + dashed(v)
			if _, err := shared.Kubectl(ctx, v, "create", "secret", "docker-registry", bad,
				"--docker-server="+host, "--docker-username=e2e-user", "--docker-password=wrong"); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { shared.Kubectl(ctx, v, "delete", "secret", bad) })
			badPod := "pull-badcred-" + dashed(v)
			failsToPull(t, badPod, bad)
		})
	}
	// The image is on the node now, but pull policy Always still asks the
	// registry, so a pod without credentials still cannot use it.
	t.Run("no-secret-image-present", func(t *testing.T) {
		failsToPull(t, "pull-nosecret-present", "")
	})
}
