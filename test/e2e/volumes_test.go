//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/pocketkube/pocketkube/test/framework"
)

func TestInitContainersAndVolumes(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	c := shared.Client(t)
	_, err := c.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "vol-cm"}, Data: map[string]string{"greeting": "hello", "other": "x"},
	}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	_, err = c.CoreV1().Secrets("default").Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "vol-secret"}, StringData: map[string]string{"password": "s3cret"},
	}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.CoreV1().ConfigMaps("default").Delete(context.Background(), "vol-cm", metav1.DeleteOptions{})
		c.CoreV1().Secrets("default").Delete(context.Background(), "vol-secret", metav1.DeleteOptions{})
	})
	hostDir := t.TempDir()
	os.WriteFile(filepath.Join(hostDir, "from-host"), []byte("host file\n"), 0o644)
	manifest := podYAML("volumes", 1, fmt.Sprintf(`  initContainers:
  - name: first
    image: busybox
    command: ["sh", "-c", "echo first > /work/order"]
    volumeMounts: [{name: work, mountPath: /work}]
  - name: second
    image: busybox
    command: ["sh", "-c", "echo second >> /work/order"]
    volumeMounts: [{name: work, mountPath: /work}]
  containers:
  - name: main
    image: busybox
    command: ["sleep", "3600"]
    volumeMounts:
    - {name: work, mountPath: /work}
    - {name: mem, mountPath: /mem}
    - {name: cm, mountPath: /etc/cm}
    - {name: secret, mountPath: /etc/secret}
    - {name: host, mountPath: /host, readOnly: true}
  volumes:
  - name: work
    emptyDir: {}
  - name: mem
    emptyDir: {medium: Memory, sizeLimit: 16Mi}
  - name: cm
    configMap:
      name: vol-cm
      items: [{key: greeting, path: sub/greeting.txt, mode: 0400}]
  - name: secret
    secret: {secretName: vol-secret}
  - name: host
    hostPath: {path: %s, type: Directory}
`, hostDir))
	shared.ApplyPod(t, "volumes", manifest)
	framework.WaitPod(t, c, "default", "volumes", "Running", framework.Running)
	exec := func(cmd string) string {
		t.Helper()
		out, err := shared.Kubectl(ctx, framework.Newest(), "exec", "volumes", "--", "sh", "-c", cmd)
		if err != nil {
			t.Errorf("exec %q: %v", cmd, err)
		}
		return out
	}
	for _, tc := range []struct{ cmd, want string }{
		{"cat /work/order", "first\nsecond\n"},
		{"cat /etc/cm/sub/greeting.txt", "hello"},
		{"stat -L -c %a /etc/cm/sub/greeting.txt", "400\n"},
		{"ls /etc/cm", "sub\n"},
		{"cat /etc/secret/password", "s3cret"},
		{"cat /host/from-host", "host file\n"},
		{"touch /host/x 2>/dev/null && echo writable || echo read-only", "read-only\n"},
		{"touch /etc/cm/x 2>/dev/null && echo writable || echo read-only", "read-only\n"},
		{"grep ' /mem ' /proc/mounts | cut -d' ' -f3", "tmpfs\n"},
		{"echo hi > /work/new && cat /work/new", "hi\n"},
	} {
		if got := exec(tc.cmd); got != tc.want {
			t.Errorf("%s = %q, want %q", tc.cmd, got, tc.want)
		}
	}
	// A ConfigMap change reaches the file without a restart.
	cm, _ := c.CoreV1().ConfigMaps("default").Get(ctx, "vol-cm", metav1.GetOptions{})
	cm.Data["greeting"] = "changed"
	if _, err := c.CoreV1().ConfigMaps("default").Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err = shared.PollKubectl(ctx, framework.Newest(), 90*time.Second, func(out string, _ error) bool { return out == "changed" },
		"exec", "volumes", "--", "cat", "/etc/cm/sub/greeting.txt")
	if err != nil {
		t.Errorf("ConfigMap update never reached the volume: %v", err)
	}
}

// Volumes whose ConfigMap or Secret is missing, as kubelet handles them:
// the pod stays ContainerCreating while the mount fails, with a Warning
// FailedMount event in the words of kubelet's operation generator
// (`MountVolume.SetUp failed for volume "cfg" : configmap "x" not found`,
// pkg/volume/util/operationexecutor), and runs once the object is there;
// an optional volume runs at once, empty.

// mountedPod is a sleeper with volume "cfg" at /etc/cfg from src.
func mountedPod(ns, name string, src corev1.VolumeSource) *corev1.Pod {
	p := busyboxSleeper(ns, name)
	p.Spec.Volumes = []corev1.Volume{{Name: "cfg", VolumeSource: src}}
	p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "cfg", MountPath: "/etc/cfg"}}
	return p
}

func configMapVolume(name string, optional bool, items ...corev1.KeyToPath) corev1.VolumeSource {
	return corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
		LocalObjectReference: corev1.LocalObjectReference{Name: name}, Optional: &optional, Items: items,
	}}
}

func secretVolume(name string, optional bool, items ...corev1.KeyToPath) corev1.VolumeSource {
	return corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: name, Optional: &optional, Items: items}}
}

