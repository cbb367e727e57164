package eviction

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	statsapi "k8s.io/kubelet/pkg/apis/stats/v1alpha1"

	"github.com/pocketkube/pocketkube/internal/node/runtime"
)

func TestCPUSampler(t *testing.T) {
	t0 := time.Unix(1700000000, 0)
	sample := func(d time.Duration, usage uint64) runtime.CgroupStats {
		return runtime.CgroupStats{Time: t0.Add(d), CPUUsageNanoSeconds: usage}
	}
	var c cpuSampler
	tests := []struct {
		name      string
		cg        runtime.CgroupStats
		wantNil   bool // no CPUStats at all
		wantCores *uint64
	}{
		{name: "first sample has no rate", cg: sample(0, 1e9)},
		{name: "2 s later at half a core", cg: sample(2*time.Second, 2e9), wantCores: ptr(uint64(5e8))},
		{name: "within a second keeps the last rate", cg: sample(2500*time.Millisecond, 9e9), wantCores: ptr(uint64(5e8))},
		{name: "a second after the last sample", cg: sample(3*time.Second, 4e9), wantCores: ptr(uint64(2e9))},
		{name: "counter went back: started over", cg: sample(4*time.Second, 1e6)},
		{name: "no CPU accounting", cg: sample(5*time.Second, 0), wantNil: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := c.stats("pod", tt.cg)
			if tt.wantNil {
				if got != nil {
					t.Fatalf("stats = %+v, want nil", got)
				}
				return
			}
			if *got.UsageCoreNanoSeconds != tt.cg.CPUUsageNanoSeconds {
				t.Errorf("usageCoreNanoSeconds = %d, want %d", *got.UsageCoreNanoSeconds, tt.cg.CPUUsageNanoSeconds)
			}
			switch {
			case tt.wantCores == nil && got.UsageNanoCores != nil:
				t.Errorf("usageNanoCores = %d, want none", *got.UsageNanoCores)
			case tt.wantCores != nil && (got.UsageNanoCores == nil || *got.UsageNanoCores != *tt.wantCores):
				t.Errorf("usageNanoCores = %v, want %d", got.UsageNanoCores, *tt.wantCores)
			}
		})
	}
	c.forget(map[string]bool{})
	if len(c.samples) != 0 {
		t.Errorf("forget kept %v", c.samples)
	}
}

func ptr[T any](v T) *T { return &v }

// cpuCgroups is fakeCgroups with CPU figures and a root cgroup.
type cpuCgroups struct{ fakeCgroups }

func (cpuCgroups) NodeStats() (runtime.CgroupStats, error) {
	return runtime.CgroupStats{Time: time.Now(), CPUUsageNanoSeconds: 5e9}, nil
}
func (f cpuCgroups) PodsCgroupStats() (runtime.CgroupStats, error) {
	return runtime.CgroupStats{Time: time.Now(), CPUUsageNanoSeconds: 3e9, MemoryUsageBytes: 300, MemoryWorkingSetBytes: 200, MemoryLimitBytes: 1000}, nil
}
func (f cpuCgroups) ContainerCgroupStats(uid, qos, id string) (runtime.CgroupStats, error) {
	if id == "gone" {
		return runtime.CgroupStats{}, errors.New("no cgroup")
	}
	s, err := f.PodCgroupStats(uid, qos)
	s.CPUUsageNanoSeconds = 1e9
	return s, err
}

