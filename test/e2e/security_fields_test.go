//go:build e2e

package e2e

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	nodev1 "k8s.io/api/node/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/pocketkube/pocketkube/test/framework"
)

// Pod fields that change a pod's security (issue 13, item 3): each is
// applied and checked from inside the container, or the pod is refused
// with the status kubelet gives. A pod never runs looser than it asked.

// sysctlPod is upstream's testPod (test/e2e/common/node/sysctl.go): one
// busybox container that runs once.
func sysctlPod(ns, name string, sysctls []corev1.Sysctl, cmd ...string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: corev1.PodSpec{
			TerminationGracePeriodSeconds: new(int64),
			RestartPolicy:                 corev1.RestartPolicyNever,
			SecurityContext:               &corev1.PodSecurityContext{Sysctls: sysctls},
			Containers:                    []corev1.Container{{Name: "test-container", Image: "busybox", Command: cmd}},
		},
	}
}

// podEvents returns the node's events about the pod as "Type Reason
// Message" lines (not the scheduler's: a FailedScheduling while the node
// becomes ready says nothing about the node).
func podEvents(ctx context.Context, t *testing.T, c kubernetes.Interface, ns, name string) []string {
	t.Helper()
	list, err := c.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=" + name})
	if err != nil {
		t.Fatalf("list events of %s: %v", name, err)
	}
	var out []string
	for _, e := range list.Items {
		if e.Source.Component != "kubelet" && e.ReportingController != "kubelet" {
			continue
		}
		out = append(out, e.Type+" "+e.Reason+" "+e.Message)
	}
	return out
}

