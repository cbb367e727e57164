package kubeletapi

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	statsapi "k8s.io/kubelet/pkg/apis/stats/v1alpha1"

	"github.com/pocketkube/pocketkube/internal/node/network"
)

// PodNetwork is the optional ability of a StatsProvider to read the
// interfaces of a pod's network namespace; /metrics/cadvisor has the
// network series with it.
type PodNetwork interface {
	PodInterfaces(podUID string) ([]network.Interface, error)
}

// FsDevice is the optional ability of a StatsProvider to name the device
// of the node's filesystem (nodefs), the device label of the filesystem
// series.
type FsDevice interface {
	FsDevice() string
}

// The descriptors of cAdvisor's network and filesystem series
// (metrics/prometheus.go): the network ones of a pod's cgroup
// (container=""), one per interface; the filesystem ones of the node
// (id="/") and of each container's writable layer.
var (
	netLabels = append(cadvisorLabels[:len(cadvisorLabels):len(cadvisorLabels)], "interface")
	fsLabels  = append(cadvisorLabels[:len(cadvisorLabels):len(cadvisorLabels)], "device")

	cadvisorNetRxBytesDesc = prometheus.NewDesc("container_network_receive_bytes_total",
		"Cumulative count of bytes received", netLabels, nil)
	cadvisorNetRxPacketsDesc = prometheus.NewDesc("container_network_receive_packets_total",
		"Cumulative count of packets received", netLabels, nil)
	cadvisorNetRxErrorsDesc = prometheus.NewDesc("container_network_receive_errors_total",
		"Cumulative count of errors encountered while receiving", netLabels, nil)
	cadvisorNetTxBytesDesc = prometheus.NewDesc("container_network_transmit_bytes_total",
		"Cumulative count of bytes transmitted", netLabels, nil)
	cadvisorNetTxPacketsDesc = prometheus.NewDesc("container_network_transmit_packets_total",
		"Cumulative count of packets transmitted", netLabels, nil)
	cadvisorNetTxErrorsDesc = prometheus.NewDesc("container_network_transmit_errors_total",
		"Cumulative count of errors encountered while transmitting", netLabels, nil)
	cadvisorFsUsageDesc = prometheus.NewDesc("container_fs_usage_bytes",
		"Number of bytes that are consumed by the container on this filesystem.", fsLabels, nil)
	cadvisorFsLimitDesc = prometheus.NewDesc("container_fs_limit_bytes",
		"Number of bytes that can be consumed by the container on this filesystem.", fsLabels, nil)
)

var fsNetDescs = []*prometheus.Desc{cadvisorNetRxBytesDesc, cadvisorNetRxPacketsDesc, cadvisorNetRxErrorsDesc,
	cadvisorNetTxBytesDesc, cadvisorNetTxPacketsDesc, cadvisorNetTxErrorsDesc, cadvisorFsUsageDesc, cadvisorFsLimitDesc}

// collectPodNetwork sends the network series of a pod's cgroup, labelled
// as its other series (labels), when the StatsProvider reads namespaces.
func (c *cadvisorCollector) collectPodNetwork(ch chan<- prometheus.Metric, podUID string, labels []string) {
	pn, ok := c.stats.(PodNetwork)
	if !ok {
		return
	}
	ifs, err := pn.PodInterfaces(podUID)
	if err != nil {
		return
	}
	now := c.now()
	for _, i := range ifs {
		l := append(labels[:len(labels):len(labels)], i.Name)
		for d, v := range map[*prometheus.Desc]uint64{
			cadvisorNetRxBytesDesc: i.RxBytes, cadvisorNetRxPacketsDesc: i.RxPackets, cadvisorNetRxErrorsDesc: i.RxErrors,
			cadvisorNetTxBytesDesc: i.TxBytes, cadvisorNetTxPacketsDesc: i.TxPackets, cadvisorNetTxErrorsDesc: i.TxErrors,
		} {
			ch <- prometheus.NewMetricWithTimestamp(now, prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), l...))
		}
	}
}

// fsFigures are the filesystem figures of a scrape, from the summary.
type fsFigures struct {
	device string
	node   *statsapi.FsStats
	// layers are the containers' writable layers: pod UID → name.
	layers map[string]map[string]*statsapi.FsStats
}

// fsFigures reads the summary for the filesystem series; without a
// summary there are none.
func (c *cadvisorCollector) fsFigures(ctx context.Context) fsFigures {
	var f fsFigures
	if c.summary == nil {
		return f
	}
	if d, ok := c.stats.(FsDevice); ok {
		f.device = d.FsDevice()
	}
	s, err := c.summary.Get(ctx, false)
	if err != nil {
		return f
	}
	f.node = s.Node.Fs
	f.layers = map[string]map[string]*statsapi.FsStats{}
	for i := range s.Pods {
		p := &s.Pods[i]
		m := map[string]*statsapi.FsStats{}
		for j := range p.Containers {
			m[p.Containers[j].Name] = p.Containers[j].Rootfs
		}
		f.layers[p.PodRef.UID] = m
	}
	return f
}

// collectFs sends the usage and limit of fs, labelled as its container's
// other series (labels), at the time it was measured.
func (f fsFigures) collect(ch chan<- prometheus.Metric, fs *statsapi.FsStats, labels []string) {
	if fs == nil || fs.UsedBytes == nil || fs.CapacityBytes == nil {
		return
	}
	l := append(labels[:len(labels):len(labels)], f.device)
	at := fs.Time.Time
	if at.IsZero() {
		at = time.Now()
	}
	ch <- prometheus.NewMetricWithTimestamp(at, prometheus.MustNewConstMetric(cadvisorFsUsageDesc, prometheus.GaugeValue, float64(*fs.UsedBytes), l...))
	ch <- prometheus.NewMetricWithTimestamp(at, prometheus.MustNewConstMetric(cadvisorFsLimitDesc, prometheus.GaugeValue, float64(*fs.CapacityBytes), l...))
}