func TestSummaryGet(t *testing.T) {
	dir := t.TempDir()
	proc := filepath.Join(dir, "proc")
	if err := os.MkdirAll(filepath.Join(proc, "net"), 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"meminfo": "MemTotal: 1000 kB\nMemFree: 300 kB\nInactive(file): 200 kB\n",
		"stat":    "cpu  1 2 3\nbtime 1690000000\n",
		"net/dev": "Inter-|   Receive                                                |  Transmit\n" +
			" face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n" +
			"    lo: 100 1 0 0 0 0 0 0 100 1 0 0 0 0 0 0\n" +
			"  eth0: 5000 10 1 0 0 0 0 0 7000 12 2 0 0 0 0 0\n",
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(proc, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	started := metav1.NewTime(time.Unix(1695000000, 0))
	pod := &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "ns", UID: "uid-web"},
		Spec: v1.PodSpec{Volumes: []v1.Volume{
			{Name: "cache", VolumeSource: v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{}}},
			{Name: "tmpfs", VolumeSource: v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{Medium: v1.StorageMediumMemory}}},
		}},
		Status: v1.PodStatus{StartTime: &started, ContainerStatuses: []v1.ContainerStatus{
			{Name: "main", State: v1.ContainerState{Running: &v1.ContainerStateRunning{StartedAt: started}}},
		}},
	}
	unknown := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "unknown", Namespace: "ns", UID: "uid-unknown"}}
	s := &Summary{
		NodeName: "n", NodeFsDir: dir, ImageFsDir: dir,
		Meminfo: filepath.Join(proc, "meminfo"), ProcDir: proc,
		Cgroups: cpuCgroups{fakeCgroups{ws: map[string]uint64{"uid-web": 100}}},
		Pods:    func() ([]*v1.Pod, error) { return []*v1.Pod{pod, unknown}, nil },
		Containers: func(context.Context) (map[string]map[string]string, error) {
			return map[string]map[string]string{"uid-web": {"main": "c1", "old": "gone"}}, nil
		},
		EmptyDirUsage: func(uid, vol string) (int64, error) { return 4096, nil },
	}
	sum, err := s.Get(t.Context(), false)
	if err != nil {
		t.Fatal(err)
	}
	n := sum.Node
	if n.NodeName != "n" || !n.StartTime.Equal(&metav1.Time{Time: time.Unix(1690000000, 0)}) {
		t.Errorf("node %q started %v, want n at btime 1690000000", n.NodeName, n.StartTime)
	}
	if n.CPU == nil || *n.CPU.UsageCoreNanoSeconds != 5e9 {
		t.Errorf("node CPU = %+v, want the root cgroup's 5e9 ns", n.CPU)
	}
	if n.Fs == nil || n.Runtime == nil || n.Runtime.ImageFs == nil || n.Rlimit == nil || n.Memory == nil {
		t.Errorf("node lacks fs, imagefs, rlimit or memory: %+v", n)
	}
	if n.Network == nil || len(n.Network.Interfaces) != 1 || n.Network.Name != "eth0" || *n.Network.RxBytes != 5000 || *n.Network.TxErrors != 2 {
		t.Errorf("node network = %+v, want eth0 alone (rx 5000 bytes, tx 2 errors)", n.Network)
	}
	if len(n.SystemContainers) != 1 || n.SystemContainers[0].Name != statsapi.SystemContainerPods ||
		*n.SystemContainers[0].Memory.AvailableBytes != 800 || n.SystemContainers[0].CPU == nil {
		t.Errorf("system containers = %+v, want pods with 800 bytes available and CPU", n.SystemContainers)
	}
	if len(sum.Pods) != 1 {
		t.Fatalf("pods = %+v, want web only (unknown has no cgroup)", sum.Pods)
	}
	p := sum.Pods[0]
	if p.PodRef != (statsapi.PodReference{Name: "web", Namespace: "ns", UID: "uid-web"}) || !p.StartTime.Equal(&started) {
		t.Errorf("pod ref %+v started %v", p.PodRef, p.StartTime)
	}
	if len(p.Containers) != 1 || p.Containers[0].Name != "main" || !p.Containers[0].StartTime.Equal(&started) ||
		*p.Containers[0].CPU.UsageCoreNanoSeconds != 1e9 || *p.Containers[0].Memory.WorkingSetBytes != 100 {
		t.Errorf("containers = %+v, want main alone with its CPU and memory", p.Containers)
	}
	if len(p.VolumeStats) != 1 || p.VolumeStats[0].Name != "cache" || *p.EphemeralStorage.UsedBytes != 4096 {
		t.Errorf("volumes %+v, ephemeral storage %+v; want cache alone, 4096 bytes", p.VolumeStats, p.EphemeralStorage)
	}
	if *p.ProcessStats.ProcessCount != 1 {
		t.Errorf("process count = %d, want 1", *p.ProcessStats.ProcessCount)
	}
}
