//go:build e2e

package e2e

import (
	"context"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/pocketkube/pocketkube/test/framework"
)

// ephemeralStatus returns the status of pod's ephemeral container name,
// or nil.
func ephemeralStatus(p *corev1.Pod, name string) *corev1.ContainerStatus {
	for i := range p.Status.EphemeralContainerStatuses {
		if p.Status.EphemeralContainerStatuses[i].Name == name {
			return &p.Status.EphemeralContainerStatuses[i]
		}
	}
	return nil
}

// waitEphemeral waits until pod ns/name's ephemeral container is running
// (terminated false) or terminated (true).
func waitEphemeral(t *testing.T, c kubernetes.Interface, ns, pod, container string, terminated bool) *corev1.Pod {
	t.Helper()
	what := "running"
	if terminated {
		what = "terminated"
	}
	return framework.WaitPod(t, c, ns, pod, "ephemeral container "+container+" "+what, func(p *corev1.Pod) bool {
		cs := ephemeralStatus(p, container)
		if cs == nil {
			return false
		}
		if terminated {
			return cs.State.Terminated != nil
		}
		return cs.State.Running != nil
	})
}

// targetPod is a pod whose container app runs `sleep 3600`, which a
// debug container in its PID namespace sees.
func targetPod(ns, name string) *corev1.Pod {
	return sidecarPod(ns, name, corev1.RestartPolicyAlways, nil,
		corev1.Container{Name: "app", Image: "busybox", ImagePullPolicy: corev1.PullIfNotPresent, Command: []string{"sleep", "3600"}})
}

