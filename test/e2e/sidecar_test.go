//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/pocketkube/pocketkube/test/framework"
)

// Native sidecars (init containers with restartPolicy: Always), ported from
// upstream's test/e2e/common/node/lifecycle_hook.go (whose hook pods use a
// sidecar as the HTTP target), init_container.go and
// test/e2e_node/container_lifecycle_test.go.

// loopUntilTerm is a busybox command that runs until SIGTERM, then runs
// onTerm and exits 0: sh runs a trap between commands, so it waits on a
// background sleep rather than in one.
func loopUntilTerm(onTerm string) []string {
	return []string{"sh", "-c", "trap '" + onTerm + "; exit 0' TERM; while true; do sleep 1 & wait $!; done"}
}

func always() *corev1.ContainerRestartPolicy {
	p := corev1.ContainerRestartPolicyAlways
	return &p
}

func sidecarPod(ns, name string, restart corev1.RestartPolicy, inits []corev1.Container, containers ...corev1.Container) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: corev1.PodSpec{
			RestartPolicy:                 restart,
			TerminationGracePeriodSeconds: new(int64(10)),
			InitContainers:                inits,
			Containers:                    containers,
		},
	}
}

func hostDirVolume(dir string) ([]corev1.Volume, []corev1.VolumeMount) {
	return []corev1.Volume{{Name: "host", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: dir}}}},
		[]corev1.VolumeMount{{Name: "host", MountPath: "/host"}}
}

// TestSidecarLifecycleHookTarget is upstream's "Restartable Init Container
// Lifecycle Hook" and "Container Lifecycle Hook" pattern: the pod's app
// container has httpGet postStart and preStop hooks to its own pod IP,
// served by a sidecar (busybox httpd with a CGI script that records each
// request) that has a startup probe. The pod must get Ready, the
// postStart hook must reach the sidecar, and on deletion the preStop hook
// too, since the sidecar stops only after the app container.
func TestSidecarLifecycleHookTarget(t *testing.T) {
	t.Parallel()
	c, ns := busyboxNamespace(t, "sidecar-hooks-")
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "www", "cgi-bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	script := "#!/bin/sh\necho \"$QUERY_STRING\" >> /host/hooks\nprintf 'Content-Type: text/plain\\r\\n\\r\\nok\\n'\n"
	if err := os.WriteFile(filepath.Join(dir, "www", "cgi-bin", "echo"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	vols, mounts := hostDirVolume(dir)
	hook := func(msg string) *corev1.LifecycleHandler {
		return &corev1.LifecycleHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/cgi-bin/echo?msg=" + msg, Port: intstr.FromInt32(8080)}}
	}
	pod := sidecarPod(ns, "pod-with-hooks", corev1.RestartPolicyAlways,
		[]corev1.Container{{
			Name: "container-redirect", Image: "busybox", RestartPolicy: always(),
			Command:      []string{"httpd", "-f", "-p", "8080", "-h", "/host/www"},
			VolumeMounts: mounts,
			StartupProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
				Path: "/cgi-bin/echo?msg=startup", Port: intstr.FromInt32(8080)}}, PeriodSeconds: 1},
		}},
		corev1.Container{
			Name: "app", Image: "busybox", Command: loopUntilTerm("true"),
			Lifecycle: &corev1.Lifecycle{PostStart: hook("poststart"), PreStop: hook("prestop")},
		})
	pod.Spec.Volumes = vols
	framework.RunPods(t, c, pod)
	got := framework.WaitPod(t, c, ns, pod.Name, "with its sidecar started and ready", func(p *corev1.Pod) bool {
		if len(p.Status.InitContainerStatuses) != 1 {
			return false
		}
		s := p.Status.InitContainerStatuses[0]
		return s.State.Running != nil && s.Started != nil && *s.Started && s.Ready
	})
	if got.Status.Phase != corev1.PodRunning {
		t.Errorf("phase %s", got.Status.Phase)
	}
	hooks := func() string {
		b, _ := os.ReadFile(filepath.Join(dir, "hooks"))
		return string(b)
	}
	if h := hooks(); !strings.Contains(h, "msg=startup\n") || !strings.Contains(h, "msg=poststart\n") {
		t.Errorf("requests to the sidecar: %q, want the startup probe's and the postStart hook's", h)
	}
	if err := c.CoreV1().Pods(ns).Delete(t.Context(), pod.Name, metav1.DeleteOptions{GracePeriodSeconds: new(int64(15))}); err != nil {
		t.Fatal(err)
	}
	framework.WaitGone(t, c, ns, pod.Name)
	if h := hooks(); !strings.Contains(h, "msg=prestop\n") {
		t.Errorf("requests to the sidecar: %q, want the preStop hook's", h)
	}
}

