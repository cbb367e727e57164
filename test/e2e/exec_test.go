//go:build e2e

package e2e

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/pocketkube/pocketkube/test/framework"
)

func TestPodRunsLogsAndExec(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	c := shared.Client(t)
	shared.ApplyPod(t, "sleeper", sleeperPod("sleeper"))
	pod := framework.WaitPod(t, c, "default", "sleeper", "Running", framework.Running)
	_, cidr, _ := net.ParseCIDR("10.244.0.0/16")
	if ip := net.ParseIP(pod.Status.PodIP); ip == nil || !cidr.Contains(ip) {
		t.Errorf("podIP %q not in %s", pod.Status.PodIP, cidr)
	}
	cs := pod.Status.ContainerStatuses[0]
	if !strings.HasPrefix(cs.ContainerID, "runc://") || !cs.Ready || cs.Started == nil || !*cs.Started {
		t.Errorf("container status %+v", cs)
	}
	if pod.Status.HostIP == "" || pod.Status.StartTime == nil || pod.Status.QOSClass != corev1.PodQOSBestEffort {
		t.Errorf("status %+v", pod.Status)
	}
	for _, v := range framework.KubectlVersions {
		t.Run("kubectl-"+v, func(t *testing.T) {
			out, err := shared.PollKubectl(ctx, v, 10*time.Second, func(out string, _ error) bool {
				return strings.Contains(out, "to stderr")
			}, "logs", "sleeper")
			if err != nil || out != "hello from sleeper\nto stderr\n" {
				t.Errorf("logs = %q", out)
			}
			out, err = shared.Kubectl(ctx, v, "logs", "sleeper", "--timestamps", "--tail=1")
			if err != nil || !strings.HasSuffix(out, " to stderr\n") || !strings.Contains(out, "T") {
				t.Errorf("logs --timestamps --tail=1 = %q, %v", out, err)
			}
			out, err = shared.Kubectl(ctx, v, "exec", "sleeper", "--", "cat", "/etc/hostname")
			if err != nil || out != "sleeper\n" {
				t.Errorf("exec cat /etc/hostname = %q, %v", out, err)
			}
			_, err = shared.Kubectl(ctx, v, "exec", "sleeper", "--", "sh", "-c", "exit 7")
			if framework.ExitCode(err) != 7 {
				t.Errorf("exec exit 7: %v", err)
			}
			out, err = shared.KubectlStdin(ctx, v, "from stdin\n", "exec", "-i", "sleeper", "--", "cat")
			if err != nil || out != "from stdin\n" {
				t.Errorf("exec -i cat = %q, %v", out, err)
			}
		})
	}
}

// kexec runs `kubectl exec pod -c container -- sh -c cmd` and returns
// stdout, stderr and the error.
func kexec(ctx context.Context, v, pod, container, cmd string) (string, string, error) {
	return shared.KubectlSplit(ctx, v, "", "exec", pod, "-c", container, "--", "sh", "-c", cmd)
}

