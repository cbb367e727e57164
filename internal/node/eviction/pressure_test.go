package eviction

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/klog/v2/ktesting"
	"k8s.io/kubernetes/pkg/kubelet/lifecycle"
	testingclock "k8s.io/utils/clock/testing"

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
	grace  map[string]time.Duration
	// onKill, if set, runs for each kill with mu held.
	onKill func(pod *v1.Pod)
}

func newFakeKiller() *fakeKiller {
	return &fakeKiller{msgs: map[string]string{}, conds: map[string]*v1.PodCondition{}, grace: map[string]time.Duration{}}
}

func (k *fakeKiller) KillEvicted(_ context.Context, pod *v1.Pod, message string, c *v1.PodCondition, grace time.Duration) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.killed = append(k.killed, pod.Name)
	k.msgs[pod.Name], k.conds[pod.Name], k.grace[pod.Name] = message, c, grace
	if k.onKill != nil {
		k.onKill(pod)
	}
}

func (k *fakeKiller) kills() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return slices.Clone(k.killed)
}

// active returns the pods of pods that k has not killed.
func (k *fakeKiller) active(pods ...*v1.Pod) func() ([]*v1.Pod, error) {
	return func() ([]*v1.Pod, error) {
		k.mu.Lock()
		defer k.mu.Unlock()
		var out []*v1.Pod
		for _, p := range pods {
			if _, gone := k.msgs[p.Name]; !gone {
				out = append(out, p)
			}
		}
		return out, nil
	}
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
	k := newFakeKiller()
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
	if k.grace["besteffort"] != time.Second {
		t.Errorf("grace period of a hard eviction %s, want kubelet's 1s", k.grace["besteffort"])
	}
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

func TestParseThresholds(t *testing.T) {
	tests := []struct {
		name                          string
		hard, soft, grace, reclaim    string
		wantHard, wantSoft, wantGrace string
		wantReclaim, err              string
	}{
		{name: "soft with grace", soft: "memory.available<1.5Gi,nodefs.available<20%", grace: "memory.available=1m30s,nodefs.available=2m",
			wantSoft: "memory.available<1536Mi,nodefs.available<20%", wantGrace: "memory.available=1m30s,nodefs.available=2m0s"},
		{name: "hard and soft of one signal", hard: "memory.available<100Mi", soft: "memory.available<300Mi", grace: "memory.available=10s",
			wantHard: "memory.available<100Mi", wantSoft: "memory.available<300Mi", wantGrace: "memory.available=10s"},
		{name: "minimum reclaim", hard: "imagefs.available<15%", reclaim: "imagefs.available=2Gi",
			wantHard: "imagefs.available<15%", wantReclaim: "imagefs.available=2Gi"},
		{name: "soft without grace", soft: "memory.available<1Gi", err: "grace period must be specified for the soft eviction threshold memory.available"},
		{name: "bad grace", soft: "memory.available<1Gi", grace: "memory.available=soon", err: "soon"},
		{name: "bad reclaim", reclaim: "memory.available=-1Gi", err: "negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var maps []map[string]string
			for _, f := range []struct{ v, sep string }{{tt.hard, "<"}, {tt.soft, "<"}, {tt.grace, "="}, {tt.reclaim, "="}} {
				m, err := ParseMap(f.v, f.sep)
				if err != nil {
					t.Fatal(err)
				}
				maps = append(maps, m)
			}
			got, err := ParseThresholds(maps[0], maps[1], maps[2], maps[3])
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want one with %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			soft, grace, reclaim := FormatSoft(got)
			if h := FormatThresholds(got); h != tt.wantHard || soft != tt.wantSoft || grace != tt.wantGrace || reclaim != tt.wantReclaim {
				t.Errorf("got hard %q soft %q grace %q reclaim %q, want %q %q %q %q", h, soft, grace, reclaim, tt.wantHard, tt.wantSoft, tt.wantGrace, tt.wantReclaim)
			}
		})
	}
}

