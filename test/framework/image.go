package framework

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// BusyboxTar writes a root filesystem tar built from the host's
// busybox-static: /bin/busybox, a symlink per applet, /etc/passwd and
// /etc/group with root and nobody. It is the offline stand-in for the
// `busybox` image. extra files (path in the image → path on the host)
// are added as they are.
func BusyboxTar(tarPath string, extra map[string]string) error {
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
	made := map[string]bool{"bin": true, "etc": true, "usr": true, "usr/bin": true}
	for name, src := range extra {
		b, err := os.ReadFile(src) // follows symlinks, as cp -L
		if err != nil {
			return err
		}
		name = strings.TrimPrefix(name, "/")
		var parents []string
		for d := path.Dir(name); d != "." && !made[d]; d = path.Dir(d) {
			parents = append(parents, d)
			made[d] = true
		}
		for _, d := range slices.Backward(parents) {
			dir(d, 0o755)
		}
		file(name, 0o755, b)
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return os.WriteFile(tarPath, buf.Bytes(), 0o644)
}

// ImportImage imports the image tar into c's image store under name, with
// `pocketkube images import` while the cluster runs.
func (c *Cluster) ImportImage(ctx context.Context, name, tarPath string) error {
	_, err := Run(ctx, nil, c.cfg.Binary, "images", "import", "--data-dir", c.DataDir, "--name", name, tarPath)
	return err
}

var imports struct {
	sync.Mutex
	once map[string]*sync.Once
	err  map[string]error
}

// ImportBusybox imports the busybox image (BusyboxTar) into c's image
// store under name, once per cluster and name.
func (c *Cluster) ImportBusybox(t testing.TB, name string) {
	t.Helper()
	key := c.DataDir + "|" + name
	imports.Lock()
	if imports.once == nil {
		imports.once, imports.err = map[string]*sync.Once{}, map[string]error{}
	}
	once, ok := imports.once[key]
	if !ok {
		once = new(sync.Once)
		imports.once[key] = once
	}
	imports.Unlock()
	once.Do(func() {
		tarPath := filepath.Join(t.TempDir(), "busybox.tar")
		err := BusyboxTar(tarPath, nil)
		if err == nil {
			err = c.ImportImage(context.Background(), name, tarPath)
		}
		imports.Lock()
		imports.err[key] = err
		imports.Unlock()
	})
	imports.Lock()
	err := imports.err[key]
	imports.Unlock()
	if err != nil {
		t.Fatalf("import %s: %v", name, err)
	}
}
