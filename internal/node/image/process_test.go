package image

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"k8s.io/klog/v2/ktesting"
)

const helperEnv = "POCKETKUBE_IMAGE_TEST_HELPER"

// TestHelperProcess is the other process of TestProcessesImport. Run on its
// own it returns at once, as os/exec's helper does: a skip would fail `make
// test`, which counts every skipped test as a failure.
func TestHelperProcess(t *testing.T) {
	dir, name := os.Getenv(helperEnv), os.Getenv(helperEnv+"_NAME")
	if dir == "" {
		return
	}
	_, ctx := ktesting.NewTestContext(t)
	s, err := Open(ctx, Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Import(ctx, name, bytes.NewReader(busyboxRootfs(t)), ImportOptions{}); err != nil {
		t.Fatal(err)
	}
}

// TestProcessesImport imports from several processes at once into one
// directory, as `pocketkube images import` does while `up` runs, and checks
// that a Store opened before sees every image without reopening.
func TestProcessesImport(t *testing.T) {
	if _, err := os.Stat("/bin/busybox"); err != nil {
		t.Skip("needs /bin/busybox")
	}
	_, ctx := ktesting.NewTestContext(t)
	dir := filepath.Join(t.TempDir(), "images")
	s, err := Open(ctx, Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.List(ctx); err != nil {
		t.Fatal(err)
	}
	var cmds []*exec.Cmd
	var outs []*bytes.Buffer
	for i := range 3 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
		cmd.Env = append(os.Environ(), helperEnv+"="+dir, fmt.Sprintf("%s_NAME=proc%d", helperEnv, i))
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		cmds, outs = append(cmds, cmd), append(outs, &out)
	}
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Fatalf("helper %d: %v\n%s", i, err, outs[i])
		}
	}
	list, err := s.List(ctx)
	if err != nil || len(list) != 3 {
		t.Fatalf("List = %+v, %v; want 3 images", list, err)
	}
	for i, img := range list {
		if want := fmt.Sprintf("docker.io/library/proc%d:latest", i); img.Name != want {
			t.Errorf("List[%d] = %s, want %s", i, img.Name, want)
		}
		if _, err := s.Rootfs(ctx, img); err != nil {
			t.Error(err)
		}
	}
}

// TestOpenCleansTmp checks that Open removes what a crashed process left in
// tmp/, and only that.
func TestOpenCleansTmp(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "images")
	s, err := Open(t.Context(), Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	abandoned := s.path("tmp", "import-abandoned")
	if err := os.MkdirAll(filepath.Join(abandoned, "blobs"), 0o755); err != nil {
		t.Fatal(err)
	}
	busy, release, err := s.tempDir("pull")
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	old := time.Now().Add(-time.Hour)
	for _, p := range []string{abandoned, busy} {
		if err := os.Chtimes(p, old, old); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := Open(t.Context(), Config{Dir: dir}); err != nil {
		t.Fatal(err)
	}
	if exists(abandoned) {
		t.Errorf("%s survived Open", abandoned)
	}
	if !exists(busy) {
		t.Errorf("%s, in use, was removed", busy)
	}
}
