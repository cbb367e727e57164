//go:build e2e

package e2e

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// busyboxRootfs writes a root filesystem tar built from the host's
// busybox-static: /bin/busybox, a symlink per applet, /etc/passwd and
// /etc/group with root and nobody. It is the offline stand-in for the
// chapter's `busybox` image.
func busyboxRootfs(path string) error {
	bin, err := exec.LookPath("busybox")
	if err != nil {
		return err
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		return err
	}
	list, err := exec.Command(bin, "--list").Output()
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	now := time.Now()
	dir := func(name string, mode int64) {
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: mode, ModTime: now})
	}
	file := func(name string, mode int64, data []byte) {
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(data)), ModTime: now})
		tw.Write(data)
	}
	for _, d := range []string{"bin", "etc", "dev", "proc", "sys", "root", "home", "var", "usr", "usr/bin"} {
		dir(d, 0o755)
	}
	dir("tmp", 0o1777)
	file("bin/busybox", 0o755, data)
	file("etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n"))
	file("etc/group", 0o644, []byte("root:x:0:\nnobody:x:65534:\n"))
	for _, applet := range strings.Fields(string(list)) {
		if applet == "busybox" {
			continue
		}
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: "bin/" + applet, Linkname: "busybox", Mode: 0o777, ModTime: now})
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return os.WriteFile(path, buf.Bytes(), 0o644)
}

var importOnce = map[string]*sync.Once{}
var importMu sync.Mutex
var importErr = map[string]error{}

// importBusybox imports the busybox rootfs into c's image store under
// name, once per cluster and name, with `pocketkube images import` while
// the cluster runs.
func importBusybox(t *testing.T, c *Cluster, name string) {
	t.Helper()
	key := c.DataDir + "|" + name
	importMu.Lock()
	once, ok := importOnce[key]
	if !ok {
		once = new(sync.Once)
		importOnce[key] = once
	}
	importMu.Unlock()
	once.Do(func() {
		tarPath := filepath.Join(t.TempDir(), "busybox.tar")
		err := busyboxRootfs(tarPath)
		if err == nil {
			_, err = run(context.Background(), nil, Binary, "images", "import", "--data-dir", c.DataDir, "--name", name, tarPath)
		}
		importMu.Lock()
		importErr[key] = err
		importMu.Unlock()
	})
	importMu.Lock()
	err := importErr[key]
	importMu.Unlock()
	if err != nil {
		t.Fatalf("import %s: %v", name, err)
	}
}
