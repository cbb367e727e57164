package kubeletapi

import (
	"context"
	"errors"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/component-base/metrics"
)

// tableStats answers from tables keyed by pod UID and container ID, and
// fails for anything else, as the runtime does for a gone cgroup.
type tableStats struct {
	node       CPUMemory
	nodeErr    error
	pods       map[string]CPUMemory
	containers map[string]CPUMemory
	machine    MachineInfo
	machineErr error
}

func (f *tableStats) NodeCPUMemory() (CPUMemory, error) { return f.node, f.nodeErr }
func (f *tableStats) MachineInfo() (MachineInfo, error) { return f.machine, f.machineErr }
func (f *tableStats) PodCPUMemory(uid string) (CPUMemory, error) {
	if s, ok := f.pods[uid]; ok {
		return s, nil
	}
	return CPUMemory{}, errors.New("no pod cgroup")
}
func (f *tableStats) ContainerCPUMemory(uid, id string) (CPUMemory, error) {
	if s, ok := f.containers[uid+"/"+id]; ok {
		return s, nil
	}
	return CPUMemory{}, errors.New("no container cgroup")
}

func scrape(t *testing.T, pods []*v1.Pod, stats StatsProvider) string {
	t.Helper()
	reg := metrics.NewKubeRegistry()
	reg.CustomMustRegister(&resourceMetricsCollector{pods: func(context.Context) ([]*v1.Pod, error) { return pods, nil }, stats: stats})
	rec := httptest.NewRecorder()
	metrics.HandlerFor(reg, metrics.HandlerOpts{}).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics/resource", nil))
	b, _ := io.ReadAll(rec.Body)
	return string(b)
}

func TestResourceMetricsCollector(t *testing.T) {
	at := time.Unix(1700000000, 0)
	started := metav1.NewTime(time.Unix(1690000000, 500000000))
	pod := &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "ns", UID: "uid-1"},
		Status: v1.PodStatus{ContainerStatuses: []v1.ContainerStatus{
			{Name: "main", ContainerID: "runc://abc", State: v1.ContainerState{Running: &v1.ContainerStateRunning{StartedAt: started}}},
			{Name: "done", ContainerID: "runc://def", State: v1.ContainerState{Terminated: &v1.ContainerStateTerminated{}}},
			// Running in the status, but its cgroup is gone: no series.
			{Name: "gone", ContainerID: "runc://ghi", State: v1.ContainerState{Running: &v1.ContainerStateRunning{StartedAt: started}}},
		}},
	}
	stats := &tableStats{
		node:       CPUMemory{Time: at, CPUUsageNanoSeconds: 12_500_000_000, MemoryWorkingSetBytes: 1 << 30},
		pods:       map[string]CPUMemory{"uid-1": {Time: at, CPUUsageNanoSeconds: 3_000_000_000, MemoryWorkingSetBytes: 8 << 20}},
		containers: map[string]CPUMemory{"uid-1/abc": {Time: at, CPUUsageNanoSeconds: 2_000_000_000, MemoryWorkingSetBytes: 4 << 20}, "uid-1/def": {Time: at}},
	}
	out := scrape(t, []*v1.Pod{pod}, stats)
	for _, want := range []string{
		"# HELP node_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the node in core-seconds",
		"node_cpu_usage_seconds_total 12.5 1700000000000",
		"node_memory_working_set_bytes 1.073741824e+09 1700000000000",
		`container_cpu_usage_seconds_total{container="main",namespace="ns",pod="web"} 2 1700000000000`,
		`container_memory_working_set_bytes{container="main",namespace="ns",pod="web"} 4.194304e+06 1700000000000`,
		`container_start_time_seconds{container="main",namespace="ns",pod="web"} 1.6900000005e+09`,
		`pod_cpu_usage_seconds_total{namespace="ns",pod="web"} 3 1700000000000`,
		`pod_memory_working_set_bytes{namespace="ns",pod="web"} 8.388608e+06 1700000000000`,
		"resource_scrape_error 0",
	} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("missing %q in\n%s", want, out)
		}
	}
	for _, absent := range []string{`container="done"`, `container="gone"`} {
		if strings.Contains(out, absent) {
			t.Errorf("series for %s in\n%s", absent, out)
		}
	}

	stats.nodeErr = errors.New("no root cgroup")
	out = scrape(t, []*v1.Pod{pod}, stats)
	if !strings.Contains(out, "resource_scrape_error 1\n") || strings.Contains(out, "container_cpu_usage_seconds_total{") {
		t.Errorf("node stats failing: want resource_scrape_error 1 and no series, got\n%s", out)
	}
}
