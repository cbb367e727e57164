//go:build e2e

package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"golang.org/x/sys/unix"

	"github.com/pocketkube/pocketkube/test/framework"
)

// noSpace is what etcd answers a write under its NOSPACE alarm, and what
// the API server's clients read.
const noSpace = "etcdserver: mvcc: database space exceeded"

// fillTo makes file take what dir's filesystem has free but free bytes
// (f_bavail).
func fillTo(t *testing.T, file string, free int64) {
	t.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs(filepath.Dir(file), &st); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(file, os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, _ := f.Stat()
	if n := int64(st.Bavail)*st.Bsize - free; n > 0 {
		if err := unix.Fallocate(int(f.Fd()), 0, fi.Size(), n); err != nil {
			t.Fatal(err)
		}
	}
}

func createConfigMap(ctx context.Context, c kubernetes.Interface, name string) error {
	_, err := c.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Data:       map[string]string{"k": strings.Repeat("v", 4096)},
	}, metav1.CreateOptions{})
	return err
}

// The etcd data directory on a small loop-mounted ext4 that fills up:
// below etcd's reserve (128 MiB free) the API server refuses writes with
// etcd's "database space exceeded", serves reads and deletes, and
// pocketkube goes on; once space is freed writes work again without a
// restart, and the next `up` has every object the API server
// acknowledged, none it refused.
func TestEtcdDiskFull(t *testing.T) {
	ctx := context.Background()
	dataDir := filepath.Join(t.TempDir(), "c")
	img := filepath.Join(t.TempDir(), "etcd.img")
	etcdDir := filepath.Join(dataDir, "etcd")
	if err := os.MkdirAll(etcdDir, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"truncate", "-s", "512M", img}, {"mkfs.ext4", "-q", "-F", img}, {"mount", "-o", "loop", img, etcdDir}} {
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
	}
	unmounted := false
	unmount := func() {
		if !unmounted {
			unmounted = true
			if err := unix.Unmount(etcdDir, 0); err != nil {
				t.Errorf("unmount %s: %v", etcdDir, err)
			}
		}
	}
	c, err := framework.StartCluster(framework.ClusterConfig{Binary: Binary, DataDir: dataDir, NetNS: true})
	if err != nil {
		unmount()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("cluster output:\n%s", framework.Tail(c.Current().Output(), 80))
		}
		select {
		case <-c.Current().Done():
		default:
			c.Current().Stop(15 * time.Second)
		}
		unmount()
		if err := c.Cleanup(); err != nil {
			t.Errorf("clean up the cluster: %v", err)
		}
	})
	client := c.Client(t)

	var acked []string
	for i := range 20 {
		name := "before-" + string(rune('a'+i))
		if err := createConfigMap(ctx, client, name); err != nil {
			t.Fatalf("create %s: %v", name, err)
		}
		acked = append(acked, name)
	}

	// Fill the filesystem to 32 MiB free: the API server goes on until
	// etcd's guard sees it, then refuses every write.
	filler := filepath.Join(etcdDir, "filler")
	fillTo(t, filler, 32<<20)
	var refused string
	var lastErr error
	if err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		name := "during-" + strings.ToLower(time.Now().Format("150405.000000"))
		name = strings.ReplaceAll(name, ".", "-")
		lastErr = createConfigMap(ctx, client, name)
		if lastErr == nil {
			acked = append(acked, name)
			return false, nil
		}
		refused = name
		return true, nil
	}); err != nil {
		t.Fatalf("writes still accepted with 32 MiB free: %v", err)
	}
	if !strings.Contains(lastErr.Error(), noSpace) {
		t.Fatalf("create with the disk full: %v, want %q", lastErr, noSpace)
	}
	// What a kubectl user sees.
	out, err := c.Kubectl(ctx, framework.Newest(), "create", "configmap", "by-kubectl", "--from-literal=k=v")
	t.Logf("kubectl create with the disk full: %v: %s", err, out)
	if err == nil || !strings.Contains(out+err.Error(), noSpace) {
		t.Errorf("kubectl create with the disk full: %v %q, want an error with %q", err, out, noSpace)
	}
	// Many more writes are refused; reads and deletes work; the process
	// stays up through the node's and the controllers' failing updates.
	for i := range 50 {
		if err := createConfigMap(ctx, client, "refused-"+string(rune('a'+i%26))); err == nil || !strings.Contains(err.Error(), noSpace) {
			t.Fatalf("write %d with the disk full: %v", i, err)
		}
	}
	time.Sleep(15 * time.Second)
	c.CheckAlive(t)
	if out, err := c.Kubectl(ctx, framework.Newest(), "get", "configmap", acked[0], "-o", "name"); err != nil {
		t.Errorf("read with the disk full: %v %s", err, out)
	}
	if err := client.CoreV1().ConfigMaps("default").Delete(ctx, acked[0], metav1.DeleteOptions{}); err != nil {
		t.Errorf("delete with the disk full: %v", err)
	}
	deleted := acked[0]
	acked = acked[1:]
	if !strings.Contains(c.Output(), "free disk space below the reserve: refusing writes (NOSPACE alarm) until space is freed") {
		t.Errorf("no log line says why writes are refused")
	}

	// Space freed: writes work again, without a restart.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		lastErr = createConfigMap(ctx, client, "after")
		return lastErr == nil, nil
	}); err != nil {
		t.Fatalf("writes after freeing space: %v", lastErr)
	}
	acked = append(acked, "after")

	// The next up has everything acknowledged, nothing refused. (Ctrl-C
	// as stopCleanly, whose check of leftover mounts would count the
	// test's own filesystem.)
	if took, err := c.Stop(10 * time.Second); err != nil {
		t.Fatalf("stop: %v (after %s)", err, took)
	}
	c = restartNode(t, c)
	client = c.Client(t)
	list, err := client.CoreV1().ConfigMaps("default").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, cm := range list.Items {
		have[cm.Name] = true
	}
	for _, name := range acked {
		if !have[name] {
			t.Errorf("acknowledged configmap %s lost", name)
		}
	}
	for _, name := range []string{refused, "by-kubectl", "refused-a", deleted} {
		if have[name] {
			t.Errorf("configmap %s, refused or deleted, is there after the restart", name)
		}
	}
	t.Logf("%d acknowledged configmaps kept", len(acked))
}