// memoryNode is a Summary of a 1 GiB machine whose available memory is
// in the meminfo file it returns, with pods' working sets ws.
func memoryNode(t *testing.T, availMiB int, ws map[string]uint64, pods func() ([]*v1.Pod, error)) (*Summary, func(availMiB int)) {
	dir := t.TempDir()
	meminfo := filepath.Join(dir, "meminfo")
	set := func(availMiB int) {
		if err := os.WriteFile(meminfo, fmt.Appendf(nil, "MemTotal: 1048576 kB\nMemFree: %d kB\nInactive(file): 0 kB\n", availMiB*1024), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	set(availMiB)
	return &Summary{
		NodeName: "n", NodeFsDir: dir, ImageFsDir: dir, Meminfo: meminfo,
		Cgroups: fakeCgroups{ws: ws}, Pods: pods,
		Containers: func(context.Context) (map[string]map[string]string, error) {
			all, err := pods()
			out := map[string]map[string]string{}
			for _, p := range all {
				out[string(p.UID)] = map[string]string{"c": "id-" + string(p.UID)}
			}
			return out, err
		},
		EmptyDirUsage: func(string, string) (int64, error) { return 0, nil },
	}, set
}

// TestPressureSoftThreshold: a soft threshold sets its condition at once
// (as kubelet, which reports conditions ignoring grace periods) but
// evicts nobody until it has held for its grace period (the manager's
// clock is a fake one that only the test moves); then it evicts as a hard
// one does, giving the pod its terminationGracePeriodSeconds capped at
// --eviction-max-pod-grace-period, as kubelet.
func TestPressureSoftThreshold(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	maps := []map[string]string{{"memory.available": "100Mi"}, {"memory.available": "300Mi"}, {"memory.available": "1m"}}
	thresholds, err := ParseThresholds(maps[0], maps[1], maps[2], nil)
	if err != nil {
		t.Fatal(err)
	}
	long, short := pod("long", ""), pod("short", "200Mi")
	long.Spec.TerminationGracePeriodSeconds = new(int64(30))
	short.Spec.TerminationGracePeriodSeconds = new(int64(2))
	k := newFakeKiller()
	var syncs atomic.Int32
	active := k.active(long, short)
	summary, _ := memoryNode(t, 200, map[string]uint64{"uid-long": 50 << 20, "uid-short": 100 << 20}, func() ([]*v1.Pod, error) {
		syncs.Add(1)
		return active()
	})
	clk := testingclock.NewFakeClock(time.Now())
	p, err := NewPressure(ctx, PressureConfig{
		Thresholds: thresholds, MaxPodGracePeriodSeconds: 5,
		NodeName: "n", Client: fake.NewClientset(), Summary: summary, Killer: k,
		Period: 10 * time.Millisecond, Clock: clk,
	})
	if err != nil {
		t.Fatal(err)
	}
	go p.Run(ctx)
	// 200Mi available: past the soft threshold, not the hard one. The
	// manager looks many times; the grace period never passes.
	if err := wait.PollUntilContextTimeout(ctx, 10*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
		return syncs.Load() >= 20, nil
	}); err != nil {
		t.Fatal(err)
	}
	if got := k.kills(); len(got) != 0 || !p.IsUnderMemoryPressure() {
		t.Fatalf("before the grace period: evicted %v, MemoryPressure %v; want none, true", got, p.IsUnderMemoryPressure())
	}
	// Past the grace period: both pods go (evicting one leaves the
	// available memory as it is).
	clk.Step(61 * time.Second)
	if err := wait.PollUntilContextTimeout(ctx, 10*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
		clk.Step(time.Second) // the manager's wait for the evicted pod's cleanup
		return len(k.kills()) >= 2, nil
	}); err != nil {
		t.Fatalf("pods evicted past the grace period: %v", k.kills())
	}
	if !p.IsUnderMemoryPressure() {
		t.Error("no MemoryPressure past the soft threshold's grace period")
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.grace["long"] != 5*time.Second || k.grace["short"] != 2*time.Second {
		t.Errorf("grace periods long %s short %s, want 5s (capped by --eviction-max-pod-grace-period) and 2s (the pod's)", k.grace["long"], k.grace["short"])
	}
	want := "The node was low on resource: memory. Threshold quantity: 300Mi, available: 200Mi. Container c was using 50Mi, request is 0, has larger consumption of memory. "
	if k.msgs["long"] != want {
		t.Errorf("message\n got %q\nwant %q", k.msgs["long"], want)
	}
}

// TestPressureMinimumReclaim: once a threshold is crossed, kubelet keeps
// evicting until the signal is past the threshold plus its minimum
// reclaim. Without --eviction-minimum-reclaim the first eviction, which
// brings memory.available above the threshold, is the only one.
func TestPressureMinimumReclaim(t *testing.T) {
	for _, tt := range []struct {
		name    string
		reclaim map[string]string
		want    []string
	}{
		{name: "none", want: []string{"besteffort"}},
		{name: "200Mi", reclaim: map[string]string{"memory.available": "200Mi"}, want: []string{"besteffort", "guaranteed"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, ctx := ktesting.NewTestContext(t)
			ctx, cancel := context.WithCancel(ctx)
			defer cancel()
			thresholds, err := ParseThresholds(map[string]string{"memory.available": "100Mi"}, nil, nil, tt.reclaim)
			if err != nil {
				t.Fatal(err)
			}
			guaranteed, bestEffort := pod("guaranteed", "200Mi"), pod("besteffort", "")
			k := newFakeKiller()
			var syncs atomic.Int32
			active := k.active(guaranteed, bestEffort)
			summary, setAvail := memoryNode(t, 50, map[string]uint64{"uid-guaranteed": 100 << 20, "uid-besteffort": 100 << 20}, func() ([]*v1.Pod, error) {
				syncs.Add(1)
				return active()
			})
			// Each eviction frees what the pod used: 150Mi after the
			// first, above the threshold, below threshold + 200Mi.
			avail := 50
			k.onKill = func(*v1.Pod) { avail += 100; setAvail(avail) }
			p, err := NewPressure(ctx, PressureConfig{
				Thresholds: thresholds, NodeName: "n", Client: fake.NewClientset(), Summary: summary, Killer: k,
				Period: 10 * time.Millisecond,
			})
			if err != nil {
				t.Fatal(err)
			}
			go p.Run(ctx)
			if err := wait.PollUntilContextTimeout(ctx, 10*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
				return len(k.kills()) >= len(tt.want), nil
			}); err != nil {
				t.Fatalf("evicted %v, want %v", k.kills(), tt.want)
			}
			// The manager looks again several times after the last
			// eviction it should make.
			n := syncs.Load()
			if err := wait.PollUntilContextTimeout(ctx, 10*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
				return syncs.Load() >= n+10, nil
			}); err != nil {
				t.Fatal(err)
			}
			if got := k.kills(); !slices.Equal(got, tt.want) {
				t.Errorf("evicted %v, want %v", got, tt.want)
			}
		})
	}
}

