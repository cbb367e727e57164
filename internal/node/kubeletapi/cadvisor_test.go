package kubeletapi

import (
	"context"
	"errors"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// scrapeCadvisor serves /metrics/cadvisor for pods and stats as the server
// does and parses the text it writes.
func scrapeCadvisor(t *testing.T, pods []*v1.Pod, podsErr error, stats StatsProvider, now time.Time) (string, map[string]*dto.MetricFamily) {
	t.Helper()
	h := (&Server{}).cadvisorMetricsHandlerFor(&cadvisorCollector{
		pods:  func(context.Context) ([]*v1.Pod, error) { return pods, podsErr },
		stats: stats,
		now:   func() time.Time { return now },
	})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics/cadvisor", nil))
	text := rec.Body.String()
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatalf("parse /metrics/cadvisor: %v\n%s", err, text)
	}
	return text, families
}

// series returns the labels → value of family name's series, labels
// written as Prometheus writes them, and its timestamps in ms.
func series(fams map[string]*dto.MetricFamily, name string) (values map[string]float64, stamps map[string]int64) {
	values, stamps = map[string]float64{}, map[string]int64{}
	f := fams[name]
	if f == nil {
		return values, stamps
	}
	for _, m := range f.GetMetric() {
		var ls []string
		for _, l := range m.GetLabel() {
			ls = append(ls, l.GetName()+"="+l.GetValue())
		}
		key := strings.Join(ls, ",")
		switch {
		case m.Counter != nil:
			values[key] = m.GetCounter().GetValue()
		case m.Gauge != nil:
			values[key] = m.GetGauge().GetValue()
		}
		stamps[key] = m.GetTimestampMs()
	}
	return values, stamps
}

