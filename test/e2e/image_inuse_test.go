//go:build e2e

package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/pocketkube/pocketkube/test/framework"
)

// TestImageReimportKeepsRunningContainers is issue 13: importing a tag
// again deleted the root filesystem under the containers that ran the old
// image. The old one must stay until its last container goes, new pods get
// the new one, and `images rm` of an image in use is refused.
func TestImageReimportKeepsRunningContainers(t *testing.T) {
	// Not busybox: other tests run that tag on the shared cluster.
	const name = "busybox-reimport-test"
	ctx := t.Context()
	c := shared.Client(t)
	ns := framework.NewNamespace(t, c, "image-inuse-")
	dir := t.TempDir()
	imageWith := func(marker string) string {
		t.Helper()
		content := filepath.Join(dir, marker)
		if err := os.WriteFile(content, []byte(marker+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		tarPath := filepath.Join(dir, marker+".tar")
		if err := framework.BusyboxTar(tarPath, map[string]string{"/" + marker: content}); err != nil {
			t.Fatal(err)
		}
		return tarPath
	}
	images := func(args ...string) (string, error) {
		return framework.Run(ctx, nil, Binary, append([]string{"images", "--data-dir", shared.DataDir}, args...)...)
	}
	t.Cleanup(func() {
		// Leave the shared cluster without the tag once no pod uses it.
		ctx := context.Background()
		for _, pod := range []string{"old", "new"} {
			c.CoreV1().Pods(ns).Delete(ctx, pod, metav1.DeleteOptions{GracePeriodSeconds: new(int64)})
		}
		wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, framework.PodTimeout, true, func(ctx context.Context) (bool, error) {
			_, err := framework.Run(ctx, nil, Binary, "images", "--data-dir", shared.DataDir, "rm", name)
			return err == nil || strings.Contains(err.Error(), "not found"), nil
		})
	})
	pod := func(podName string) *corev1.Pod {
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: podName, Namespace: ns},
			Spec: corev1.PodSpec{
				TerminationGracePeriodSeconds: new(int64),
				Containers: []corev1.Container{{
					Name: "main", Image: name, ImagePullPolicy: corev1.PullNever, Command: []string{"sleep", "3600"},
				}},
			},
		}
	}

	if err := shared.ImportImage(ctx, name, imageWith("old-marker")); err != nil {
		t.Fatal(err)
	}
	oldRootfs := rootfsOf(t, images, name)
	framework.RunPods(t, c, pod("old"))

	if err := shared.ImportImage(ctx, name, imageWith("new-marker")); err != nil {
		t.Fatal(err)
	}
	if newRootfs := rootfsOf(t, images, name); newRootfs == oldRootfs {
		t.Fatalf("re-import kept image %s", filepath.Base(oldRootfs))
	}
	// The running container keeps its files.
	for _, cmd := range [][]string{{"ls", "/bin/sh"}, {"cat", "/old-marker"}} {
		if out, err := shared.PodExec(ctx, ns, "old", cmd...); err != nil {
			t.Errorf("after re-import, %v in the old pod: %v", cmd, err)
		} else if cmd[0] == "cat" && out != "old-marker\n" {
			t.Errorf("after re-import, /old-marker of the old pod holds %q", out)
		}
	}
	if _, err := os.Stat(oldRootfs); err != nil {
		t.Errorf("root filesystem of the image the old pod runs: %v", err)
	}

	// A new pod gets the new image.
	framework.RunPods(t, c, pod("new"))
	if out, err := shared.PodExec(ctx, ns, "new", "cat", "/new-marker"); err != nil || out != "new-marker\n" {
		t.Errorf("new pod: cat /new-marker = %q, %v", out, err)
	}
	if _, err := shared.PodExec(ctx, ns, "new", "ls", "/old-marker"); err == nil {
		t.Errorf("new pod has /old-marker of the replaced image")
	}

	// `images rm` of the image the new pod runs is refused and removes nothing.
	out, err := images("rm", name)
	if err == nil {
		t.Fatalf("images rm %s of an image in use succeeded: %s", name, out)
	}
	if !strings.Contains(err.Error(), "image is in use by a container") {
		t.Errorf("images rm %s of an image in use: %v; want it to say \"image is in use by a container\"", name, err)
	}
	newRootfs := rootfsOf(t, images, name)
	if out, err := shared.PodExec(ctx, ns, "new", "cat", "/new-marker"); err != nil || out != "new-marker\n" {
		t.Errorf("after refused images rm, new pod: cat /new-marker = %q, %v", out, err)
	}

	// Once the old pod is gone, the replaced image's data goes too.
	deletePodAndWait(t, c, ns, "old")
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		_, err := os.Stat(oldRootfs)
		return os.IsNotExist(err), nil
	})
	if err != nil {
		t.Errorf("root filesystem %s of the replaced image still there after its last pod went", oldRootfs)
	}
	if _, err := os.Stat(newRootfs); err != nil {
		t.Errorf("root filesystem of the image the new pod runs: %v", err)
	}
}

// rootfsOf returns the directory of the unpacked root filesystem of image
// name, found by its ID in `images list`.
func rootfsOf(t *testing.T, images func(...string) (string, error), name string) string {
	t.Helper()
	out, err := images("list")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && f[0] == "docker.io/library/"+name && f[1] == "latest" {
			matches, _ := filepath.Glob(filepath.Join(shared.DataDir, "images", "rootfs", f[2]+"*"))
			if len(matches) != 1 {
				t.Fatalf("root filesystems of image %s (ID %s): %v", name, f[2], matches)
			}
			return matches[0]
		}
	}
	t.Fatalf("no image %s in images list:\n%s", name, out)
	return ""
}

// deletePodAndWait deletes pod ns/name at once and waits until it is gone.
func deletePodAndWait(t *testing.T, c kubernetes.Interface, ns, name string) {
	t.Helper()
	ctx := t.Context()
	if err := c.CoreV1().Pods(ns).Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil {
		t.Fatal(err)
	}
	framework.WaitGone(t, c, ns, name)
}
