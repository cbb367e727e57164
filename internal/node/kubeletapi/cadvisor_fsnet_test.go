package kubeletapi

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	statsapi "k8s.io/kubelet/pkg/apis/stats/v1alpha1"

	"github.com/pocketkube/pocketkube/internal/node/network"
)

// netStats is tableStats that reads pods' interfaces and names nodefs.
type netStats struct {
	*tableStats
	ifs map[string][]network.Interface
}

var (
	_ PodNetwork = netStats{}
	_ FsDevice   = netStats{}
)

func (n netStats) PodInterfaces(uid string) ([]network.Interface, error) { return n.ifs[uid], nil }
func (n netStats) FsDevice() string                                      { return "/dev/vda1" }

type staticSummary struct{ s *statsapi.Summary }

func (s staticSummary) Get(context.Context, bool) (*statsapi.Summary, error) { return s.s, nil }
func (s staticSummary) GetCPUAndMemoryStats(context.Context) (*statsapi.Summary, error) {
	return s.s, nil
}

// The network series of a pod's cgroup, one per interface, and the
// filesystem series of the node and of each container's writable layer,
// with cAdvisor's names, help texts, types and labels.
func TestCadvisorNetworkAndFsMetrics(t *testing.T) {
	at := time.Unix(1700000000, 0)
	started := metav1.NewTime(time.Unix(1690000000, 0))
	pod := &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "ns", UID: "uid-1"},
		Status: v1.PodStatus{StartTime: &started, ContainerStatuses: []v1.ContainerStatus{
			{Name: "main", Image: "busybox", ContainerID: "runc://abc",
				State: v1.ContainerState{Running: &v1.ContainerStateRunning{StartedAt: started}}},
		}},
	}
	stats := netStats{
		tableStats: &tableStats{
			pods:       map[string]CPUMemory{"uid-1": {Cgroup: "/kubepods/poduid-1", Time: at}},
			containers: map[string]CPUMemory{"uid-1/abc": {Cgroup: "/kubepods/poduid-1/abc", Time: at}},
		},
		ifs: map[string][]network.Interface{"uid-1": {{Name: "eth0", RxBytes: 100, RxPackets: 2, RxErrors: 1, TxBytes: 200, TxPackets: 3, TxErrors: 4}}},
	}
	u := func(v uint64) *uint64 { return &v }
	sum := &statsapi.Summary{
		Node: statsapi.NodeStats{Fs: &statsapi.FsStats{Time: metav1.NewTime(at), UsedBytes: u(1000), CapacityBytes: u(5000)}},
		Pods: []statsapi.PodStats{{PodRef: statsapi.PodReference{Name: "web", Namespace: "ns", UID: "uid-1"},
			Containers: []statsapi.ContainerStats{{Name: "main", Rootfs: &statsapi.FsStats{Time: metav1.NewTime(at), UsedBytes: u(300), CapacityBytes: u(5000)}}}}},
	}
	h := (&Server{}).cadvisorMetricsHandlerFor(&cadvisorCollector{
		pods:    func(context.Context) ([]*v1.Pod, error) { return []*v1.Pod{pod}, nil },
		stats:   stats,
		summary: staticSummary{sum},
		now:     func() time.Time { return at },
	})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics/cadvisor", nil))
	text := rec.Body.String()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatalf("parse: %v\n%s", err, text)
	}
	const (
		podL  = "container=,id=/kubepods/poduid-1,image=,interface=eth0,name=,namespace=ns,pod=web"
		rootL = "container=,device=/dev/vda1,id=/,image=,name=,namespace=,pod="
		mainL = "container=main,device=/dev/vda1,id=/kubepods/poduid-1/abc,image=busybox,name=abc,namespace=ns,pod=web"
	)
	for _, tc := range []struct {
		family, help, labels string
		want                 float64
	}{
		{"container_network_receive_bytes_total", "Cumulative count of bytes received", podL, 100},
		{"container_network_receive_packets_total", "Cumulative count of packets received", podL, 2},
		{"container_network_receive_errors_total", "Cumulative count of errors encountered while receiving", podL, 1},
		{"container_network_transmit_bytes_total", "Cumulative count of bytes transmitted", podL, 200},
		{"container_network_transmit_packets_total", "Cumulative count of packets transmitted", podL, 3},
		{"container_network_transmit_errors_total", "Cumulative count of errors encountered while transmitting", podL, 4},
		{"container_fs_usage_bytes", "Number of bytes that are consumed by the container on this filesystem.", rootL, 1000},
		{"container_fs_limit_bytes", "Number of bytes that can be consumed by the container on this filesystem.", rootL, 5000},
		{"container_fs_usage_bytes", "Number of bytes that are consumed by the container on this filesystem.", mainL, 300},
		{"container_fs_limit_bytes", "Number of bytes that can be consumed by the container on this filesystem.", mainL, 5000},
	} {
		if f := fams[tc.family]; f == nil || f.GetHelp() != tc.help {
			t.Errorf("family %s: %v, want help %q", tc.family, f, tc.help)
			continue
		}
		values, stamps := series(fams, tc.family)
		if v, ok := values[tc.labels]; !ok || v != tc.want || stamps[tc.labels] != at.UnixMilli() {
			t.Errorf("%s{%s} = %v (present %v, at %d), want %v at %d; have %v", tc.family, tc.labels, v, ok, stamps[tc.labels], tc.want, at.UnixMilli(), values)
		}
	}
	if fams["container_network_receive_bytes_total"].GetType().String() != "COUNTER" || fams["container_fs_usage_bytes"].GetType().String() != "GAUGE" {
		t.Errorf("types: network %v, fs %v", fams["container_network_receive_bytes_total"].GetType(), fams["container_fs_usage_bytes"].GetType())
	}
}
