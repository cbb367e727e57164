package eviction

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/klog/v2/ktesting"
	"k8s.io/kubernetes/pkg/kubelet/lifecycle"

	"github.com/pocketkube/pocketkube/internal/node/runtime"
)

func TestParseHard(t *testing.T) {
	tests := []struct {
		name, in, want, err string
	}{
		{name: "kubelet's defaults", in: DefaultHard, want: DefaultHard},
		{name: "percent and quantity", in: "memory.available<1Gi, nodefs.available<99.9%", want: "memory.available<1Gi,nodefs.available<99.9%"},
		{name: "pids", in: "pid.available<10%", want: "pid.available<10%"},
		{name: "none", in: "", want: ""},
		{name: "not a pair", in: "memory.available=1Gi", err: "malformed pair"},
		{name: "unknown signal", in: "cpu.available<1", err: "unsupported eviction signal cpu.available"},
		{name: "bad quantity", in: "memory.available<lots", err: "quantities must match"},
		{name: "percent over 100", in: "nodefs.available<101%", err: "101%"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseHard(tt.in)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("ParseHard(%q) error %v, want one with %q", tt.in, err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s := FormatThresholds(got); s != tt.want {
				t.Errorf("ParseHard(%q) = %s, want %s", tt.in, s, tt.want)
			}
		})
	}
}

// fakeCgroups reports every pod's cgroup with the working set in ws.
type fakeCgroups struct{ ws map[string]uint64 } // pod UID → bytes

var _ Cgroups = fakeCgroups{}

func (f fakeCgroups) PodsCgroupStats() (runtime.CgroupStats, error) {
	return runtime.CgroupStats{}, nil
}
func (f fakeCgroups) PodCgroupStats(uid, _ string) (runtime.CgroupStats, error) {
	n, ok := f.ws[uid]
	if !ok {
		return runtime.CgroupStats{}, errors.New("no cgroup")
	}
	return runtime.CgroupStats{MemoryUsageBytes: n, MemoryWorkingSetBytes: n, Pids: 1}, nil
}
func (f fakeCgroups) ContainerCgroupStats(uid, qos, _ string) (runtime.CgroupStats, error) {
	return f.PodCgroupStats(uid, qos)
}

type fakeKiller struct {
	mu     sync.Mutex
	killed []string
	msgs   map[string]string
	conds  map[string]*v1.PodCondition
}

func (k *fakeKiller) KillEvicted(_ context.Context, pod *v1.Pod, message string, c *v1.PodCondition) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.killed = append(k.killed, pod.Name)
	k.msgs[pod.Name], k.conds[pod.Name] = message, c
}
func (k *fakeKiller) PodCleanedUp(*v1.Pod) bool { return true }

func pod(name string, memRequest string) *v1.Pod {
	c := v1.Container{Name: "c"}
	if memRequest != "" {
		q := resource.MustParse(memRequest)
		c.Resources = v1.ResourceRequirements{Requests: v1.ResourceList{v1.ResourceMemory: q, v1.ResourceCPU: resource.MustParse("10m")},
			Limits: v1.ResourceList{v1.ResourceMemory: q, v1.ResourceCPU: resource.MustParse("10m")}}
	}
	return &v1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, UID: types.UID("uid-" + name)},
		Spec: v1.PodSpec{Containers: []v1.Container{c}}}
}

