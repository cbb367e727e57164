//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pocketkube/pocketkube/test/framework"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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
