//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/pocketkube/pocketkube/test/framework"
)

// TestEnsureSecretPulledImages is kubelet's KubeletEnsureSecretPulledImages
// under its default policy (NeverVerifyPreloadedImages) on the shared
// cluster: an image the node pulled with a pod's pull secret is not
// usable by a pod without the credentials, even with imagePullPolicy
// IfNotPresent — that pod pulls it again with its own (none) and the
// private registry refuses it, ErrImagePull; a pod with the secret reuses
// the image without asking the registry; an image loaded with `pocketkube
// images import` is anyone's. (The other policies, AlwaysVerify on
// preloaded images included, are internal/node/pullcreds' unit tests.)
func TestEnsureSecretPulledImages(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	c := shared.Client(t)
	host, reg := startPrivateRegistry(t, "ensure-user", "ensure-pass")
	image := host + "/e2e/busybox:v1"
	manifest := func(name, image, secret string) string {
		pullSecrets := ""
		if secret != "" {
			pullSecrets = "  imagePullSecrets: [{name: " + secret + "}]\n"
		}
		return podYAML(name, 1, fmt.Sprintf(`  containers:
  - name: main
    image: %s
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "echo pushed=$PUSHED; exec sleep 3600"]
%s`, image, pullSecrets))
	}
	events := func(name string) string {
		out, _ := shared.Kubectl(ctx, framework.Newest(), "get", "events", "--field-selector", "involvedObject.name="+name, "-o", "jsonpath={range .items[*]}{.reason}|{.message}{\"\\n\"}{end}")
		return out
	}
	// waitEvent waits for the event kubelet records (asynchronously).
	waitEvent := func(t *testing.T, name, want string) string {
		t.Helper()
		var out string
		err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 15*time.Second, true, func(context.Context) (bool, error) {
			out = events(name)
			return strings.Contains(out, want), nil
		})
		if err != nil {
			t.Errorf("events of %s: %q, want %q", name, out, want)
		}
		return out
	}
	const secret = "ensure-regcred"
	if _, err := shared.Kubectl(ctx, framework.Newest(), "create", "secret", "docker-registry", secret,
		"--docker-server="+host, "--docker-username=ensure-user", "--docker-password=ensure-pass"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { shared.Kubectl(context.Background(), framework.Newest(), "delete", "secret", secret) })
	uid, err := shared.Kubectl(ctx, framework.Newest(), "get", "secret", secret, "-o", "jsonpath={.metadata.uid}")
	if err != nil || uid == "" {
		t.Fatalf("secret uid %q, %v", uid, err)
	}

	ok := t.Run("pod-with-secret-pulls", func(t *testing.T) {
		before := reg.Authorized.Load()
		shared.ApplyPod(t, "ensure-a", manifest("ensure-a", image, secret))
		framework.WaitPod(t, c, "default", "ensure-a", "Running", framework.Running)
		if reg.Authorized.Load() == before {
			t.Error("pod A runs, but the registry served it nothing")
		}
		waitEvent(t, "ensure-a", fmt.Sprintf("Pulling|Pulling image %q", image))
		// kubelet's record: DIR/node/image_manager/pulled/sha256-…, the
		// repository with the secret's coordinates and a hash of its
		// credentials, never the credentials.
		dir := filepath.Join(shared.DataDir, "node", "image_manager", "pulled")
		files, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		var found bool
		for _, f := range files {
			b, err := os.ReadFile(filepath.Join(dir, f.Name()))
			if err != nil {
				t.Fatal(err)
			}
			s := string(b)
			if strings.Contains(s, host+"/e2e/busybox") && strings.Contains(s, uid) && strings.Contains(s, `"name":"`+secret+`"`) {
				found = true
				if strings.Contains(s, "ensure-pass") || !regexp.MustCompile(`"credentialHash":"[0-9a-f]{64}"`).MatchString(s) {
					t.Errorf("pulled record %s: %s; want the credentials' hash, not them", f.Name(), s)
				}
				t.Logf("pulled record %s: %s", f.Name(), s)
			}
		}
		if !found {
			t.Errorf("no pulled record in %s naming %s with secret %s (%s)", dir, image, secret, uid)
		}
	})
	if !ok {
		t.FailNow()
	}

	t.Run("pod-without-secret-refused", func(t *testing.T) {
		refusedBefore := reg.Refused.Load()
		shared.ApplyPod(t, "ensure-b", manifest("ensure-b", image, ""))
		var w *corev1.ContainerStateWaiting
		pod, err := framework.WaitPodIn(ctx, c, "default", "ensure-b", framework.PodTimeout, func(p *corev1.Pod) (bool, error) {
			if framework.Running(p) {
				return false, fmt.Errorf("pod B runs the image pulled with pod A's secret")
			}
			if len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].State.Waiting != nil {
				w = p.Status.ContainerStatuses[0].State.Waiting
				return w.Reason == "ErrImagePull" || w.Reason == "ImagePullBackOff", nil
			}
			return false, nil
		})
		if err != nil {
			t.Fatalf("pod B: %v", err)
		}
		refused := regexp.MustCompile(`(?i)401|unauthorized|authorization`)
		cause := fmt.Sprintf("failed to pull and unpack image %q: failed to resolve reference %q: ", image, image)
		if !strings.Contains(w.Message, cause) || !refused.MatchString(w.Message) {
			t.Errorf("pod B waiting %s %q; want the registry's refusal %q…401", w.Reason, w.Message, cause)
		}
		if reg.Refused.Load() == refusedBefore {
			t.Error("the registry refused nothing: pod B's pull never asked it")
		}
		waitEvent(t, "ensure-b", "Failed|Error: ErrImagePull")
		if out := events("ensure-b"); strings.Contains(out, "already present on machine") {
			t.Errorf("pod B was told the image is present: %s", out)
		}
		if pod.Status.Phase != corev1.PodPending {
			t.Errorf("pod B phase %s, want Pending", pod.Status.Phase)
		}
	})

	t.Run("pod-with-same-secret-reuses", func(t *testing.T) {
		authorizedBefore, refusedBefore := reg.Authorized.Load(), reg.Refused.Load()
		shared.ApplyPod(t, "ensure-c", manifest("ensure-c", image, secret))
		framework.WaitPod(t, c, "default", "ensure-c", "Running", framework.Running)
		out := waitEvent(t, "ensure-c", fmt.Sprintf("Pulled|Container image %q already present on machine and can be accessed by the pod", image))
		if strings.Contains(out, "Pulling|") {
			t.Errorf("pod C pulled again: %s", out)
		}
		if a, r := reg.Authorized.Load()-authorizedBefore, reg.Refused.Load()-refusedBefore; a != 0 || r != 0 {
			t.Errorf("pod C's start asked the registry (%d authorized, %d refused requests)", a, r)
		}
		logs, _ := framework.PodLogs(ctx, c, "default", "ensure-c", "main")
		if logs != "pushed=yes\n" {
			t.Errorf("pod C logs %q: not the pushed image", logs)
		}
	})

	// An image volume of the image goes through the same check.
	mount := []corev1.VolumeMount{{Name: "img", MountPath: "/img"}}
	t.Run("image-volume-without-secret-refused", func(t *testing.T) {
		refusedBefore := reg.Refused.Load()
		framework.CreatePod(t, c, imageVolumePod("default", "ensure-vol-b", []corev1.Volume{imageVolume("img", image, corev1.PullIfNotPresent)}, mount))
		p := waitContainerWaiting(t, c, "default", "ensure-vol-b", "ImagePullBackOff")
		if msg := p.Status.ContainerStatuses[0].State.Waiting.Message; !regexp.MustCompile(`(?i)401|unauthorized`).MatchString(msg) {
			t.Errorf("image volume without the secret: waiting message %q, want the registry's refusal", msg)
		}
		if reg.Refused.Load() == refusedBefore {
			t.Error("the registry refused nothing: the image volume was never pulled")
		}
	})
	t.Run("image-volume-with-secret", func(t *testing.T) {
		pod := imageVolumePod("default", "ensure-vol-c", []corev1.Volume{imageVolume("img", image, corev1.PullIfNotPresent)}, mount)
		pod.Spec.ImagePullSecrets = []corev1.LocalObjectReference{{Name: secret}}
		framework.CreatePod(t, c, pod)
		framework.WaitPod(t, c, "default", "ensure-vol-c", "Running", framework.Running)
		if out, err := shared.PodExec(ctx, "default", "ensure-vol-c", "ls", "/img/bin/busybox"); err != nil || out != "/img/bin/busybox\n" {
			t.Errorf("ls /img/bin/busybox: %q (%v)", out, err)
		}
	})

	t.Run("preloaded-image-usable-without-secret", func(t *testing.T) {
		// Named after the private registry, so that any pull is refused:
		// the pod runs only if the node lets it use the loaded image.
		preloaded := host + "/e2e/preloaded:v1"
		tarPath := filepath.Join(t.TempDir(), "busybox.tar")
		if err := framework.BusyboxTar(tarPath, nil); err != nil {
			t.Fatal(err)
		}
		if err := shared.ImportImage(ctx, preloaded, tarPath); err != nil {
			t.Fatal(err)
		}
		refusedBefore := reg.Refused.Load()
		shared.ApplyPod(t, "ensure-d", manifest("ensure-d", preloaded, ""))
		framework.WaitPod(t, c, "default", "ensure-d", "Running", framework.Running)
		out := waitEvent(t, "ensure-d", fmt.Sprintf("Pulled|Container image %q already present on machine and can be accessed by the pod", preloaded))
		if strings.Contains(out, "Pulling|") || reg.Refused.Load() != refusedBefore {
			t.Errorf("the preloaded image was pulled: events %s", out)
		}
	})
}
