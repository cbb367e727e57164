//go:build e2e

package e2e

import (
	"errors"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pocketkube/pocketkube/test/framework"
	corev1 "k8s.io/api/core/v1"
)

func TestLogsFollow(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	c := shared.Client(t)
	for _, v := range framework.KubectlVersions {
		t.Run("kubectl-"+v, func(t *testing.T) {
			name := "logs-follow-" + framework.Dashed(v)
			shared.ApplyPod(t, name, podYAML(name, 1, `  restartPolicy: Never
  containers:
  - name: main
    image: busybox
    command: ["sh", "-c", "echo first; until [ -e /tmp/go ]; do sleep 0.1; done; echo second; until [ -e /tmp/end ]; do sleep 0.1; done; echo last"]
`))
			framework.WaitPod(t, c, "default", name, "Running", framework.Running)
			r := shared.StartKubectlLines(t, v, "logs", "-f", name)
			if l := r.Next(t, 20*time.Second); l != "first" {
				t.Fatalf("first line %q", l)
			}
			// A line written while kubectl follows reaches it.
			if _, _, err := kexec(ctx, v, name, "main", "touch /tmp/go"); err != nil {
				t.Fatal(err)
			}
			if l := r.Next(t, 20*time.Second); l != "second" {
				t.Fatalf("second line %q", l)
			}
			// The follow ends, with success, when the container exits. The
			// exec races that exit: once the container's first process sees
			// the file and ends, the kernel kills every process left in the
			// pod's PID namespace, the exec's shell too (exit 137), as on
			// any node; that ending is not a failure.
			if _, _, err := kexec(ctx, v, name, "main", "touch /tmp/end"); err != nil && !killedWithContainer(err) {
				t.Fatal(err)
			}
			rest, err := r.Wait(t, 30*time.Second)
			if err != nil || strings.Join(rest, "\n") != "last" {
				t.Errorf("after the exit: %q, %v; stderr %s", rest, err, r.Stderr())
			}
			framework.WaitPod(t, c, "default", name, "Succeeded", framework.PhaseIs(corev1.PodSucceeded))
		})
	}
}

// killedWithContainer says whether a kubectl exec ended because its
// container's first process exited: SIGKILL, exit code 128+9.
func killedWithContainer(err error) bool {
	var exit *exec.ExitError
	return errors.As(err, &exit) && exit.ExitCode() == 137
}

func TestLogsFollowPreviousSinceContainersTail(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	c := shared.Client(t)
	shared.ApplyPod(t, "logs-restarts", podYAML("logs-restarts", 1, `  containers:
  - name: main
    image: busybox
    command: ["sh", "-c", "n=$(cat /data/n 2>/dev/null || echo 0); n=$((n+1)); echo $n > /data/n; echo attempt $n; if [ $n -ge 2 ]; then exec sleep 3600; fi; exit 1"]
    volumeMounts: [{name: data, mountPath: /data}]
  volumes:
  - name: data
    emptyDir: {}
`))
	shared.ApplyPod(t, "logs-multi", podYAML("logs-multi", 1, `  containers:
  - name: a
    image: busybox
    command: ["sh", "-c", "echo from a; exec sleep 3600"]
  - name: b
    image: busybox
    command: ["sh", "-c", "for i in 1 2 3 4 5; do echo b$i; done; exec sleep 3600"]
`))
	framework.WaitPod(t, c, "default", "logs-multi", "Running", framework.Running)
	// The first restart comes at once; kubelet's 10 s back-off starts after it.
	pod := framework.WaitPod(t, c, "default", "logs-restarts", "restarted and running", func(p *corev1.Pod) bool {
		return framework.Running(p) && p.Status.ContainerStatuses[0].RestartCount == 1
	})
	if last := pod.Status.ContainerStatuses[0].LastTerminationState.Terminated; last == nil || last.ExitCode != 1 {
		t.Errorf("lastState %+v", pod.Status.ContainerStatuses[0].LastTerminationState)
	}
	_, err := shared.PollKubectl(ctx, framework.Newest(), 20*time.Second, func(out string, _ error) bool {
		return strings.Contains(out, "b5")
	}, "logs", "logs-multi", "-c", "b")
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
					out, errOut, err := shared.KubectlSplit(ctx, v, "", append([]string{"logs"}, tc.args...)...)
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
