//go:build e2e

package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/pocketkube/pocketkube/test/framework"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// expansionPod is expansion.go's newPod.
func expansionPod(ns string, command []string, envVars []corev1.EnvVar, mounts []corev1.VolumeMount, volumes []corev1.Volume) *corev1.Pod {
	p := dapiPod(ns, uniqueName("var-expansion-"), command, envVars)
	p.Spec.Containers[0].VolumeMounts = mounts
	p.Spec.Volumes = volumes
	return p
}

func TestExpansion(t *testing.T) {
	t.Parallel()
	c := shared.Client(t)
	ns := testNamespace(t, c, "var-expansion")
	workdir := []corev1.Volume{{Name: "workdir1", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
	annotationEnv := []corev1.EnvVar{
		{Name: "POD_NAME", Value: "foo"},
		{Name: "ANNOTATION", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.annotations['mysubpath']"}}},
	}
	annotationMounts := []corev1.VolumeMount{
		{Name: "workdir1", MountPath: "/subpath_mount", SubPathExpr: "$(ANNOTATION)/$(POD_NAME)"},
		{Name: "workdir1", MountPath: "/volume_mount"},
	}

	t.Run("should allow composing env vars into new env vars", func(t *testing.T) {
		pod := expansionPod(ns, []string{"sh", "-c", "env"}, []corev1.EnvVar{
			{Name: "FOO", Value: "foo-value"},
			{Name: "BAR", Value: "bar-value"},
			{Name: "FOOBAR", Value: "$(FOO);;$(BAR)"},
		}, nil, nil)
		expectOutput(t, c, pod, "dapi-container", []string{"FOO=foo-value", "BAR=bar-value", "FOOBAR=foo-value;;bar-value"})
	})

	t.Run("should allow substituting values in a container's command", func(t *testing.T) {
		pod := expansionPod(ns, []string{"sh", "-c", "TEST_VAR=wrong echo \"$(TEST_VAR)\""}, []corev1.EnvVar{{Name: "TEST_VAR", Value: "test-value"}}, nil, nil)
		expectOutput(t, c, pod, "dapi-container", []string{"test-value"})
	})

	t.Run("should allow substituting values in a container's args", func(t *testing.T) {
		pod := expansionPod(ns, []string{"sh", "-c"}, []corev1.EnvVar{{Name: "TEST_VAR", Value: "test-value"}}, nil, nil)
		pod.Spec.Containers[0].Args = []string{"TEST_VAR=wrong echo \"$(TEST_VAR)\""}
		expectOutput(t, c, pod, "dapi-container", []string{"test-value"})
	})

	t.Run("should allow substituting values in a volume subpath", func(t *testing.T) {
		envVars := []corev1.EnvVar{{Name: "POD_NAME", Value: "foo"}}
		mounts := []corev1.VolumeMount{
			{Name: "workdir1", MountPath: "/logscontainer", SubPathExpr: "$(POD_NAME)"},
			{Name: "workdir1", MountPath: "/testcontainer"},
		}
		pod := expansionPod(ns, []string{}, envVars, mounts, workdir)
		envVars[0].Value = pod.Name
		pod.Spec.Containers[0].Command = []string{"sh", "-c", "test -d /testcontainer/" + pod.Name + ";echo $?"}
		expectOutput(t, c, pod, "dapi-container", []string{"0"})
	})

	// testPodFailSubpath: the container waits with CreateContainerConfigError
	// and the pod stays Pending. Beyond upstream, the message must be
	// kubelet's makeMounts error, so the test cannot pass for another
	// reason. Upstream's pod has no command (its busybox image's Cmd is
	// "sh"); the offline busybox has no Cmd, so each case also runs with
	// the command the upstream image would supply: kubelet prepares mounts
	// before the runtime looks at the command, so both must fail alike.
	failSubpath := func(t *testing.T, value, message string) {
		for _, command := range [][]string{nil, {"sh"}} {
			t.Run(fmt.Sprintf("command=%q", command), func(t *testing.T) {
				pod := expansionPod(ns, command, []corev1.EnvVar{{Name: "POD_NAME", Value: value}},
					[]corev1.VolumeMount{{Name: "workdir1", MountPath: "/logscontainer", SubPathExpr: "$(POD_NAME)"}}, workdir)
				framework.CreatePod(t, c, pod)
				p, err := framework.WaitPodIn(t.Context(), c, ns, pod.Name, framework.PodTimeout, waitContainerToFail("CreateContainerConfigError"))
				if err != nil {
					t.Fatalf("while waiting for the pod container to fail: %v", err)
				}
				if w := p.Status.ContainerStatuses[0].State.Waiting; w.Message != message {
					t.Errorf("waiting message %q, want kubelet's %q", w.Message, message)
				}
			})
		}
	}
	t.Run("should fail substituting values in a volume subpath with backticks", func(t *testing.T) {
		failSubpath(t, "..", "unable to provision SubPath `..`: must not contain '..'")
	})
	t.Run("should fail substituting values in a volume subpath with absolute path", func(t *testing.T) {
		failSubpath(t, "/tmp", "error SubPath `/tmp` must not be an absolute path")
	})

	t.Run("should verify that a failing subpath expansion can be modified during the lifecycle of a container", func(t *testing.T) {
		pod := expansionPod(ns, []string{"sh", "-c", "tail -f /dev/null"}, annotationEnv, annotationMounts, workdir)
		pod.Annotations = map[string]string{"notmysubpath": "mypath"}
		framework.CreatePod(t, c, pod)
		// Upstream: Consistently Pending for PodStartShortTimeout (2 min);
		// 10 s here, long enough for the agent to have tried and failed.
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			p, err := c.CoreV1().Pods(ns).Get(t.Context(), pod.Name, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if p.Status.Phase != corev1.PodPending {
				t.Fatalf("pod left Pending with the annotation missing: %s", framework.PodStatus(p))
			}
			time.Sleep(500 * time.Millisecond)
		}
		if err := framework.UpdatePod(t.Context(), c, ns, pod.Name, func(p *corev1.Pod) {
			if p.Annotations == nil {
				p.Annotations = map[string]string{}
			}
			p.Annotations["mysubpath"] = "mypath"
		}); err != nil {
			t.Fatalf("update pod %s: %v", pod.Name, err)
		}
		if _, err := framework.WaitPodIn(t.Context(), c, ns, pod.Name, framework.PodTimeout, func(p *corev1.Pod) (bool, error) { return p.Status.Phase == corev1.PodRunning, nil }); err != nil {
			t.Fatalf("while waiting for pod to be running: %v", err)
		}
		deleteGracefully(t, c, ns, pod.Name)
	})

	t.Run("should succeed in writing subpaths in container", func(t *testing.T) {
		pod := expansionPod(ns, []string{"sh", "-c", "tail -f /dev/null"}, annotationEnv, annotationMounts, workdir)
		pod.Annotations = map[string]string{"mysubpath": "mypath"}
		framework.CreatePod(t, c, pod)
		if _, err := framework.WaitPodIn(t.Context(), c, ns, pod.Name, framework.PodTimeout, func(p *corev1.Pod) (bool, error) { return p.Status.Phase == corev1.PodRunning, nil }); err != nil {
			t.Fatalf("while waiting for pod to be running: %v", err)
		}
		if _, err := shared.Kubectl(t.Context(), framework.Newest(), "exec", "-n", ns, pod.Name, "--", "/bin/sh", "-c", "touch /volume_mount/mypath/foo/test.log"); err != nil {
			t.Fatalf("expected to be able to write to subpath: %v", err)
		}
		if _, err := shared.Kubectl(t.Context(), framework.Newest(), "exec", "-n", ns, pod.Name, "--", "/bin/sh", "-c", "test -f /subpath_mount/test.log"); err != nil {
			t.Fatalf("expected to be able to verify file: %v", err)
		}
		if err := framework.UpdatePod(t.Context(), c, ns, pod.Name, func(p *corev1.Pod) { p.Annotations["mysubpath"] = "mynewpath" }); err != nil {
			t.Fatalf("update pod %s: %v", pod.Name, err)
		}
		if _, err := framework.WaitPodIn(t.Context(), c, ns, pod.Name, framework.PodTimeout, func(p *corev1.Pod) (bool, error) { return p.Status.Phase == corev1.PodRunning, nil }); err != nil {
			t.Fatalf("while waiting for annotated pod to be running: %v", err)
		}
		deleteGracefully(t, c, ns, pod.Name)
	})

	t.Run("allow almost all printable ASCII characters as environment variable names", func(t *testing.T) {
		// Upstream runs `sh -c env`; the host's busybox 1.35 ash drops
		// variables whose names are not shell identifiers before it runs
		// env (upstream's busybox 1.37 passes them on), so env runs
		// directly: the container's environment is what is under test.
		pod := expansionPod(ns, []string{"env"}, []corev1.EnvVar{
			{Name: "!\"#$%&'()", Value: "value-1"},
			{Name: "* +,-./0123456789", Value: "value-2"},
			{Name: ":;<>?@", Value: "value-3"},
			{Name: "[\\]^_`{}|~", Value: "value-4"},
		}, nil, nil)
		expectOutput(t, c, pod, "dapi-container", []string{
			"!\"#$%&'()=value-1",
			"* +,-./0123456789=value-2",
			":;<>?@=value-3",
			"[\\]^_`{}|~=value-4",
		})
	})
}

// waitContainerToFail is upstream's WaitForPodContainerToFail condition for
// container 0.
func waitContainerToFail(reason string) func(*corev1.Pod) (bool, error) {
	return func(p *corev1.Pod) (bool, error) {
		switch p.Status.Phase {
		case corev1.PodPending:
			if len(p.Status.ContainerStatuses) == 0 {
				return false, nil
			}
			w := p.Status.ContainerStatuses[0].State.Waiting
			return w != nil && w.Reason == reason, nil
		case corev1.PodFailed, corev1.PodRunning, corev1.PodSucceeded:
			return false, fmt.Errorf("pod was expected to be pending, but it is in the state: %s (%s)", p.Status.Phase, framework.PodStatus(p))
		}
		return false, nil
	}
}
