package runtime

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func (e *testEnv) execOut(t *testing.T, id string, cmd ...string) string {
	t.Helper()
	var out bytes.Buffer
	code, err := e.r.Exec(e.ctx, id, cmd, Streams{Stdout: &out, Stderr: &out})
	if err != nil || code != 0 {
		t.Fatalf("Exec %v = %d, %v: %s", cmd, code, err, out.String())
	}
	return strings.TrimSpace(out.String())
}

// netns makes a network namespace bind-mounted under dir (standing in for
// internal/node/network), removed at cleanup.
func netns(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "netns")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	errc := make(chan error, 1)
	go func() {
		lockThreadForever()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			errc <- err
			return
		}
		errc <- unix.Mount("/proc/thread-self/ns/net", p, "", unix.MS_BIND, "")
	}()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Unmount(p, unix.MNT_DETACH) })
	return p
}

func TestPodNamespaces(t *testing.T) {
	e := newTestEnv(t)
	ns1, ns2 := netns(t), netns(t)
	p1 := e.pod(t, "pod-one", func(p *PodConfig) { p.NetNS = ns1 })
	p2 := e.pod(t, "pod-two", func(p *PodConfig) { p.NetNS = ns2; p.QOSClass = "Burstable" })
	if err := e.r.RunPod(e.ctx, p1); err != nil {
		t.Fatalf("RunPod is not idempotent: %v", err)
	}
	a := e.run(t, e.container(p1, "a", "sleep", "1000"))
	b := e.run(t, e.container(p1, "b", "sleep", "1000"))
	c := e.run(t, e.container(p2, "c", "sleep", "1000"))
	for _, id := range []string{a, b, c} {
		e.waitState(t, id, StateRunning)
	}
	type view struct{ host, ipc, uts, net string }
	get := func(id string) view {
		return view{
			host: e.execOut(t, id, "hostname"),
			ipc:  e.execOut(t, id, "readlink", "/proc/self/ns/ipc"),
			uts:  e.execOut(t, id, "readlink", "/proc/self/ns/uts"),
			net:  e.execOut(t, id, "readlink", "/proc/self/ns/net"),
		}
	}
	va, vb, vc := get(a), get(b), get(c)
	if va != vb {
		t.Errorf("containers of one pod differ: %+v vs %+v", va, vb)
	}
	if va.host != "pod-one" || vc.host != "pod-two" {
		t.Errorf("hostnames = %q, %q; want pod-one, pod-two", va.host, vc.host)
	}
	if va.ipc == vc.ipc || va.uts == vc.uts || va.net == vc.net {
		t.Errorf("pods share namespaces: %+v vs %+v", va, vc)
	}
	// /dev/shm is shared by the pod's containers.
	e.execOut(t, a, "sh", "-c", "echo shared > /dev/shm/x")
	if got := e.execOut(t, b, "cat", "/dev/shm/x"); got != "shared" {
		t.Errorf("/dev/shm/x in b = %q", got)
	}
	if got := e.execOut(t, c, "ls", "/dev/shm"); got != "" {
		t.Errorf("/dev/shm of another pod = %q", got)
	}

	pods, err := e.r.ListPods(e.ctx)
	if err != nil || len(pods) != 2 {
		t.Errorf("ListPods = %v, %v", pods, err)
	}
	st1, err := e.r.loadPod(p1.UID)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.r.RemovePod(e.ctx, p1.UID); err != nil {
		t.Fatal(err)
	}
	if err := e.r.RemovePod(e.ctx, p1.UID); err != nil {
		t.Errorf("second RemovePod: %v", err)
	}
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	for _, dir := range []string{e.r.podDir(p1.UID), e.r.containerDir(a), e.r.containerDir(b)} {
		if strings.Contains(string(mi), dir) {
			t.Errorf("mount under %s left behind", dir)
		}
		if _, err := os.Stat(dir); err == nil {
			t.Errorf("%s left behind", dir)
		}
	}
	for _, h := range e.r.cgroups.hierarchies() {
		if _, err := os.Stat(filepath.Join(h, st1.CgroupPath)); err == nil {
			t.Errorf("cgroup %s left behind", filepath.Join(h, st1.CgroupPath))
		}
	}
	for _, id := range []string{a, b} {
		for _, root := range []string{e.r.runcRT.root, e.r.crun.root} {
			if _, err := os.Stat(filepath.Join(root, id)); err == nil {
				t.Errorf("OCI runtime state %s left behind", filepath.Join(root, id))
			}
		}
	}
	for _, id := range []string{a, b} {
		if _, err := os.Stat(e.r.exitFile(id)); err == nil {
			t.Errorf("exit file of removed container %s left behind", id)
		}
	}
	if cs, _ := e.r.ListContainers(e.ctx, ""); len(cs) != 1 || cs[0].ID != c {
		t.Errorf("containers after RemovePod = %+v, want only %s", cs, c)
	}
}

