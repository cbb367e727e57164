package runtime

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestContainerStats reads a busy container's cgroup: a shell loop that
// holds a 4 MiB string in memory and burns CPU, in a pod cgroup of its own.
func TestContainerStats(t *testing.T) {
	e := newTestEnv(t)
	pod := e.pod(t, "busy")
	id := e.run(t, e.container(pod, "main", "sh", "-c", `x=$(head -c 4194304 /dev/zero | tr '\0' a); while :; do :; done`))
	e.waitState(t, id, StateRunning)

	// Poll (bounded) until the loop has run and the string is built.
	var c CgroupStats
	deadline := time.Now().Add(30 * time.Second)
	for {
		var err error
		if c, err = e.r.ContainerStats(pod.UID, id); err != nil {
			t.Fatalf("ContainerStats: %v", err)
		}
		if c.CPUUsageNanoSeconds > 0 && c.MemoryRSSBytes >= 4<<20 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("container stats %+v: want CPU time and at least 4 MiB RSS", c)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if c.MemoryUsageBytes == 0 || c.MemoryWorkingSetBytes == 0 || c.MemoryWorkingSetBytes > c.MemoryUsageBytes {
		t.Errorf("container memory %+v: want 0 < working set <= usage", c)
	}

	// The pod cgroup holds the container's: at least as much of both.
	p, err := e.r.PodStats(pod.UID)
	if err != nil {
		t.Fatalf("PodStats: %v", err)
	}
	if p.CPUUsageNanoSeconds < c.CPUUsageNanoSeconds || p.MemoryUsageBytes < c.MemoryUsageBytes {
		t.Errorf("pod stats %+v below its container's %+v", p, c)
	}
	if c.Cgroup != filepath.Join(p.Cgroup, id) || !filepath.IsAbs(p.Cgroup) {
		t.Errorf("container cgroup %q, pod cgroup %q: want /…/pod, /…/pod/%s", c.Cgroup, p.Cgroup, id)
	}

	n, err := e.r.NodeStats()
	if err != nil {
		if e.r.cgroups.v2 {
			t.Skipf("NodeStats on cgroup v2: %v", err)
		}
		t.Fatalf("NodeStats: %v", err)
	}
	if n.CPUUsageNanoSeconds < p.CPUUsageNanoSeconds || n.MemoryWorkingSetBytes == 0 || n.Cgroup != "/" {
		t.Errorf("node stats %+v: want at least the pod's CPU time %d and a working set", n, p.CPUUsageNanoSeconds)
	}

	st, err := e.r.ContainerStatus(e.ctx, id)
	if err != nil {
		t.Fatalf("ContainerStatus: %v", err)
	}
	if pid, err := e.r.ContainerPid(pod.UID, pod.QOSClass, id); err != nil || pid != st.Pid || pid == 0 {
		t.Errorf("ContainerPid = %d, %v; want the container's init %d", pid, err, st.Pid)
	}

	if _, err := e.r.ContainerStats("uid-none", id); err == nil {
		t.Errorf("ContainerStats of an unknown pod: no error")
	}
}

func TestCgroupStats(t *testing.T) {
	write := func(t *testing.T, dir string, files map[string]string) {
		t.Helper()
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, content := range files {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	tests := []struct {
		name  string
		setup func(t *testing.T, root string) *cgroupFS
		want  CgroupStats
	}{
		{name: "v2 unlimited", setup: func(t *testing.T, root string) *cgroupFS {
			write(t, filepath.Join(root, "kubepods/besteffort/podU"), map[string]string{
				"memory.current": "10000\n", "memory.max": "max\n", "pids.current": "3\n",
				"memory.stat": "anon 6000\nfile 4000\nactive_file 1000\ninactive_file 3000\n",
			})
			return &cgroupFS{v2: true, root: root}
		}, want: CgroupStats{MemoryUsageBytes: 10000, MemoryWorkingSetBytes: 7000, MemoryRSSBytes: 6000, Pids: 3}},
		{name: "v2 cpu limited", setup: func(t *testing.T, root string) *cgroupFS {
			write(t, filepath.Join(root, "kubepods/besteffort/podU"), map[string]string{
				"memory.current": "10000\n", "memory.max": "65536\n", "memory.stat": "anon 6000\n",
				// runc's weight for 512 shares, read back as cAdvisor does.
				"cpu.max": "50000 100000\n", "cpu.weight": "20\n",
			})
			return &cgroupFS{v2: true, root: root}
		}, want: CgroupStats{MemoryUsageBytes: 10000, MemoryWorkingSetBytes: 10000, MemoryRSSBytes: 6000, MemoryLimitBytes: 65536,
			CPUPeriod: 100000, CPUQuota: 50000, CPUShares: 500}},
		{name: "v2 cpu unlimited", setup: func(t *testing.T, root string) *cgroupFS {
			write(t, filepath.Join(root, "kubepods/besteffort/podU"), map[string]string{
				"memory.current": "1\n", "memory.stat": "", "cpu.max": "max 100000\n", "cpu.weight": "1\n",
			})
			return &cgroupFS{v2: true, root: root}
		}, want: CgroupStats{MemoryUsageBytes: 1, MemoryWorkingSetBytes: 1, CPUPeriod: 100000, CPUShares: 2}},
		{name: "v1 limited", setup: func(t *testing.T, root string) *cgroupFS {
			write(t, filepath.Join(root, "memory/kubepods/besteffort/podU"), map[string]string{
				"memory.usage_in_bytes": "10000\n", "memory.limit_in_bytes": "65536\n",
				"memory.stat": "cache 4000\ninactive_file 9\ntotal_inactive_file 2000\n",
			})
			write(t, filepath.Join(root, "pids/kubepods/besteffort/podU"), map[string]string{"pids.current": "7\n"})
			write(t, filepath.Join(root, "cpu/kubepods/besteffort/podU"), map[string]string{
				"cpu.shares": "512\n", "cpu.cfs_period_us": "100000\n", "cpu.cfs_quota_us": "50000\n",
			})
			return &cgroupFS{mounts: map[string]string{"memory": filepath.Join(root, "memory"), "pids": filepath.Join(root, "pids"), "cpu": filepath.Join(root, "cpu")}}
		}, want: CgroupStats{MemoryUsageBytes: 10000, MemoryWorkingSetBytes: 8000, MemoryLimitBytes: 65536, Pids: 7,
			CPUPeriod: 100000, CPUQuota: 50000, CPUShares: 512}},
		{name: "v1 unlimited", setup: func(t *testing.T, root string) *cgroupFS {
			write(t, filepath.Join(root, "memory/kubepods/besteffort/podU"), map[string]string{
				"memory.usage_in_bytes": "100\n", "memory.limit_in_bytes": "9223372036854771712\n",
				"memory.stat": "total_inactive_file 200\n",
			})
			write(t, filepath.Join(root, "cpu/kubepods/besteffort/podU"), map[string]string{
				"cpu.shares": "2\n", "cpu.cfs_period_us": "100000\n", "cpu.cfs_quota_us": "-1\n",
			})
			return &cgroupFS{mounts: map[string]string{"memory": filepath.Join(root, "memory"), "pids": filepath.Join(root, "pids"), "cpu": filepath.Join(root, "cpu")}}
		}, want: CgroupStats{MemoryUsageBytes: 100, CPUPeriod: 100000, CPUShares: 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.setup(t, t.TempDir())
			got, err := c.stats(podCgroup("/kubepods", qosBestEffort, "U"))
			if err != nil {
				t.Fatal(err)
			}
			if want := "/kubepods/besteffort/podU"; got.Cgroup != want {
				t.Errorf("Cgroup = %q, want %q", got.Cgroup, want)
			}
			got.Time, got.Cgroup = time.Time{}, ""
			if got != tt.want {
				t.Errorf("stats = %+v, want %+v", got, tt.want)
			}
			// The summary's read: the same but for the CPU spec.
			u, err := c.usage(podCgroup("/kubepods", qosBestEffort, "U"))
			if err != nil {
				t.Fatal(err)
			}
			u.Time, u.Cgroup = time.Time{}, ""
			want := tt.want
			want.CPUPeriod, want.CPUQuota, want.CPUShares = 0, 0, 0
			if u != want {
				t.Errorf("usage = %+v, want %+v", u, want)
			}
		})
	}
}

// TestPodsCgroupStatsBeforeFirstPod reads the pods' cgroup of a runtime
// that has run no pod yet: New makes it, as kubelet makes its QoS cgroups
// at start, so the eviction manager's "pods" system container is there
// from its first pass.
func TestPodsCgroupStatsBeforeFirstPod(t *testing.T) {
	e := newTestEnv(t)
	s, err := e.r.PodsCgroupStats()
	if err != nil {
		t.Fatalf("PodsCgroupStats before any pod: %v", err)
	}
	if s.Cgroup != e.cfg.CgroupRoot {
		t.Errorf("pods cgroup %q, want %q", s.Cgroup, e.cfg.CgroupRoot)
	}
	for _, q := range []string{"burstable", "besteffort"} {
		if _, err := e.r.cgroups.stats(filepath.Join(e.cfg.CgroupRoot, q)); err != nil {
			t.Errorf("%s cgroup: %v", q, err)
		}
	}
}

// BenchmarkCgroupStats reads a running container's cgroup and its pod's,
// as the stats summary does for each pod and container.
func BenchmarkCgroupStats(b *testing.B) {
	e := newTestEnv(b)
	pod := e.pod(b, "bench")
	id := e.run(b, e.container(pod, "main", "sleep", "600"))
	e.waitState(b, id, StateRunning)
	for b.Loop() {
		if _, err := e.r.PodCgroupStats(pod.UID, pod.QOSClass); err != nil {
			b.Fatal(err)
		}
		if _, err := e.r.ContainerCgroupStats(pod.UID, pod.QOSClass, id); err != nil {
			b.Fatal(err)
		}
	}
}

func TestFileReader(t *testing.T) {
	dir := t.TempDir()
	// Longer than the first buffer: the reader grows it.
	long := strings.Repeat("padding_key 1\n", 600) + "total_rss 42\nlast 7"
	if err := os.WriteFile(filepath.Join(dir, "memory.stat"), []byte(long), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "pids.max"), []byte("max\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	rd := fileReader{buf: make([]byte, 16)}
	vals := make([]uint64, 3)
	if err := rd.keyed(filepath.Join(dir, "memory.stat"), []string{"last", "total_rss", "absent"}, vals); err != nil {
		t.Fatal(err)
	}
	if vals[0] != 7 || vals[1] != 42 || vals[2] != 0 {
		t.Errorf("keyed = %v, want [7 42 0]", vals)
	}
	if n, err := rd.uint(filepath.Join(dir, "pids.max")); err != nil || n != 0 {
		t.Errorf("uint(max) = %d, %v; want 0", n, err)
	}
	if _, err := rd.uint(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("uint(missing): %v, want os.ErrNotExist", err)
	}
	if _, err := rd.uint(filepath.Join(dir, "memory.stat")); err == nil {
		t.Errorf("uint of a keyed file: no error")
	}
}

func TestFirstPid(t *testing.T) {
	tests := []struct {
		name    string
		v2      bool
		procs   *string // nil: no cgroup.procs
		want    int
		wantErr bool
	}{
		{name: "v2 first of two", v2: true, procs: new("12\n34\n"), want: 12},
		{name: "v2 empty", v2: true, procs: new(""), want: 0},
		{name: "v1 memory hierarchy", procs: new("56\n"), want: 56},
		{name: "no cgroup", v2: true, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			c := &cgroupFS{v2: true, root: root}
			dir := filepath.Join(root, "kubepods/podU/c1")
			if !tt.v2 {
				c = &cgroupFS{mounts: map[string]string{"memory": filepath.Join(root, "memory"), "pids": filepath.Join(root, "pids")}}
				dir = filepath.Join(root, "memory/kubepods/podU/c1")
				// The pids hierarchy is not the one read.
				if err := os.MkdirAll(filepath.Join(root, "pids/kubepods/podU/c1"), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(root, "pids/kubepods/podU/c1/cgroup.procs"), []byte("99\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if tt.procs != nil {
				if err := os.MkdirAll(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(*tt.procs), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got, err := c.firstPid("/kubepods/podU/c1")
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("firstPid = %d, %v; want %d, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}