// putObject creates or updates the ConfigMap or Secret ns/name with data.
func putObject(t *testing.T, c kubernetes.Interface, kind, ns, name string, data map[string]string) {
	t.Helper()
	ctx := t.Context()
	meta := metav1.ObjectMeta{Name: name, Namespace: ns}
	var err error
	switch kind {
	case "configmap":
		cm := &corev1.ConfigMap{ObjectMeta: meta, Data: data}
		if _, err = c.CoreV1().ConfigMaps(ns).Create(ctx, cm, metav1.CreateOptions{}); err != nil {
			_, err = c.CoreV1().ConfigMaps(ns).Update(ctx, cm, metav1.UpdateOptions{})
		}
	case "secret":
		s := &corev1.Secret{ObjectMeta: meta, StringData: data}
		if _, err = c.CoreV1().Secrets(ns).Create(ctx, s, metav1.CreateOptions{}); err != nil {
			_, err = c.CoreV1().Secrets(ns).Update(ctx, s, metav1.UpdateOptions{})
		}
	}
	if err != nil {
		t.Fatalf("put %s %s/%s: %v", kind, ns, name, err)
	}
}

func TestMountMissingObject(t *testing.T) {
	c := shared.Client(t)
	shared.ImportBusybox(t, "busybox")
	key := []corev1.KeyToPath{{Key: "greeting", Path: "greeting"}}
	for _, tc := range []struct {
		name string
		kind string // configmap or secret
		src  corev1.VolumeSource
		// before is the object's data before the pod starts; nil: absent.
		before map[string]string
		// want is the FailedMount event's message.
		want string
	}{
		{name: "configmap absent", kind: "configmap", src: configMapVolume("settings", false),
			want: `MountVolume.SetUp failed for volume "cfg" : configmap "settings" not found`},
		{name: "secret absent", kind: "secret", src: secretVolume("settings", false),
			want: `MountVolume.SetUp failed for volume "cfg" : secret "settings" not found`},
		// pkg/volume/configmap MakePayload and pkg/volume/secret's.
		{name: "configmap key absent", kind: "configmap", src: configMapVolume("settings", false, key...),
			before: map[string]string{"other": "x"},
			want:   `MountVolume.SetUp failed for volume "cfg" : configmap references non-existent config key: greeting`},
		{name: "secret key absent", kind: "secret", src: secretVolume("settings", false, key...),
			before: map[string]string{"other": "x"},
			want:   `MountVolume.SetUp failed for volume "cfg" : references non-existent secret key: greeting`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ns := framework.NewNamespace(t, c, "mount-missing-")
			if tc.before != nil {
				putObject(t, c, tc.kind, ns, "settings", tc.before)
			}
			framework.CreatePod(t, c, mountedPod(ns, "reader", tc.src))

			ev := waitEvent(t, c, ns, "reader", "FailedMount", framework.PodTimeout, func(e *corev1.Event) bool {
				return strings.HasPrefix(e.Message, "MountVolume.SetUp failed")
			})
			if ev.Message != tc.want || ev.Type != corev1.EventTypeWarning || ev.Source.Component != "kubelet" {
				t.Errorf("event %s %s from %q: %q\nwant Warning FailedMount from \"kubelet\": %q", ev.Type, ev.Reason, ev.Source.Component, ev.Message, tc.want)
			}
			_, err := framework.WaitPodIn(t.Context(), c, ns, "reader", framework.PodTimeout, func(p *corev1.Pod) (bool, error) {
				return len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].State.Waiting != nil, nil
			})
			if err != nil {
				t.Fatal(err)
			}
			stillPending(t, c, ns, "reader", "ContainerCreating", 3*time.Second)

			// The object (or its key) arrives: the pod runs with the file.
			putObject(t, c, tc.kind, ns, "settings", map[string]string{"greeting": "hello from " + tc.kind})
			if _, err := framework.WaitPodIn(t.Context(), c, ns, "reader", framework.PodTimeout, func(p *corev1.Pod) (bool, error) {
				return framework.Running(p), nil
			}); err != nil {
				t.Fatalf("after creating the %s: %v", tc.kind, err)
			}
			out, err := shared.PodExec(t.Context(), ns, "reader", "cat", "/etc/cfg/greeting")
			if err != nil || out != "hello from "+tc.kind {
				t.Errorf("cat /etc/cfg/greeting: %q (%v), want %q", out, err, "hello from "+tc.kind)
			}
		})
	}
}

// An optional volume whose object is missing mounts a directory without
// files (the configmap and secret plugins' Optional), and the pod runs.
func TestMountOptionalMissing(t *testing.T) {
	t.Parallel()
	c, ns := busyboxNamespace(t, "mount-optional-")
	cm := mountedPod(ns, "cm", configMapVolume("absent", true))
	secret := mountedPod(ns, "secret", secretVolume("absent", true))
	framework.RunPods(t, c, cm, secret)
	for _, name := range []string{"cm", "secret"} {
		// The atomic writer's ..data link is there, as upstream's is
		// for an empty payload; ls leaves dot files out.
		out, err := shared.PodExec(t.Context(), ns, name, "sh", "-c", "test -d /etc/cfg && ls /etc/cfg && echo end")
		if err != nil || out != "end\n" {
			t.Errorf("pod %s: ls /etc/cfg: %q (%v), want an empty directory", name, out, err)
		}
	}
	// No FailedMount for them.
	for _, name := range []string{"cm", "secret"} {
		list, err := c.CoreV1().Events(ns).List(t.Context(), metav1.ListOptions{FieldSelector: "involvedObject.name=" + name + ",reason=FailedMount"})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range list.Items {
			t.Errorf("pod %s: unexpected event %s %s: %q", name, e.Type, e.Reason, e.Message)
		}
	}
}