// TestPressureImageGCBeforeEviction: under imagefs pressure kubelet's
// manager first has image GC free space (here, on a real 16 MiB tmpfs,
// by deleting a file), and evicts no pod when that resolves the pressure;
// when GC frees nothing, it evicts.
func TestPressureImageGCBeforeEviction(t *testing.T) {
	for _, tt := range []struct {
		name      string
		frees     bool
		wantKills int
	}{
		{name: "GC frees enough", frees: true, wantKills: 0},
		{name: "GC frees nothing", frees: false, wantKills: 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, ctx := ktesting.NewTestContext(t)
			ctx, cancel := context.WithCancel(ctx)
			defer cancel()
			imageFs := t.TempDir()
			if err := unix.Mount("tmpfs", imageFs, "tmpfs", 0, "size=16m"); err != nil {
				t.Skipf("mount tmpfs (needs root): %v", err)
			}
			t.Cleanup(func() { _ = unix.Unmount(imageFs, unix.MNT_DETACH) })
			filler := filepath.Join(imageFs, "unused-image")
			f, err := os.Create(filler)
			if err != nil {
				t.Fatal(err)
			}
			if err := unix.Fallocate(int(f.Fd()), 0, 0, 15<<20); err != nil {
				t.Fatal(err)
			}
			f.Close()
			thresholds, err := ParseHard("imagefs.available<15%")
			if err != nil {
				t.Fatal(err)
			}
			k := newFakeKiller()
			var syncs, gcs atomic.Int32
			active := k.active(pod("p", ""))
			summary, _ := memoryNode(t, 500, map[string]uint64{"uid-p": 10 << 20}, func() ([]*v1.Pod, error) {
				syncs.Add(1)
				return active()
			})
			summary.ImageFsDir = imageFs
			p, err := NewPressure(ctx, PressureConfig{
				Thresholds: thresholds, NodeName: "n", Client: fake.NewClientset(), Summary: summary, Killer: k,
				Period: 10 * time.Millisecond,
				ImageGC: func(context.Context) error {
					gcs.Add(1)
					if tt.frees {
						return os.Remove(filler)
					}
					return nil
				},
			})
			if err != nil {
				t.Fatal(err)
			}
			go p.Run(ctx)
			if err := wait.PollUntilContextTimeout(ctx, 10*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
				return gcs.Load() >= 1 && len(k.kills()) >= tt.wantKills && syncs.Load() >= 10, nil
			}); err != nil {
				t.Fatalf("image GC calls %d, evicted %v", gcs.Load(), k.kills())
			}
			if got := len(k.kills()); got != tt.wantKills {
				t.Errorf("evicted %v, want %d pods", k.kills(), tt.wantKills)
			}
			if !p.IsUnderDiskPressure() {
				t.Error("no DiskPressure with imagefs past its threshold")
			}
		})
	}
}