// TestSidecarPodCompletes is container_lifecycle_test.go's "should complete
// a Pod with restartPolicy Never" for sidecars: once the app container
// finished, the sidecar is stopped, and the pod's phase comes from the app
// container alone.
func TestSidecarPodCompletes(t *testing.T) {
	t.Parallel()
	c, ns := busyboxNamespace(t, "sidecar-done-")
	for _, tc := range []struct {
		name  string
		exit  int32
		phase corev1.PodPhase
	}{
		{"succeeds", 0, corev1.PodSucceeded},
		{"fails", 3, corev1.PodFailed},
	} {
		pod := sidecarPod(ns, "sidecar-"+tc.name, corev1.RestartPolicyNever,
			[]corev1.Container{{Name: "sidecar", Image: "busybox", RestartPolicy: always(), Command: loopUntilTerm("true")}},
			corev1.Container{Name: "app", Image: "busybox", Command: []string{"sh", "-c", fmt.Sprintf("sleep 1; exit %d", tc.exit)}})
		framework.CreatePod(t, c, pod)
		got := framework.WaitPod(t, c, ns, pod.Name, string(tc.phase), framework.PhaseIs(tc.phase))
		if s := got.Status.InitContainerStatuses[0]; s.State.Terminated == nil || s.Ready {
			t.Errorf("%s: sidecar %s", tc.name, framework.PodStatus(got))
		}
		if s := got.Status.ContainerStatuses[0]; s.State.Terminated == nil || s.State.Terminated.ExitCode != tc.exit {
			t.Errorf("%s: app %s", tc.name, framework.PodStatus(got))
		}
	}
}

// TestSidecarRestartsUnderNever is container_lifecycle_test.go's "should
// restart a restartable init container that exits, whatever the pod's
// restartPolicy": the sidecar exits, the app container keeps running, the
// pod stays Running and the sidecar comes back.
func TestSidecarRestartsUnderNever(t *testing.T) {
	t.Parallel()
	c, ns := busyboxNamespace(t, "sidecar-restart-")
	pod := sidecarPod(ns, "sidecar-restarts", corev1.RestartPolicyNever,
		[]corev1.Container{{Name: "sidecar", Image: "busybox", RestartPolicy: always(), Command: []string{"sh", "-c", "sleep 1; exit 1"}}},
		corev1.Container{Name: "app", Image: "busybox", Command: loopUntilTerm("true")})
	framework.CreatePod(t, c, pod)
	got := framework.WaitPod(t, c, ns, pod.Name, "with its sidecar restarted", func(p *corev1.Pod) bool {
		return len(p.Status.InitContainerStatuses) == 1 && p.Status.InitContainerStatuses[0].RestartCount >= 1
	})
	if got.Status.Phase != corev1.PodRunning || got.Status.ContainerStatuses[0].State.Running == nil {
		t.Errorf("pod %s, want Running with its app container running", framework.PodStatus(got))
	}
}