func TestCadvisorMetrics(t *testing.T) {
	at := time.Unix(1700000000, 0)
	now := time.Unix(1700000005, 0)
	started := metav1.NewTime(time.Unix(1690000000, 0))
	podStarted := metav1.NewTime(time.Unix(1689999990, 0))
	pod := &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "ns", UID: "uid-1"},
		Status: v1.PodStatus{StartTime: &podStarted, ContainerStatuses: []v1.ContainerStatus{
			{Name: "main", Image: "docker.io/library/busybox:1.36", ContainerID: "runc://abc",
				State: v1.ContainerState{Running: &v1.ContainerStateRunning{StartedAt: started}}},
			{Name: "done", ContainerID: "runc://def", State: v1.ContainerState{Terminated: &v1.ContainerStateTerminated{}}},
			// Running in the status, but its cgroup is gone: no series.
			{Name: "gone", ContainerID: "runc://ghi", State: v1.ContainerState{Running: &v1.ContainerStateRunning{StartedAt: started}}},
		}},
	}
	stats := &tableStats{
		node: CPUMemory{Cgroup: "/", Time: at, CPUUsageNanoSeconds: 12_500_000_000,
			MemoryUsageBytes: 3 << 30, MemoryWorkingSetBytes: 2 << 30, MemoryRSSBytes: 1 << 30, Pids: 300},
		pods: map[string]CPUMemory{"uid-1": {Cgroup: "/kubepods/burstable/poduid-1", Time: at, CPUUsageNanoSeconds: 3_000_000_000,
			MemoryUsageBytes: 9 << 20, MemoryWorkingSetBytes: 8 << 20, MemoryRSSBytes: 7 << 20, MemoryLimitBytes: 64 << 20, Pids: 2,
			CPUPeriod: 100000, CPUQuota: 50000, CPUShares: 512}},
		containers: map[string]CPUMemory{
			"uid-1/abc": {Cgroup: "/kubepods/burstable/poduid-1/abc", Time: at, CPUUsageNanoSeconds: 2_000_000_000,
				MemoryUsageBytes: 5 << 20, MemoryWorkingSetBytes: 4 << 20, MemoryRSSBytes: 3 << 20, MemoryLimitBytes: 64 << 20, Pids: 1,
				// No quota: cAdvisor leaves container_spec_cpu_quota out.
				CPUPeriod: 100000, CPUShares: 512},
			"uid-1/def": {Time: at},
		},
		machine: MachineInfo{NumCores: 2, MemoryCapacity: 4 << 30, MachineID: "mid", SystemUUID: "uuid", BootID: "boot", BootTime: time.Unix(1600000000, 0)},
	}
	text, fams := scrapeCadvisor(t, []*v1.Pod{pod}, nil, stats, now)

	// cAdvisor's help texts and types, without a stability level: kubelet
	// registers cAdvisor's collectors raw.
	for _, want := range []string{
		"# HELP container_cpu_usage_seconds_total Cumulative cpu time consumed in seconds.\n# TYPE container_cpu_usage_seconds_total counter\n",
		"# HELP container_memory_working_set_bytes Current working set in bytes.\n# TYPE container_memory_working_set_bytes gauge\n",
		"# HELP container_memory_usage_bytes Current memory usage in bytes, including all memory regardless of when it was accessed\n",
		"# HELP container_spec_memory_limit_bytes Memory limit for the container.\n",
		"# HELP machine_cpu_cores Number of logical CPU cores.\n",
		"# HELP machine_memory_bytes Amount of memory installed on the machine.\n",
		"# HELP container_threads Number of threads running inside the container\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("missing %q in\n%s", want, text)
		}
	}

	const (
		root  = "container=,id=/,image=,name=,namespace=,pod="
		podL  = "container=,id=/kubepods/burstable/poduid-1,image=,name=,namespace=ns,pod=web"
		mainL = "container=main,id=/kubepods/burstable/poduid-1/abc,image=docker.io/library/busybox:1.36,name=abc,namespace=ns,pod=web"
	)
	ms := at.UnixMilli()
	for _, tc := range []struct {
		family string
		labels string
		value  float64
		stamp  int64 // 0: none
	}{
		{"container_cpu_usage_seconds_total", root + ",cpu=total", 12.5, ms},
		{"container_cpu_usage_seconds_total", podL + ",cpu=total", 3, ms},
		{"container_cpu_usage_seconds_total", mainL + ",cpu=total", 2, ms},
		{"container_memory_working_set_bytes", mainL, 4 << 20, ms},
		{"container_memory_working_set_bytes", podL, 8 << 20, ms},
		{"container_memory_working_set_bytes", root, 2 << 30, ms},
		{"container_memory_usage_bytes", mainL, 5 << 20, ms},
		{"container_memory_rss", mainL, 3 << 20, ms},
		{"container_threads", mainL, 1, ms},
		{"container_threads", root, 300, ms},
		{"container_last_seen", mainL, float64(now.Unix()), now.UnixMilli()},
		{"container_start_time_seconds", mainL, float64(started.Unix()), 0},
		{"container_start_time_seconds", podL, float64(podStarted.Unix()), 0},
		{"container_start_time_seconds", root, 1600000000, 0},
		{"container_spec_memory_limit_bytes", mainL, 64 << 20, 0},
		{"container_spec_memory_limit_bytes", root, 0, 0},
		{"container_spec_cpu_period", mainL, 100000, 0},
		{"container_spec_cpu_shares", mainL, 512, 0},
		{"container_spec_cpu_quota", podL, 50000, 0},
		{"container_scrape_error", "", 0, 0},
		{"machine_cpu_cores", "machine_id=mid,system_uuid=uuid,boot_id=boot", 2, 0},
		{"machine_memory_bytes", "machine_id=mid,system_uuid=uuid,boot_id=boot", 4 << 30, 0},
		{"machine_scrape_error", "", 0, 0},
	} {
		values, stamps := series(fams, tc.family)
		// Prometheus writes labels sorted; so does the test's key.
		key := sortedLabels(tc.labels)
		got, ok := values[key]
		if !ok {
			t.Errorf("%s{%s}: no series; have %v", tc.family, key, values)
			continue
		}
		if got != tc.value || stamps[key] != tc.stamp {
			t.Errorf("%s{%s} = %v @%d, want %v @%d", tc.family, key, got, stamps[key], tc.value, tc.stamp)
		}
	}
	if v, _ := series(fams, "container_spec_cpu_quota"); len(v) != 1 {
		t.Errorf("container_spec_cpu_quota: want only the pod's series, have %v", v)
	}
	for _, absent := range []string{`container="done"`, `container="gone"`, "id=\"\""} {
		if strings.Contains(text, absent) {
			t.Errorf("series with %s in\n%s", absent, text)
		}
	}

	// The root cgroup unreadable (cgroup v2 has no memory files there):
	// its series go, the pods' stay.
	stats.nodeErr = errors.New("no root cgroup")
	_, fams = scrapeCadvisor(t, []*v1.Pod{pod}, nil, stats, now)
	if v, _ := series(fams, "container_memory_working_set_bytes"); len(v) != 2 || v[sortedLabels(root)] != 0 {
		t.Errorf("root cgroup failing: working set series %v, want the pod's and the container's", v)
	}

	// The pods cannot be listed: container_scrape_error 1; the machine
	// failing: machine_scrape_error 1 and no machine series.
	stats.machineErr = errors.New("no machine")
	_, fams = scrapeCadvisor(t, nil, errors.New("no pods"), stats, now)
	for name, want := range map[string]float64{"container_scrape_error": 1, "machine_scrape_error": 1} {
		if v, _ := series(fams, name); v[""] != want {
			t.Errorf("%s = %v, want %v", name, v, want)
		}
	}
	for _, name := range []string{"machine_cpu_cores", "container_memory_working_set_bytes"} {
		if v, _ := series(fams, name); len(v) != 0 {
			t.Errorf("%s with pods and machine failing: %v", name, v)
		}
	}
}

// sortedLabels sorts "k=v,k=v" by label name.
func sortedLabels(s string) string {
	if s == "" {
		return ""
	}
	ls := strings.Split(s, ",")
	slices.Sort(ls)
	return strings.Join(ls, ",")
}