func TestPodCgroup(t *testing.T) {
	e := newTestEnv(t)
	p := e.pod(t, "limited", func(p *PodConfig) {
		p.QOSClass = "Guaranteed"
		p.Resources = Resources{CPUShares: 256, CPUQuota: 50000, CPUPeriod: 100000, MemoryLimit: 64 << 20}
	})
	st, err := e.r.loadPod(p.UID)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(e.cfg.CgroupRoot, "pod"+p.UID); st.CgroupPath != want {
		t.Errorf("cgroup = %s, want %s", st.CgroupPath, want)
	}
	files := map[string]string{"memory.max": "67108864", "cpu.max": "50000 100000", "cpu.weight": "10"}
	if !e.r.cgroups.v2 {
		files = map[string]string{"memory/memory.limit_in_bytes": "67108864", "cpu/cpu.cfs_quota_us": "50000", "cpu/cpu.shares": "256"}
	}
	for f, want := range files {
		var path string
		if e.r.cgroups.v2 {
			path = filepath.Join(e.r.cgroups.root, st.CgroupPath, f)
		} else {
			ctl, file, _ := strings.Cut(f, "/")
			path = filepath.Join(e.r.cgroups.mounts[ctl], st.CgroupPath, file)
		}
		b, err := os.ReadFile(path)
		if err != nil || strings.TrimSpace(string(b)) != want {
			t.Errorf("%s = %q, %v; want %q", path, b, err, want)
		}
	}
}

func TestTTYContainer(t *testing.T) {
	e := newTestEnv(t)
	p := e.pod(t, "tty")
	cfg := e.container(p, "tty", "sh", "-c", "test -t 1 && echo tty")
	cfg.TTY = true
	id := e.run(t, cfg)
	st := e.waitState(t, id, StateExited)
	if st.ExitCode != 0 {
		t.Errorf("exit code %d, want 0", st.ExitCode)
	}
	b, _ := os.ReadFile(cfg.LogPath)
	if !strings.Contains(string(b), " stdout F tty") {
		t.Errorf("log = %q", b)
	}
}

func TestAdoption(t *testing.T) {
	e := newTestEnv(t)
	p := e.pod(t, "adopt")
	id := e.run(t, e.container(p, "waiter", "sh", "-c", "while [ ! -e /tmp/go ]; do sleep 0.05; done; exit 5"))
	e.waitState(t, id, StateRunning)
	// Drop the runtime as a crash would; a new one takes over the StateDir.
	if err := e.r.Close(); err != nil {
		t.Fatal(err)
	}
	r2, err := New(e.ctx, e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.r = r2
	cs, err := r2.ListContainers(e.ctx, p.UID)
	if err != nil || len(cs) != 1 || cs[0].State != StateRunning || cs[0].ID != id {
		t.Fatalf("adopted containers = %+v, %v", cs, err)
	}
	e.execOut(t, id, "touch", "/tmp/go")
	st := e.waitState(t, id, StateExited)
	if st.ExitCode != 5 {
		t.Errorf("exit code %d, want 5", st.ExitCode)
	}
	deadline := time.Now().Add(30 * time.Second)
	for e.exitCount(id) == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := e.exitCount(id); n != 1 {
		t.Errorf("OnExit called %d times, want 1", n)
	}
}

// podCgroupFile reads a file of a pod's cgroup in controller ctl's
// hierarchy (the unified one on v2).
func (e *testEnv) podCgroupFile(t *testing.T, uid, ctl, file string) string {
	t.Helper()
	st, err := e.r.loadPod(uid)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(e.r.cgroups.root, st.CgroupPath)
	if !e.r.cgroups.v2 {
		dir = filepath.Join(e.r.cgroups.mounts[ctl], st.CgroupPath)
	}
	b, err := os.ReadFile(filepath.Join(dir, file))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// The pod cgroup's pids.max is the node's PodPidsLimit (kubelet's
// podPidsLimit) unless the pod's resources set one, and "max" without a
// limit, also over a limit an earlier run left.
func TestPodPidsLimit(t *testing.T) {
	tests := []struct {
		name      string
		node, pod int64
		want      string
	}{
		{name: "node limit", node: 32, want: "32"},
		{name: "no node limit", node: -1, want: "max"},
		{name: "zero is no limit", node: 0, want: "max"},
		{name: "pod's own limit", node: 32, pod: 16, want: "16"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newTestEnv(t, func(c *Config) { c.PodPidsLimit = tt.node })
			p := e.pod(t, "pids", func(p *PodConfig) { p.Resources.PidsLimit = tt.pod })
			if got := e.podCgroupFile(t, p.UID, "pids", "pids.max"); got != tt.want {
				t.Errorf("pids.max = %q, want %q", got, tt.want)
			}
		})
	}
	t.Run("limit lifted on the next RunPod", func(t *testing.T) {
		e := newTestEnv(t, func(c *Config) { c.PodPidsLimit = 32 })
		p := e.pod(t, "pids")
		e.r.cfg.PodPidsLimit = -1 // as the next run of a node without a limit
		if err := e.r.RunPod(e.ctx, p); err != nil {
			t.Fatal(err)
		}
		if got := e.podCgroupFile(t, p.UID, "pids", "pids.max"); got != "max" {
			t.Errorf("pids.max = %q, want max", got)
		}
	})
}

// A container forking sleepers in a loop stops at the pod's limit: the
// fork past it fails in the container (busybox sh: "can't fork"). (The
// kernel counts the refusal in pids.events of the container's cgroup or
// the pod's, depending on its version.)
func TestPodPidsLimitStopsForkLoop(t *testing.T) {
	e := newTestEnv(t, func(c *Config) { c.PodPidsLimit = 16 })
	p := e.pod(t, "forker")
	// Bounded, so that a broken limit does not take the host's PIDs.
	cfg := e.container(p, "forker", "sh", "-c", "i=0; while [ $i -lt 1000 ]; do sleep 1000 & i=$((i+1)); done")
	id := e.run(t, cfg)
	e.waitState(t, id, StateExited)
	log, err := os.ReadFile(cfg.LogPath)
	if err != nil || !strings.Contains(string(log), "can't fork") {
		t.Errorf("container log = %q, %v; want busybox's \"can't fork\"", log, err)
	}
}
