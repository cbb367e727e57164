package runtime

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/klog/v2/ktesting"

	"github.com/pocketkube/pocketkube/internal/node/runtime/shim"
)

// shimEnv makes the test binary act as the shim: New's ShimPath is the test
// binary itself.
const shimEnv = "POCKETKUBE_TEST_RUNTIME_SHIM"

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

func TestMain(m *testing.M) {
	if os.Getenv(shimEnv) == "1" {
		os.Exit(shim.Main(os.Args[1:]))
	}
	os.Setenv(shimEnv, "1") // inherited by the shims this binary starts
	os.Exit(m.Run())
}

func requireRunc(tb testing.TB) string {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip("needs root: mounts, namespaces and cgroups")
	}
	p, err := exec.LookPath("runc")
	if err != nil {
		tb.Skip("needs runc in $PATH")
	}
	if os.Getenv(ociRuntimeEnv) == Crun {
		if _, err := exec.LookPath(Crun); err != nil {
			tb.Skip("needs crun in $PATH (" + ociRuntimeEnv + "=crun)")
		}
	}
	if _, err := os.Stat("/bin/busybox"); err != nil {
		tb.Skip("needs a static /bin/busybox for the test rootfs")
	}
	return p
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// busyboxRootfs builds a read-only image rootfs from the host's static
// busybox: /bin/busybox with its applets as symlinks, /etc/passwd, /etc/group.
func busyboxRootfs(tb testing.TB) string {
	tb.Helper()
	dir := tb.TempDir()
	for _, d := range []string{"bin", "etc", "proc", "sys", "dev", "tmp", "root"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			tb.Fatal(err)
		}
	}
	b, err := os.ReadFile("/bin/busybox")
	if err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bin/busybox"), b, 0o755); err != nil {
		tb.Fatal(err)
	}
	out, err := exec.Command("/bin/busybox", "--list").Output()
	if err != nil {
		tb.Fatal(err)
	}
	for _, a := range strings.Fields(string(out)) {
		if a == "busybox" {
			continue
		}
		if err := os.Symlink("busybox", filepath.Join(dir, "bin", a)); err != nil {
			tb.Fatal(err)
		}
	}
	files := map[string]string{
		"etc/passwd": "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\napp:x:1000:1000::/home/app:/bin/sh\n",
		"etc/group":  "root:x:0:\nwheel:x:10:app\nnogroup:x:65534:\napp:x:1000:\naudio:x:29:app,other\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	return dir
}

// testEnv is a Runtime on a temporary StateDir and cgroup root, torn down
// (pods removed, cgroups removed) when the test ends.
type testEnv struct {
	r      *Runtime
	cfg    Config
	ctx    context.Context
	rootfs string
	mu     sync.Mutex
	exits  map[string]int
	exitCh chan string // every OnExit, dropped when full
}

// ociRuntimeEnv selects the OCI runtime of the tests' Runtimes
// (Config.OCIRuntime): POCKETKUBE_TEST_OCI_RUNTIME=crun runs them with
// $PATH's crun; unset, with $PATH's runc.
const ociRuntimeEnv = "POCKETKUBE_TEST_OCI_RUNTIME"

// newTestEnv's mutate functions change the Config before New (e.g. another
// shim).
func newTestEnv(tb testing.TB, mutate ...func(*Config)) *testEnv {
	tb.Helper()
	runc := requireRunc(tb)
	_, ctx := ktesting.NewTestContext(tb)
	exe, err := os.Executable()
	if err != nil {
		tb.Fatal(err)
	}
	e := &testEnv{ctx: ctx, rootfs: busyboxRootfs(tb), exits: map[string]int{}, exitCh: make(chan string, 1024)}
	e.cfg = Config{
		StateDir:   tb.TempDir(),
		RuncPath:   runc,
		OCIRuntime: os.Getenv(ociRuntimeEnv),
		CgroupRoot: "/pocketkube-test-" + randHex(4),
		ShimPath:   exe,
		ShimArgs:   []string{},
		OnExit: func(id string) {
			e.mu.Lock()
			e.exits[id]++
			e.mu.Unlock()
			select {
			case e.exitCh <- id:
			default:
			}
		},
	}
	for _, m := range mutate {
		m(&e.cfg)
	}
	e.r, err = New(ctx, e.cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		ctx := context.Background()
		uids, _ := e.r.ListPods(ctx)
		for _, uid := range uids {
			if err := e.r.RemovePod(ctx, uid); err != nil {
				tb.Errorf("cleanup: %v", err)
			}
		}
		cs, _ := e.r.ListContainers(ctx, "")
		for _, c := range cs {
			_ = e.r.RemoveContainer(ctx, c.ID)
		}
		if err := e.r.cgroups.remove(e.cfg.CgroupRoot); err != nil {
			tb.Errorf("cleanup: %v", err)
		}
		_ = e.r.Close()
	})
	return e
}

func (e *testEnv) exitCount(id string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.exits[id]
}

func (e *testEnv) pod(tb testing.TB, name string, mutate ...func(*PodConfig)) PodConfig {
	tb.Helper()
	p := PodConfig{UID: "uid-" + randHex(8), Namespace: "default", Name: name, Hostname: name, QOSClass: "BestEffort"}
	for _, m := range mutate {
		m(&p)
	}
	if err := e.r.RunPod(e.ctx, p); err != nil {
		tb.Fatalf("RunPod: %v", err)
	}
	return p
}

func (e *testEnv) container(pod PodConfig, name string, args ...string) ContainerConfig {
	return ContainerConfig{
		PodUID: pod.UID, Name: name, Image: "busybox", Rootfs: e.rootfs, Args: args,
		Env:     []string{"PATH=/bin"},
		LogPath: filepath.Join(e.cfg.StateDir, "logs", pod.UID, name, "0.log"),
	}
}

func (e *testEnv) run(tb testing.TB, cfg ContainerConfig) string {
	tb.Helper()
	id, err := e.r.CreateContainer(e.ctx, cfg)
	if err != nil {
		tb.Fatalf("CreateContainer: %v", err)
	}
	if err := e.r.StartContainer(e.ctx, id); err != nil {
		tb.Fatalf("StartContainer: %v", err)
	}
	return id
}

// waitState polls until the container reaches want (bounded, not a timing assert).
func (e *testEnv) waitState(tb testing.TB, id string, want State) *ContainerStatus {
	tb.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		st, err := e.r.ContainerStatus(e.ctx, id)
		if err != nil {
			tb.Fatalf("ContainerStatus: %v", err)
		}
		if st.State == want {
			return st
		}
		if time.Now().After(deadline) {
			tb.Fatalf("container %s is %s, want %s", id, st.State, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
