//go:build e2e

package e2e

import (
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"golang.org/x/sys/unix"

	"github.com/pocketkube/pocketkube/test/framework"
)

// keepPod runs busybox, whose image image GC must keep.
var keepPod = podYAML("gc-keep", 1, `  containers:
  - name: main
    image: busybox
    command: ["sleep", "3600"]
`)

// The image store on a small tmpfs of its own (a dedicated imagefs)
// filled past kubelet's imagefs.available<15%: the eviction manager
// first removes the images no container uses, as kubelet's image GC,
// which frees enough, so no pod is evicted; the image a running pod uses
// stays.
func TestImageGCUnderDiskPressure(t *testing.T) {
	ctx := context.Background()
	dataDir := filepath.Join(t.TempDir(), "c")
	imagesDir := filepath.Join(dataDir, "images")
	if err := os.MkdirAll(imagesDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", imagesDir, "tmpfs", 0, "size=128m,mode=0700"); err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	unmounted := false
	unmount := func() {
		if !unmounted {
			unmounted = true
			if err := unix.Unmount(imagesDir, 0); err != nil {
				t.Errorf("unmount %s: %v", imagesDir, err)
			}
		}
	}
	c, err := framework.StartCluster(framework.ClusterConfig{Binary: Binary, DataDir: dataDir, NetNS: true,
		Args: []string{"--minimum-image-ttl-duration=0s"}})
	if err != nil {
		unmount()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("cluster output:\n%s", framework.Tail(c.Current().Output(), 80))
		}
		if _, err := c.Current().Stop(15 * time.Second); err != nil {
			t.Errorf("stop: %v", err)
		}
		unmount()
		if err := c.Cleanup(); err != nil {
			t.Errorf("clean up the cluster: %v", err)
		}
	})
	client := c.Client(t)
	c.ImportBusybox(t, "busybox")
	c.ApplyPod(t, "gc-keep", keepPod)
	pod := framework.WaitPod(t, client, "default", "gc-keep", "Running", framework.Running)

	// Three images no pod uses, 12 MiB each.
	for _, name := range []string{"unused-a", "unused-b", "unused-c"} {
		data := filepath.Join(t.TempDir(), "data")
		b := make([]byte, 12<<20)
		rand.Read(b)
		if err := os.WriteFile(data, b, 0o644); err != nil {
			t.Fatal(err)
		}
		tarPath := filepath.Join(t.TempDir(), name+".tar")
		if err := framework.BusyboxTar(tarPath, map[string]string{"data": data}); err != nil {
			t.Fatal(err)
		}
		if err := c.ImportImage(ctx, name, tarPath); err != nil {
			t.Fatalf("import %s: %v", name, err)
		}
	}
	list := func() string {
		out, err := framework.Run(ctx, nil, Binary, "images", "list", "--data-dir", dataDir)
		if err != nil {
			t.Fatalf("images list: %v\n%s", err, out)
		}
		return out
	}
	if out := list(); !strings.Contains(out, "unused-a") {
		t.Fatalf("images before the pressure:\n%s", out)
	}

	// 10 % of the image filesystem left: past imagefs.available<15%.
	var st unix.Statfs_t
	if err := unix.Statfs(imagesDir, &st); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(imagesDir, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Fallocate(int(f.Fd()), 0, 0, int64(st.Bavail)*st.Bsize-int64(st.Blocks)*st.Bsize/10); err != nil {
		t.Fatal(err)
	}
	f.Close()

	var out string
	if err := wait.PollUntilContextTimeout(ctx, time.Second, 2*time.Minute, true, func(context.Context) (bool, error) {
		out = list()
		return !strings.Contains(out, "unused-"), nil
	}); err != nil {
		t.Fatalf("unused images still there under imagefs pressure:\n%s", out)
	}
	if !strings.Contains(out, "busybox") {
		t.Errorf("the running pod's image went:\n%s", out)
	}
	// Two more eviction periods: the pressure is resolved, no pod goes.
	time.Sleep(25 * time.Second)
	got, err := client.CoreV1().Pods("default").Get(ctx, "gc-keep", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.UID != pod.UID || got.Status.Phase != v1.PodRunning {
		t.Errorf("pod after image GC: %s %s %q, want still Running", got.UID, got.Status.Phase, got.Status.Message)
	}
	events, err := client.CoreV1().Events("default").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range events.Items {
		if e.Reason == "Evicted" {
			t.Errorf("event %s %s: %s", e.InvolvedObject.Name, e.Reason, e.Message)
		}
	}
	if _, err := c.Kubectl(ctx, framework.Newest(), "exec", "gc-keep", "--", "true"); err != nil {
		t.Errorf("exec in the pod after image GC: %v", err)
	}
}