func TestAttach(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	c := shared.Client(t)
	ticker := "attach-ticker"
	shared.ApplyPod(t, ticker, podYAML("attach-ticker", 1, `  containers:
  - name: main
    image: busybox
    command: ["sh", "-c", "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done"]
`))
	for _, v := range framework.KubectlVersions {
		t.Run("kubectl-"+v, func(t *testing.T) {
			// attach -i: stdin reaches the container's read; with
			// stdinOnce, kubectl's EOF closes the container's stdin, the
			// loop ends, and attach ends with the container.
			name := "attach-stdin-" + framework.Dashed(v)
			shared.ApplyPod(t, name, podYAML(name, 1, `  restartPolicy: Never
  containers:
  - name: main
    image: busybox
    stdin: true
    stdinOnce: true
    command: ["sh", "-c", "while read line; do echo got:$line; echo err:$line >&2; done; echo bye"]
`))
			framework.WaitPod(t, c, "default", name, "Running", framework.Running)
			actx, cancel := context.WithTimeout(ctx, 60*time.Second)
			defer cancel()
			out, errOut, err := shared.KubectlSplit(actx, v, "one\ntwo\n", "attach", "-i", name)
			if err != nil || out != "got:one\ngot:two\nbye\n" || !strings.Contains(errOut, "err:one\nerr:two\n") {
				t.Errorf("attach -i: stdout %q, stderr %q, %v", out, errOut, err)
			}
			pod := framework.WaitPod(t, c, "default", name, "Succeeded", framework.PhaseIs(corev1.PodSucceeded))
			if term := pod.Status.ContainerStatuses[0].State.Terminated; term == nil || term.ExitCode != 0 || term.Reason != "Completed" {
				t.Errorf("after attach: %s", framework.PodStatus(pod))
			}
			// kubectl refuses to attach to a completed pod, as upstream.
			_, errOut, err = shared.KubectlSplit(ctx, v, "", "attach", name)
			if err == nil || !strings.Contains(errOut, "cannot attach a container in a completed pod; current phase is Succeeded") {
				t.Errorf("attach to completed pod: %q, %v", errOut, err)
			}

			// Plain attach streams the output written from now on, not
			// what was written before.
			framework.WaitPod(t, c, "default", ticker, "Running", framework.Running)
			logs, err := shared.PollKubectl(ctx, v, 20*time.Second, func(logs string, _ error) bool {
				return strings.Count(logs, "tick ") >= 3
			}, "logs", ticker)
			if err != nil {
				t.Fatalf("ticker never ticked: %v", err)
			}
			before := strings.Count(logs, "tick ")
			r := shared.StartKubectlLines(t, v, "attach", ticker)
			prev := -1
			for i := 0; i < 4; i++ {
				line := r.Next(t, 20*time.Second)
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

func TestExecTTY(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	c := shared.Client(t)
	shared.ApplyPod(t, "exec-tty", sleeperPod("exec-tty"))
	framework.WaitPod(t, c, "default", "exec-tty", "Running", framework.Running)
	for _, v := range framework.KubectlVersions {
		t.Run("kubectl-"+v, func(t *testing.T) {
			// Without -t there is no terminal.
			out, _, err := kexec(ctx, v, "exec-tty", "main", "tty")
			if out != "not a tty\n" || framework.ExitCode(err) != 1 {
				t.Errorf("exec tty without -t: %q, %v", out, err)
			}

			p := framework.StartInPty(t, 37, 101, filepath.Join(framework.KubectlDir, "kubectl."+v), "--kubeconfig", shared.Kubeconfig, "exec", "-it", "exec-tty", "--", "sh")
			// busybox sh is interactive on a terminal: its prompt means
			// the terminal is set up and kubectl's first size was sent.
			p.WaitFor(t, 0, "# ", 30*time.Second)
			from := len(p.Output())
			p.Write(t, "tty; stty size\n")
			p.WaitFor(t, from, "/dev/pts/0\r\n", 10*time.Second)
			p.WaitFor(t, from, "37 101\r\n", 10*time.Second)

			// A resize of our terminal reaches the container's: kubectl
			// gets SIGWINCH and sends the new size. The shell may run
			// before the resize arrives, so ask again until it shows.
			p.Resize(t, 50, 132)
			err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 15*time.Second, true, func(context.Context) (bool, error) {
				from := len(p.Output())
				p.Write(t, "stty size\n")
				time.Sleep(100 * time.Millisecond)
				return strings.Contains(p.Output()[from:], "50 132\r\n"), nil
			})
			if err != nil {
				t.Errorf("stty size never showed the new size 50 132:\n%q", p.Output())
			}
			// Input is a terminal's: ^C reaches the shell as SIGINT, not
			// kubectl, which keeps running.
			from = len(p.Output())
			p.Write(t, "sleep 30\n")
			time.Sleep(300 * time.Millisecond)
			p.Write(t, "\x03")
			p.Write(t, "echo after-$((40+2))\n")
			p.WaitFor(t, from, "after-42", 15*time.Second)
			p.Write(t, "exit 3\n")
			if code := p.Exit(t, 30*time.Second); code != 3 {
				t.Errorf("kubectl exec -it exited %d, want the shell's 3; terminal:\n%q", code, p.Output())
			}
		})
	}
}

// TestExecStdinReturnsWhenCommandExits runs `kubectl exec -i` with a stdin
// that never closes: as with containerd, the session ends when the command
// exits, with its exit code, not when stdin ends (issue 13).
func TestExecStdinReturnsWhenCommandExits(t *testing.T) {
	c, ns := busyboxNamespace(t, "exec-stdin-")
	framework.RunPods(t, c, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "sleeper", Namespace: ns},
		Spec: corev1.PodSpec{
			TerminationGracePeriodSeconds: new(int64),
			Containers:                    []corev1.Container{{Name: "main", Image: "busybox", Command: []string{"sleep", "3600"}}},
		},
	})
	forEachKubectl(t, func(t *testing.T, v string) {
		for _, tc := range []struct {
			name string
			cmd  []string
			code int
		}{
			{name: "true", cmd: []string{"true"}, code: 0},
			{name: "exit 3", cmd: []string{"sh", "-c", "exit 3"}, code: 3},
		} {
			t.Run(tc.name, func(t *testing.T) {
				// The write end stays open until the test ends, so kubectl
				// never sees the end of its stdin.
				r, w, err := os.Pipe()
				if err != nil {
					t.Fatal(err)
				}
				defer w.Close()
				// A bound on returning at all, not on speed.
				ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
				defer cancel()
				args := append([]string{"--kubeconfig", shared.Kubeconfig, "-n", ns, "exec", "-i", "sleeper", "-c", "main", "--"}, tc.cmd...)
				cmd := exec.CommandContext(ctx, framework.Kubectl(v), args...)
				cmd.Stdin = r
				out, err := cmd.CombinedOutput()
				r.Close()
				if ctx.Err() != nil {
					t.Fatalf("kubectl exec -i %v did not return within 20s of a stdin that stays open; output: %s", tc.cmd, out)
				}
				code := 0
				if err != nil {
					var exitErr *exec.ExitError
					if !errors.As(err, &exitErr) {
						t.Fatalf("kubectl exec -i %v: %v; output: %s", tc.cmd, err, out)
					}
					code = exitErr.ExitCode()
				}
				if code != tc.code {
					t.Fatalf("kubectl exec -i %v exited %d, want %d; output: %s", tc.cmd, code, tc.code, out)
				}
			})
		}
	})
}