// TestDebugEphemeralContainer is `kubectl debug POD --target`: the debug
// container runs in the target container's PID namespace (it sees its
// sleep), reports its exit in ephemeralContainerStatuses, is never
// restarted; `kubectl debug -it` attaches to a shell there, which
// `kubectl exec` also reaches.
func TestDebugEphemeralContainer(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	c, ns := busyboxNamespace(t, "debug-")
	v := framework.Newest()
	framework.RunPods(t, c, targetPod(ns, "target"))

	// Non-interactive: kubectl returns once the container is added.
	out, err := shared.Kubectl(ctx, v, "debug", "-n", ns, "target", "--image=busybox", "--image-pull-policy=IfNotPresent",
		"--target=app", "-c", "ps", "--", "sh", "-c", "ps; exit 3")
	if err != nil {
		t.Fatalf("kubectl debug: %v: %s", err, out)
	}
	pod := waitEphemeral(t, c, ns, "target", "ps", true)
	first := *ephemeralStatus(pod, "ps")
	if term := first.State.Terminated; term.ExitCode != 3 || term.Reason != "Error" || first.RestartCount != 0 || first.Ready || !strings.HasPrefix(first.ContainerID, "runc://") {
		t.Errorf("debug container status %+v", first)
	}
	if pod.Status.Phase != corev1.PodRunning || !framework.Ready(pod) {
		t.Errorf("a debug container that failed changed the pod: %s", framework.PodStatus(pod))
	}
	logs, err := shared.Kubectl(ctx, v, "logs", "-n", ns, "target", "-c", "ps")
	if err != nil || !regexp.MustCompile(`(?m)^\s*1 root .*sleep 3600$`).MatchString(logs) {
		t.Errorf("ps in the target's PID namespace does not show its sleep as PID 1: %q, %v", logs, err)
	}

	// Interactive: a shell on a terminal, as `kubectl debug -it`.
	p := framework.StartInPty(t, 30, 100, framework.Kubectl(v), "--kubeconfig", shared.Kubeconfig, "debug", "-it", "-n", ns, "target",
		"--image=busybox", "--image-pull-policy=IfNotPresent", "--target=app", "-c", "shell", "--", "sh")
	p.WaitFor(t, 0, "# ", 60*time.Second)
	from := len(p.Output())
	p.Write(t, "ps -o pid,args | grep -c '[s]leep 3600'; tty\n")
	p.WaitFor(t, from, "1\r\n/dev/pts/0\r\n", 15*time.Second)
	out, err = shared.Kubectl(ctx, v, "exec", "-n", ns, "target", "-c", "shell", "--", "echo", "marco")
	if err != nil || out != "marco\n" {
		t.Errorf("exec in the debug container: %q, %v", out, err)
	}
	pod = waitEphemeral(t, c, ns, "target", "shell", false)
	if cs := ephemeralStatus(pod, "shell"); cs.Started != nil || cs.Ready {
		t.Errorf("running debug container: started %v ready %v, want unset and false as kubelet", cs.Started, cs.Ready)
	}
	p.Write(t, "exit 0\n")
	if code := p.Exit(t, 30*time.Second); code != 0 {
		t.Errorf("kubectl debug -it exited %d; terminal:\n%q", code, p.Output())
	}
	pod = waitEphemeral(t, c, ns, "target", "shell", true)
	if term := ephemeralStatus(pod, "shell").State.Terminated; term.ExitCode != 0 || term.Reason != "Completed" {
		t.Errorf("shell debug container %+v", term)
	}

	// The first one was not restarted while the pod synced the second.
	again := ephemeralStatus(pod, "ps")
	if again.State.Terminated == nil || again.ContainerID != first.ContainerID || again.RestartCount != 0 {
		t.Errorf("exited debug container restarted: %+v, was %+v", again, first)
	}
	// kubectl refuses to attach to an ephemeral container that ended.
	if _, errOut, err := shared.KubectlSplit(ctx, v, "", "attach", "-n", ns, "target", "-c", "ps"); err == nil {
		t.Errorf("attach to an exited debug container succeeded: %s", errOut)
	}

	// A pod with ended debug containers is deleted as any other: their
	// terminated statuses stay (the API refuses them going back to
	// waiting once the runtime has removed them).
	if err := c.CoreV1().Pods(ns).Delete(ctx, "target", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	framework.WaitGone(t, c, ns, "target")
}

// TestEphemeralContainersConformance is upstream's "Ephemeral Containers"
// specs (test/e2e/common/node/ephemeral_containers.go): "will start an
// ephemeral container in an existing pod" and "should update the
// ephemeral containers in an existing pod", with busybox for agnhost.
func TestEphemeralContainersConformance(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	c, ns := busyboxNamespace(t, "ephemeral-containers-test-")
	pod := framework.RunPods(t, c, sidecarPod(ns, "ephemeral-containers-target-pod", corev1.RestartPolicyAlways, nil,
		corev1.Container{Name: "test-container-1", Image: "busybox", Command: []string{"/bin/sleep"}, Args: []string{"10000"}}))["ephemeral-containers-target-pod"]
	if pod.Generation != 1 {
		t.Errorf("generation %d, want 1", pod.Generation)
	}
	t.Cleanup(func() {
		if p, err := c.CoreV1().Pods(ns).Get(context.Background(), pod.Name, metav1.GetOptions{}); t.Failed() && err == nil {
			t.Logf("ephemeral container statuses: %+v", p.Status.EphemeralContainerStatuses)
		}
	})
	pod.Spec.EphemeralContainers = append(pod.Spec.EphemeralContainers, corev1.EphemeralContainer{EphemeralContainerCommon: corev1.EphemeralContainerCommon{
		Name: "debugger", Image: "busybox", Command: []string{"/bin/sh", "-c", "while true; do echo polo; sleep 2; done"},
		Stdin: true, TTY: true,
	}})
	if _, err := c.CoreV1().Pods(ns).UpdateEphemeralContainers(ctx, pod.Name, pod, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	pod = waitEphemeral(t, c, ns, pod.Name, "debugger", false)
	if pod.Generation != 2 {
		t.Errorf("generation %d, want 2", pod.Generation)
	}
	out, err := shared.Kubectl(ctx, framework.Newest(), "exec", "-n", ns, pod.Name, "-c", "debugger", "--", "/bin/echo", "marco")
	if err != nil || !strings.Contains(out, "marco") {
		t.Errorf("exec in the ephemeral container: %q, %v", out, err)
	}
	var logs string
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		logs, err = framework.PodLogs(ctx, c, ns, pod.Name, "debugger")
		return err == nil && strings.Contains(logs, "polo"), nil
	})
	if err != nil {
		t.Errorf("logs of the ephemeral container: %q, %v", logs, err)
	}

	// The ephemeralcontainers subresource has the one; an update adds a
	// second, which starts.
	ephemeral := func() []corev1.EphemeralContainer {
		t.Helper()
		var p corev1.Pod
		if err := c.CoreV1().RESTClient().Get().Namespace(ns).Resource("pods").Name(pod.Name).SubResource("ephemeralcontainers").Do(ctx).Into(&p); err != nil {
			t.Fatal(err)
		}
		return p.Spec.EphemeralContainers
	}
	if n := len(ephemeral()); n != 1 {
		t.Errorf("%d ephemeral containers, want 1", n)
	}
	pod, err = c.CoreV1().Pods(ns).Get(ctx, pod.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pod.Spec.EphemeralContainers = append(pod.Spec.EphemeralContainers, corev1.EphemeralContainer{EphemeralContainerCommon: corev1.EphemeralContainerCommon{
		// The test busybox has no CMD; agnhost's entrypoint runs.
		Name: "debugger2", Image: "busybox", Command: []string{"/bin/sleep", "3600"}, ImagePullPolicy: corev1.PullIfNotPresent, TerminationMessagePolicy: corev1.TerminationMessageReadFile,
	}})
	if _, err := c.CoreV1().Pods(ns).UpdateEphemeralContainers(ctx, pod.Name, pod, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if n := len(ephemeral()); n != 2 {
		t.Errorf("%d ephemeral containers, want 2", n)
	}
	pod = framework.WaitPod(t, c, ns, pod.Name, "ephemeral container debugger2 started", func(p *corev1.Pod) bool {
		cs := ephemeralStatus(p, "debugger2")
		return cs != nil && cs.ContainerID != ""
	})
	if cs := ephemeralStatus(pod, "debugger"); cs == nil || cs.State.Running == nil {
		t.Errorf("first ephemeral container after the second was added: %+v", cs)
	}
}

// TestDebugCopy is `kubectl debug POD --copy-to=NEW --container=c --
// CMD`: a copy of the pod whose container c runs CMD.
func TestDebugCopy(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	c, ns := busyboxNamespace(t, "debug-copy-")
	framework.RunPods(t, c, targetPod(ns, "original"))
	out, err := shared.Kubectl(ctx, framework.Newest(), "debug", "-n", ns, "original", "--copy-to=copy", "--container=app",
		"--", "sh", "-c", "echo copied from $(hostname); exec sleep 3600")
	if err != nil {
		t.Fatalf("kubectl debug --copy-to: %v: %s", err, out)
	}
	framework.WaitPod(t, c, ns, "copy", "Running", framework.Running)
	logs, _ := framework.WaitPodLogs(t, c, ns, "copy", 30*time.Second, func(logs string) bool { return strings.Contains(logs, "copied") })
	if logs != "copied from copy\n" {
		t.Errorf("logs of the copy: %q", logs)
	}
	orig, err := c.CoreV1().Pods(ns).Get(ctx, "original", metav1.GetOptions{})
	if err != nil || !framework.Running(orig) || orig.Status.ContainerStatuses[0].RestartCount != 0 {
		t.Errorf("original after the copy: %v, %v", orig, err)
	}
}

// TestDebugNode is `kubectl debug node/NODE -- chroot /host CMD`: a pod
// on the node with the host's PID and network namespaces and its root at
// /host.
func TestDebugNode(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	c, ns := busyboxNamespace(t, "debug-node-")
	nodes, err := c.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil || len(nodes.Items) == 0 {
		t.Fatalf("nodes: %v, %v", nodes, err)
	}
	node := nodes.Items[0].Name
	// The host's /etc/hostname through the chroot, and PID 1's command
	// line: with hostPID, the host's init.
	out, errOut, err := shared.KubectlSplit(ctx, framework.Newest(), "", "debug", "-n", ns, "node/"+node, "--image=busybox",
		"--image-pull-policy=IfNotPresent", "--", "chroot", "/host", "sh", "-c", `cat /etc/hostname; tr '\0' ' ' </proc/1/cmdline`)
	if err != nil {
		t.Fatalf("kubectl debug node: %v: %s%s", err, out, errOut)
	}
	m := regexp.MustCompile(`Creating debugging pod (\S+) with container debugger on node`).FindStringSubmatch(out + errOut)
	if m == nil {
		t.Fatalf("no debugging pod named in %q", out+errOut)
	}
	pod := framework.WaitPod(t, c, ns, m[1], "Succeeded", framework.PhaseIs(corev1.PodSucceeded))
	if !pod.Spec.HostNetwork || !pod.Spec.HostPID || pod.Spec.NodeName != node {
		t.Errorf("debugging pod spec: hostNetwork %v hostPID %v node %q", pod.Spec.HostNetwork, pod.Spec.HostPID, pod.Spec.NodeName)
	}
	logs, err := framework.PodLogs(ctx, c, ns, m[1], "debugger")
	if err != nil {
		t.Fatal(err)
	}
	hostname, err := os.ReadFile("/etc/hostname")
	if err != nil {
		t.Fatal(err)
	}
	pid1, err := os.ReadFile("/proc/1/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	want := string(hostname) + strings.ReplaceAll(string(pid1), "\x00", " ")
	if logs != want {
		t.Errorf("debugging pod printed %q, want the host's /etc/hostname and PID 1 %q", logs, want)
	}
}