// runToSuccess waits for the pod to succeed with no Warning event (upstream's
// WaitForErrorEventOrSuccess) and returns its log.
func runToSuccess(t *testing.T, c kubernetes.Interface, pod *corev1.Pod) string {
	t.Helper()
	ctx := t.Context()
	framework.CreatePod(t, c, pod)
	p, err := framework.WaitPodIn(ctx, c, pod.Namespace, pod.Name, framework.PodTimeout, func(p *corev1.Pod) (bool, error) {
		return p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	log, _ := framework.PodLogs(ctx, c, pod.Namespace, pod.Name, pod.Spec.Containers[0].Name)
	for _, e := range podEvents(ctx, t, c, pod.Namespace, pod.Name) {
		if strings.HasPrefix(e, "Warning ") {
			t.Errorf("pod %s: event %q", pod.Name, e)
		}
	}
	if p.Status.Phase != corev1.PodSucceeded {
		t.Fatalf("pod %s: %s (%s: %s), log %q; want Succeeded", pod.Name, framework.PodStatus(p), p.Status.Reason, p.Status.Message, log)
	}
	return log
}

// expectRejected waits for kubelet's admission verdict on the pod: phase
// Failed with reason and message, the same Warning event, and not one
// container started.
func expectRejected(t *testing.T, c kubernetes.Interface, pod *corev1.Pod, reason, message string) {
	t.Helper()
	ctx := t.Context()
	framework.CreatePod(t, c, pod)
	p, err := framework.WaitPodIn(ctx, c, pod.Namespace, pod.Name, framework.PodTimeout, func(p *corev1.Pod) (bool, error) {
		return p.Status.Phase == corev1.PodFailed || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodRunning, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if p.Status.Phase != corev1.PodFailed || p.Status.Reason != reason || p.Status.Message != message {
		t.Fatalf("pod %s: phase %s reason %q message %q (%s); want Failed, %q, %q",
			pod.Name, p.Status.Phase, p.Status.Reason, p.Status.Message, framework.PodStatus(p), reason, message)
	}
	for _, cs := range p.Status.ContainerStatuses {
		if cs.State.Running != nil || cs.State.Terminated != nil || cs.ContainerID != "" {
			t.Errorf("pod %s: container %s ran: %s", pod.Name, cs.Name, framework.PodStatus(p))
		}
	}
	want := "Warning " + reason + " " + strings.TrimPrefix(message, "Pod was rejected: ")
	var events []string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		events = podEvents(ctx, t, c, pod.Namespace, pod.Name)
		for _, e := range events {
			if e == want {
				return
			}
		}
	}
	t.Errorf("pod %s: events %q, want %q", pod.Name, events, want)
}

// TestSysctls ports upstream's conformance spec "Sysctls [LinuxOnly]
// [NodeConformance]" (test/e2e/common/node/sysctl.go): kubelet's safe
// sysctls are set in the pod's namespaces, any other sysctl gets the pod
// rejected by kubelet's admission (SysctlForbidden), and the API server
// refuses invalid names. Before, pocketkube ran every such pod with the
// kernel's values, whatever it asked.
func TestSysctls(t *testing.T) {
	t.Parallel()
	c := shared.Client(t)
	shared.ImportBusybox(t, "busybox")
	ns := framework.NewNamespace(t, c, "sysctl-")

	t.Run("should support sysctls", func(t *testing.T) {
		t.Parallel()
		log := runToSuccess(t, c, sysctlPod(ns, "sysctl-dots",
			[]corev1.Sysctl{{Name: "kernel.shm_rmid_forced", Value: "1"}},
			"/bin/sysctl", "kernel.shm_rmid_forced"))
		if !strings.Contains(log, "kernel.shm_rmid_forced = 1") {
			t.Errorf("log %q, want kernel.shm_rmid_forced = 1", log)
		}
	})

	t.Run("should support sysctls with slashes as separator", func(t *testing.T) {
		t.Parallel()
		log := runToSuccess(t, c, sysctlPod(ns, "sysctl-slashes",
			[]corev1.Sysctl{{Name: "kernel/shm_rmid_forced", Value: "1"}},
			"/bin/sysctl", "kernel/shm_rmid_forced"))
		if !strings.Contains(log, "kernel.shm_rmid_forced = 1") {
			t.Errorf("log %q, want kernel.shm_rmid_forced = 1", log)
		}
	})

	// Beyond upstream's spec: a net.* sysctl lands in the pod's network
	// namespace (read back through /proc/sys) and not on the host.
	t.Run("net sysctl in the pod's network namespace only", func(t *testing.T) {
		t.Parallel()
		const file = "/proc/sys/net/ipv4/ip_unprivileged_port_start"
		host, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		log := runToSuccess(t, c, sysctlPod(ns, "sysctl-net",
			[]corev1.Sysctl{{Name: "net.ipv4.ip_unprivileged_port_start", Value: "42"}, {Name: "kernel.shm_rmid_forced", Value: "1"}},
			"sh", "-c", "cat "+file+" /proc/sys/kernel/shm_rmid_forced"))
		if log != "42\n1\n" {
			t.Errorf("log %q, want 42 and 1", log)
		}
		if after, _ := os.ReadFile(file); string(after) != string(host) {
			t.Errorf("host's %s changed from %q to %q", file, host, after)
		}
	})

	t.Run("should reject invalid sysctls", func(t *testing.T) {
		t.Parallel()
		pod := sysctlPod(ns, "sysctl-invalid", []corev1.Sysctl{
			{Name: "foo-", Value: "bar"},
			{Name: "kernel.shmmax", Value: "100000000"},
			{Name: "safe-and-unsafe", Value: "100000000"},
			{Name: "bar..", Value: "42"},
		}, "true")
		_, err := c.CoreV1().Pods(ns).Create(t.Context(), pod, metav1.CreateOptions{})
		if err == nil {
			c.CoreV1().Pods(ns).Delete(context.Background(), pod.Name, metav1.DeleteOptions{})
			t.Fatal("pod with invalid sysctl names created")
		}
		msg := err.Error()
		if !strings.Contains(msg, `Invalid value: "foo-"`) || !strings.Contains(msg, `Invalid value: "bar.."`) ||
			strings.Contains(msg, "safe-and-unsafe") || strings.Contains(msg, "kernel.shmmax") {
			t.Errorf("error %q, want foo- and bar.. invalid only", msg)
		}
	})

	t.Run("should not launch unsafe, but not explicitly enabled sysctls on the node", func(t *testing.T) {
		t.Parallel()
		expectRejected(t, c, sysctlPod(ns, "sysctl-unsafe",
			[]corev1.Sysctl{{Name: "kernel.msgmax", Value: "10000000000"}}, "true"),
			"SysctlForbidden", `Pod was rejected: forbidden sysctl: "kernel.msgmax" not allowlisted`)
	})

	// A safe net.* sysctl with the host's network namespace would set it
	// for the whole node: the API server refuses it (kubelet's allowlist
	// would too, see the agent's TestSyncPodSysctls).
	t.Run("net sysctl refused with hostNetwork", func(t *testing.T) {
		t.Parallel()
		pod := sysctlPod(ns, "sysctl-hostnet",
			[]corev1.Sysctl{{Name: "net.ipv4.ip_local_port_range", Value: "40000 40100"}}, "true")
		pod.Spec.HostNetwork = true
		_, err := c.CoreV1().Pods(ns).Create(t.Context(), pod, metav1.CreateOptions{})
		if err == nil {
			c.CoreV1().Pods(ns).Delete(context.Background(), pod.Name, metav1.DeleteOptions{})
			t.Fatal("hostNetwork pod with a net.* sysctl created")
		}
		if !strings.Contains(err.Error(), "may not be specified when 'hostNetwork' is true") {
			t.Errorf("error %q, want the hostNetwork refusal", err)
		}
	})
}

// expectSandboxRefused waits for kubelet's FailedCreatePodSandBox event
// with message on the pod, then checks that the pod is still Pending and
// that no container of it ever ran.
func expectSandboxRefused(t *testing.T, c kubernetes.Interface, pod *corev1.Pod, message string) {
	t.Helper()
	ctx := t.Context()
	framework.CreatePod(t, c, pod)
	want := "Warning FailedCreatePodSandBox Failed to create pod sandbox: " + message
	var events []string
	found := false
	for deadline := time.Now().Add(framework.PodTimeout); !found && time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		events = podEvents(ctx, t, c, pod.Namespace, pod.Name)
		for _, e := range events {
			found = found || e == want
		}
		// Stop at once when it runs after all, as it did before.
		if p, err := c.CoreV1().Pods(pod.Namespace).Get(ctx, pod.Name, metav1.GetOptions{}); err == nil && p.Status.Phase != corev1.PodPending {
			t.Fatalf("pod %s: %s; want Pending, its sandbox refused (events %q)", pod.Name, framework.PodStatus(p), events)
		}
	}
	if !found {
		t.Fatalf("pod %s: events %q, want %q", pod.Name, events, want)
	}
	p, err := c.CoreV1().Pods(pod.Namespace).Get(ctx, pod.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if p.Status.Phase != corev1.PodPending {
		t.Errorf("pod %s: phase %s, want Pending", pod.Name, p.Status.Phase)
	}
	for _, cs := range p.Status.ContainerStatuses {
		if cs.ContainerID != "" || cs.State.Waiting == nil || cs.State.Waiting.Reason != "ContainerCreating" {
			t.Errorf("pod %s: %s, want container %s waiting in ContainerCreating", pod.Name, framework.PodStatus(p), cs.Name)
		}
	}
}

// TestRuntimeClass: pocketkube has one runtime handler, runc. A pod whose
// RuntimeClass names another (kata, gVisor: stronger isolation than runc
// gives) must not run with runc: its sandbox fails as containerd fails
// RunPodSandbox for a handler it has no runtime for. A RuntimeClass with
// handler runc runs; a missing one is refused by the RuntimeClass
// admission plugin. Before, runtimeClassName was ignored.
func TestRuntimeClass(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	c := shared.Client(t)
	shared.ImportBusybox(t, "busybox")
	ns := framework.NewNamespace(t, c, "runtimeclass-")
	for name, handler := range map[string]string{ns + "-kata": "kata", ns + "-runc": "runc"} {
		if _, err := c.NodeV1().RuntimeClasses().Create(ctx, &nodev1.RuntimeClass{
			ObjectMeta: metav1.ObjectMeta{Name: name}, Handler: handler,
		}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.NodeV1().RuntimeClasses().Delete(context.Background(), name, metav1.DeleteOptions{}) })
	}
	withClass := func(name, class string) *corev1.Pod {
		pod := sysctlPod(ns, name, nil, "true")
		pod.Spec.SecurityContext = nil
		pod.Spec.RuntimeClassName = &class
		return pod
	}

	t.Run("unknown handler", func(t *testing.T) {
		t.Parallel()
		expectSandboxRefused(t, c, withClass("kata", ns+"-kata"),
			`failed to get sandbox runtime: no runtime for "kata" is configured`)
	})
	t.Run("runc handler", func(t *testing.T) {
		t.Parallel()
		runToSuccess(t, c, withClass("runc", ns+"-runc"))
	})
	t.Run("missing RuntimeClass", func(t *testing.T) {
		t.Parallel()
		_, err := c.CoreV1().Pods(ns).Create(t.Context(), withClass("missing", ns+"-missing"), metav1.CreateOptions{})
		if err == nil || !strings.Contains(err.Error(), `RuntimeClass "`+ns+`-missing" not found`) {
			t.Errorf("create pod with a missing RuntimeClass: %v, want RuntimeClass admission's refusal", err)
		}
	})
}

// TestProcMount: procMount Unmasked needs hostUsers: false (the API
// server refuses it otherwise), and pocketkube has no user namespaces,
// so such a pod fails its sandbox with kubelet's message for a runtime
// without them instead of running as root in the host's user namespace
// with /proc unmasked. procMount Default keeps the masked and read-only
// /proc paths.
func TestProcMount(t *testing.T) {
	t.Parallel()
	c := shared.Client(t)
	shared.ImportBusybox(t, "busybox")
	ns := framework.NewNamespace(t, c, "procmount-")
	withProcMount := func(name string, pm corev1.ProcMountType, hostUsers *bool, cmd ...string) *corev1.Pod {
		pod := sysctlPod(ns, name, nil, cmd...)
		pod.Spec.SecurityContext = nil
		pod.Spec.HostUsers = hostUsers
		pod.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{ProcMount: &pm}
		return pod
	}

	t.Run("Default", func(t *testing.T) {
		t.Parallel()
		log := runToSuccess(t, c, withProcMount("default", corev1.DefaultProcMount, nil,
			"sh", "-c", "grep -c ' /proc/timer_list ' /proc/mounts; grep ' /proc/sys ' /proc/mounts | cut -d' ' -f4 | cut -d, -f1"))
		if log != "1\nro\n" {
			t.Errorf("log %q, want /proc/timer_list masked (1) and /proc/sys ro", log)
		}
	})
	t.Run("Unmasked with host users", func(t *testing.T) {
		t.Parallel()
		_, err := c.CoreV1().Pods(ns).Create(t.Context(), withProcMount("unmasked-host", corev1.UnmaskedProcMount, nil, "true"), metav1.CreateOptions{})
		if err == nil || !strings.Contains(err.Error(), "`hostUsers` must be false to use `Unmasked`") {
			t.Errorf("create pod: %v, want the API server's refusal", err)
		}
	})
	t.Run("Unmasked without host users", func(t *testing.T) {
		t.Parallel()
		expectSandboxRefused(t, c, withProcMount("unmasked", corev1.UnmaskedProcMount, new(false), "true"),
			"can't set `spec.hostUsers: false`, runtime does not support user namespaces")
	})
}

// TestShareProcessNamespace ports the node e2e specs of
// test/e2e_node/security_context_test.go ("when pod PID namespace is
// configurable"): without shareProcessNamespace each container's process
// is PID 1 of a namespace of its own; with it, both containers see the
// same processes, and PID 1 is the pod's pause process, as with kubelet
// and containerd. Before, the field was ignored.
func TestShareProcessNamespace(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	c := shared.Client(t)
	shared.ImportBusybox(t, "busybox")
	ns := framework.NewNamespace(t, c, "pidns-")
	pod := func(name string, share bool) *corev1.Pod {
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec: corev1.PodSpec{
				TerminationGracePeriodSeconds: new(int64),
				ShareProcessNamespace:         &share,
				Containers: []corev1.Container{
					{Name: "test-container-1", Image: "busybox", Command: []string{"/bin/top"}},
					{Name: "test-container-2", Image: "busybox", Command: []string{"/bin/sleep"}, Args: []string{"10000"}},
				},
			},
		}
	}
	framework.RunPods(t, c, pod("isolated-pid-ns-test-pod", false), pod("shared-pid-ns-test-pod", true))
	exec := func(pod, container string, args ...string) string {
		t.Helper()
		out, err := shared.Kubectl(ctx, framework.Newest(), append([]string{"-n", ns, "exec", pod, "-c", container, "--"}, args...)...)
		if err != nil {
			t.Fatalf("exec %v in %s/%s: %v", args, pod, container, err)
		}
		return strings.TrimSpace(out)
	}

	t.Run("containers in pods using isolated PID namespaces should all receive PID 1", func(t *testing.T) {
		pid1 := exec("isolated-pid-ns-test-pod", "test-container-1", "/bin/pidof", "top")
		pid2 := exec("isolated-pid-ns-test-pod", "test-container-2", "/bin/pidof", "sleep")
		if pid1 != "1" || pid2 != "1" {
			t.Errorf("PIDs of different containers are not all 1: test-container-1=%v, test-container-2=%v", pid1, pid2)
		}
	})
	t.Run("processes in containers sharing a pod namespace should be able to see each other", func(t *testing.T) {
		pid1 := exec("shared-pid-ns-test-pod", "test-container-1", "/bin/pidof", "top")
		pid2 := exec("shared-pid-ns-test-pod", "test-container-2", "/bin/pidof", "top")
		if pid1 != pid2 || pid1 == "" || pid1 == "1" {
			t.Errorf("PIDs are not the same in different containers: test-container-1=%v, test-container-2=%v", pid1, pid2)
		}
		if got := exec("shared-pid-ns-test-pod", "test-container-2", "sh", "-c", `tr '\0' ' ' < /proc/1/cmdline`); got != "/pause pause" {
			t.Errorf("PID 1 is %q, want the pause process", got)
		}
	})
}