// TestSidecarTerminationOrder is container_lifecycle_test.go's "should
// terminate sidecars in reverse order after the main containers": each
// container records its SIGTERM in a host file; the app container and the
// second sidecar take a second to exit, which would let the first sidecar
// write first if all were stopped at once.
func TestSidecarTerminationOrder(t *testing.T) {
	t.Parallel()
	c, ns := busyboxNamespace(t, "sidecar-order-")
	dir := t.TempDir()
	vols, mounts := hostDirVolume(dir)
	record := func(name, wait string) []string {
		return loopUntilTerm(wait + "echo " + name + " >> /host/order")
	}
	pod := sidecarPod(ns, "sidecar-order", corev1.RestartPolicyAlways,
		[]corev1.Container{
			{Name: "s1", Image: "busybox", RestartPolicy: always(), Command: record("s1", ""), VolumeMounts: mounts},
			{Name: "s2", Image: "busybox", RestartPolicy: always(), Command: record("s2", "sleep 1; "), VolumeMounts: mounts},
		},
		corev1.Container{Name: "app", Image: "busybox", Command: record("app", "sleep 1; "), VolumeMounts: mounts})
	pod.Spec.Volumes = vols
	framework.RunPods(t, c, pod)
	if err := c.CoreV1().Pods(ns).Delete(t.Context(), pod.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	framework.WaitGone(t, c, ns, pod.Name)
	b, err := os.ReadFile(filepath.Join(dir, "order"))
	if got := string(b); err != nil || got != "app\ns2\ns1\n" {
		t.Errorf("order of SIGTERMs %q (%v), want app, s2, s1", got, err)
	}
}

// TestInitContainerStatuses is init_container.go's expectations on the
// statuses kubelet writes: an init container that succeeded is ready,
// and the init and app containers that wait for init to finish wait as
// PodInitializing.
func TestInitContainerStatuses(t *testing.T) {
	t.Parallel()
	c, ns := busyboxNamespace(t, "init-status-")
	dir := t.TempDir()
	vols, mounts := hostDirVolume(dir)
	// init2 runs until the test lets it finish.
	pod := sidecarPod(ns, "init-statuses", corev1.RestartPolicyNever,
		[]corev1.Container{
			{Name: "init1", Image: "busybox", Command: []string{"true"}},
			{Name: "init2", Image: "busybox", Command: []string{"sh", "-c", "until test -f /host/go; do sleep 1; done"}, VolumeMounts: mounts},
			{Name: "init3", Image: "busybox", Command: []string{"true"}},
		},
		corev1.Container{Name: "app", Image: "busybox", Command: []string{"true"}})
	pod.Spec.Volumes = vols
	framework.CreatePod(t, c, pod)
	got := framework.WaitPod(t, c, ns, pod.Name, "running init2", func(p *corev1.Pod) bool {
		return len(p.Status.InitContainerStatuses) == 3 && p.Status.InitContainerStatuses[1].State.Running != nil
	})
	checkStatuses(t, got, map[string]string{
		"init1": "terminated ready", "init2": "running", "init3": "waiting PodInitializing", "app": "waiting PodInitializing",
	})
	if err := os.WriteFile(filepath.Join(dir, "go"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	got = framework.WaitPod(t, c, ns, pod.Name, "Succeeded", framework.PhaseIs(corev1.PodSucceeded))
	checkStatuses(t, got, map[string]string{
		"init1": "terminated ready", "init2": "terminated ready", "init3": "terminated ready", "app": "terminated",
	})
}

func checkStatuses(t *testing.T, p *corev1.Pod, want map[string]string) {
	t.Helper()
	for _, s := range append(append([]corev1.ContainerStatus{}, p.Status.InitContainerStatuses...), p.Status.ContainerStatuses...) {
		var got string
		switch {
		case s.State.Running != nil:
			got = "running"
		case s.State.Terminated != nil:
			got = "terminated"
		case s.State.Waiting != nil:
			got = "waiting " + s.State.Waiting.Reason
		}
		if s.Ready {
			got += " ready"
		}
		if got != want[s.Name] {
			t.Errorf("container %s: %q, want %q", s.Name, got, want[s.Name])
		}
	}
}

// TestTerminationMessage is runtime.go's "Container Runtime blackbox test
// on terminated container" specs: the termination message from the file
// (also written by a non-root user at a path of its own), and from the
// last log lines with FallbackToLogsOnError, which keep no newline the
// container did not write.
func TestTerminationMessage(t *testing.T) {
	t.Parallel()
	c, ns := busyboxNamespace(t, "termination-message-")
	root, nonRoot := int64(0), int64(1000)
	for _, tc := range []struct {
		name   string
		script string
		path   string
		user   *int64
		policy corev1.TerminationMessagePolicy
		phase  corev1.PodPhase
		want   string
	}{
		{"path", "/bin/echo -n DONE > /dev/termination-log", "/dev/termination-log", &root, corev1.TerminationMessageReadFile, corev1.PodSucceeded, "DONE"},
		{"non-root-custom-path", "/bin/echo -n DONE > /dev/termination-custom-log", "/dev/termination-custom-log", &nonRoot, corev1.TerminationMessageReadFile, corev1.PodSucceeded, "DONE"},
		{"fallback-logs-on-error", "/bin/echo -n DONE; /bin/false", "/dev/termination-log", nil, corev1.TerminationMessageFallbackToLogsOnError, corev1.PodFailed, "DONE"},
		{"fallback-empty-on-success", "/bin/echo -n DONE; /bin/true", "/dev/termination-log", nil, corev1.TerminationMessageFallbackToLogsOnError, corev1.PodSucceeded, ""},
		{"fallback-file-on-success", "/bin/echo -n OK > /dev/termination-log; /bin/echo DONE; /bin/true", "/dev/termination-log", nil, corev1.TerminationMessageFallbackToLogsOnError, corev1.PodSucceeded, "OK"},
	} {
		pod := sidecarPod(ns, "termination-message-"+tc.name, corev1.RestartPolicyNever, nil, corev1.Container{
			Name: "termination-message-container", Image: "busybox",
			Command: []string{"/bin/sh", "-c"}, Args: []string{tc.script},
			TerminationMessagePath: tc.path, TerminationMessagePolicy: tc.policy,
			SecurityContext: &corev1.SecurityContext{RunAsUser: tc.user},
		})
		framework.CreatePod(t, c, pod)
		got := framework.WaitPod(t, c, ns, pod.Name, string(tc.phase), framework.PhaseIs(tc.phase))
		s := got.Status.ContainerStatuses[0].State.Terminated
		if s == nil || s.Message != tc.want {
			t.Errorf("%s: termination message of %s, want %q", tc.name, framework.PodStatus(got), tc.want)
			if s != nil {
				t.Logf("%s: message %q", tc.name, s.Message)
			}
		}
	}
}

// TestActiveDeadlineUpdate is pods.go's "should allow activeDeadlineSeconds
// to be updated": set on a running pod, the deadline fails it with
// kubelet's reason and message.
func TestActiveDeadlineUpdate(t *testing.T) {
	t.Parallel()
	c, ns := busyboxNamespace(t, "active-deadline-")
	pod := sidecarPod(ns, "pod-update-activedeadlineseconds", corev1.RestartPolicyAlways, nil,
		corev1.Container{Name: "app", Image: "busybox", Command: loopUntilTerm("true")})
	framework.RunPods(t, c, pod)
	if err := framework.UpdatePod(t.Context(), c, ns, pod.Name, func(p *corev1.Pod) {
		p.Spec.ActiveDeadlineSeconds = new(int64(5))
	}); err != nil {
		t.Fatal(err)
	}
	got := framework.WaitPod(t, c, ns, pod.Name, "Failed", framework.PhaseIs(corev1.PodFailed))
	if got.Status.Reason != "DeadlineExceeded" || got.Status.Message != "Pod was active on the node longer than the specified deadline" {
		t.Errorf("reason %q, message %q", got.Status.Reason, got.Status.Message)
	}
}

// TestPodGeneration is pods.go's "Pod Generation" spec: metadata.generation
// starts at 1 and grows with each spec update, not with a label change,
// and the node writes the generation it saw into status.observedGeneration
// and into the conditions it owns.
func TestPodGeneration(t *testing.T) {
	t.Parallel()
	c, ns := busyboxNamespace(t, "pod-generation-")
	pod := sidecarPod(ns, "pod-generation", corev1.RestartPolicyAlways, nil,
		corev1.Container{Name: "app", Image: "busybox", Command: loopUntilTerm("true")})
	created := framework.RunPods(t, c, pod)[pod.Name]
	if created.Generation != 1 {
		t.Errorf("generation %d, want 1", created.Generation)
	}
	observed := func(gen int64) {
		t.Helper()
		_, err := framework.WaitPodIn(t.Context(), c, ns, pod.Name, 20*time.Second, func(p *corev1.Pod) (bool, error) {
			if p.Status.ObservedGeneration != gen {
				return false, nil
			}
			for _, typ := range []corev1.PodConditionType{corev1.PodReadyToStartContainers, corev1.PodInitialized, corev1.PodReady, corev1.ContainersReady, corev1.PodScheduled} {
				found := false
				for _, cond := range p.Status.Conditions {
					found = found || (cond.Type == typ && cond.ObservedGeneration == gen)
				}
				if !found {
					return false, nil
				}
			}
			return true, nil
		})
		if err != nil {
			t.Fatalf("observedGeneration of the status and its conditions never %d: %v", gen, err)
		}
	}
	observed(1)
	for _, step := range []struct {
		name   string
		change func(*corev1.Pod)
		want   int64
	}{
		{"label", func(p *corev1.Pod) { p.Labels = map[string]string{"a": "b"} }, 1},
		{"activeDeadlineSeconds", func(p *corev1.Pod) { p.Spec.ActiveDeadlineSeconds = new(int64(5000)) }, 2},
		{"toleration", func(p *corev1.Pod) {
			p.Spec.Tolerations = append(p.Spec.Tolerations, corev1.Toleration{Key: "k", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule})
		}, 3},
	} {
		if err := framework.UpdatePod(t.Context(), c, ns, pod.Name, step.change); err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		got, err := c.CoreV1().Pods(ns).Get(t.Context(), pod.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got.Generation != step.want {
			t.Errorf("%s: generation %d, want %d", step.name, got.Generation, step.want)
		}
		observed(step.want)
	}
}