// TestPressureMemory runs kubelet's manager over a machine with 1 GiB,
// 50 MiB of it available, and a 100Mi threshold: MemoryPressure, the
// BestEffort pod evicted before the Guaranteed one with kubelet's
// message, and BestEffort pods refused.
func TestPressureMemory(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	dir := t.TempDir()
	meminfo := filepath.Join(dir, "meminfo")
	// available = MemFree + Inactive(file) = 50 MiB
	if err := os.WriteFile(meminfo, []byte("MemTotal: 1048576 kB\nMemFree: 40960 kB\nInactive(file): 10240 kB\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	thresholds, err := ParseHard("memory.available<100Mi")
	if err != nil {
		t.Fatal(err)
	}
	guaranteed, bestEffort := pod("guaranteed", "200Mi"), pod("besteffort", "")
	k := &fakeKiller{msgs: map[string]string{}, conds: map[string]*v1.PodCondition{}}
	p, err := NewPressure(ctx, PressureConfig{
		Thresholds: thresholds,
		NodeName:   "n",
		Client:     fake.NewClientset(),
		Summary: &Summary{
			NodeName: "n", NodeFsDir: dir, ImageFsDir: dir, Meminfo: meminfo,
			Cgroups: fakeCgroups{ws: map[string]uint64{"uid-guaranteed": 100 << 20, "uid-besteffort": 10 << 20}},
			Pods: func() ([]*v1.Pod, error) {
				// An evicted pod is no longer active.
				k.mu.Lock()
				defer k.mu.Unlock()
				var out []*v1.Pod
				for _, p := range []*v1.Pod{guaranteed, bestEffort} {
					if _, gone := k.msgs[p.Name]; !gone {
						out = append(out, p)
					}
				}
				return out, nil
			},
			Containers: func(context.Context) (map[string]map[string]string, error) {
				return map[string]map[string]string{"uid-guaranteed": {"c": "id-uid-guaranteed"}, "uid-besteffort": {"c": "id-uid-besteffort"}}, nil
			},
			EmptyDirUsage: func(string, string) (int64, error) { return 0, nil },
		},
		Killer: k,
		Period: 10 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	go p.Run(ctx)
	if err := wait.PollUntilContextTimeout(ctx, 10*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
		k.mu.Lock()
		defer k.mu.Unlock()
		return len(k.killed) >= 2, nil
	}); err != nil {
		t.Fatalf("pods evicted: %v", k.killed)
	}
	if !p.IsUnderMemoryPressure() || p.IsUnderDiskPressure() || p.IsUnderPIDPressure() {
		t.Errorf("pressure memory/disk/pid = %v/%v/%v, want true/false/false", p.IsUnderMemoryPressure(), p.IsUnderDiskPressure(), p.IsUnderPIDPressure())
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.killed[0] != "besteffort" || k.killed[1] != "guaranteed" {
		t.Errorf("evicted %v, want besteffort first", k.killed)
	}
	want := "The node was low on resource: memory. Threshold quantity: 100Mi, available: 50Mi. Container c was using 10Mi, request is 0, has larger consumption of memory. "
	if got := k.msgs["besteffort"]; got != want {
		t.Errorf("message\n got %q\nwant %q", got, want)
	}
	if c := k.conds["besteffort"]; c == nil || c.Type != v1.DisruptionTarget || c.Reason != v1.PodReasonTerminationByKubelet || c.Message != want {
		t.Errorf("condition %+v, want DisruptionTarget TerminationByKubelet with the message", c)
	}
	if r := p.Admit(ctx, &lifecycle.PodAdmitAttributes{Pod: pod("new", "")}); r.Admit || r.Reason != "Evicted" || r.Message != "The node had condition: [MemoryPressure]. " {
		t.Errorf("BestEffort admission = %+v, want refused: Evicted, The node had condition: [MemoryPressure]. ", r)
	}
	if r := p.Admit(ctx, &lifecycle.PodAdmitAttributes{Pod: pod("new", "10Mi")}); !r.Admit {
		t.Errorf("Guaranteed admission = %+v, want admitted", r)
	}
}

func TestNodeMemory(t *testing.T) {
	f := filepath.Join(t.TempDir(), "meminfo")
	if err := os.WriteFile(f, []byte("MemTotal:       1000 kB\nMemFree:         300 kB\nMemAvailable:    700 kB\nInactive(file):  200 kB\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := (&Summary{Meminfo: f}).nodeMemory(metav1.Now())
	if err != nil {
		t.Fatal(err)
	}
	if *m.AvailableBytes != 500*1024 || *m.WorkingSetBytes != 500*1024 || *m.UsageBytes != 700*1024 {
		t.Errorf("available %d, working set %d, usage %d; want 512000, 512000, 716800", *m.AvailableBytes, *m.WorkingSetBytes, *m.UsageBytes)
	}
}
