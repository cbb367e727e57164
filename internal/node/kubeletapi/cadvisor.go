package kubeletapi

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	v1 "k8s.io/api/core/v1"
	"k8s.io/component-base/metrics"
	"k8s.io/klog/v2"
)

// cadvisorLabels are the labels kubelet gives every container series of
// /metrics/cadvisor (pkg/kubelet/server's containerPrometheusLabelsFunc):
// id is the cgroup, name the runtime's container ID.
var cadvisorLabels = []string{"container", "id", "image", "name", "namespace", "pod"}

// machineLabels are cAdvisor's labels of the machine series.
var machineLabels = []string{"machine_id", "system_uuid", "boot_id"}

// The descriptors of cAdvisor's metrics/prometheus.go and
// prometheus_machine.go that the cgroups can fill, with cAdvisor's names,
// help texts and types.
var (
	cadvisorLastSeenDesc = prometheus.NewDesc("container_last_seen",
		"Last time a container was seen by the exporter", cadvisorLabels, nil)
	cadvisorCPUUsageDesc = prometheus.NewDesc("container_cpu_usage_seconds_total",
		"Cumulative cpu time consumed in seconds.", append(cadvisorLabels[:len(cadvisorLabels):len(cadvisorLabels)], "cpu"), nil)
	cadvisorMemoryRSSDesc = prometheus.NewDesc("container_memory_rss",
		"Size of RSS in bytes.", cadvisorLabels, nil)
	cadvisorMemoryUsageDesc = prometheus.NewDesc("container_memory_usage_bytes",
		"Current memory usage in bytes, including all memory regardless of when it was accessed", cadvisorLabels, nil)
	cadvisorMemoryWorkingSetDesc = prometheus.NewDesc("container_memory_working_set_bytes",
		"Current working set in bytes.", cadvisorLabels, nil)
	cadvisorThreadsDesc = prometheus.NewDesc("container_threads",
		"Number of threads running inside the container", cadvisorLabels, nil)
	cadvisorStartTimeDesc = prometheus.NewDesc("container_start_time_seconds",
		"Start time of the container since unix epoch in seconds.", cadvisorLabels, nil)
	cadvisorCPUPeriodDesc = prometheus.NewDesc("container_spec_cpu_period",
		"CPU period of the container.", cadvisorLabels, nil)
	cadvisorCPUQuotaDesc = prometheus.NewDesc("container_spec_cpu_quota",
		"CPU quota of the container.", cadvisorLabels, nil)
	cadvisorCPUSharesDesc = prometheus.NewDesc("container_spec_cpu_shares",
		"CPU share of the container.", cadvisorLabels, nil)
	cadvisorMemoryLimitDesc = prometheus.NewDesc("container_spec_memory_limit_bytes",
		"Memory limit for the container.", cadvisorLabels, nil)
	cadvisorScrapeErrorDesc = prometheus.NewDesc("container_scrape_error",
		"1 if there was an error while getting container metrics, 0 otherwise", nil, nil)

	machineCPUCoresDesc = prometheus.NewDesc("machine_cpu_cores",
		"Number of logical CPU cores.", machineLabels, nil)
	machineMemoryBytesDesc = prometheus.NewDesc("machine_memory_bytes",
		"Amount of memory installed on the machine.", machineLabels, nil)
	machineScrapeErrorDesc = prometheus.NewDesc("machine_scrape_error",
		"1 if there was an error while getting machine metrics, 0 otherwise.", nil, nil)
)

// cadvisorCollector is our cAdvisor: at each scrape it reads the cgroups
// of the node (id "/"), of each running pod (container="") and of each
// running container, labelled as kubelet labels cAdvisor's series.
type cadvisorCollector struct {
	pods  func(context.Context) ([]*v1.Pod, error)
	stats StatsProvider
	// summary gives the filesystem series; nil leaves them out.
	summary SummaryProvider
	now     func() time.Time
}

var _ prometheus.Collector = &cadvisorCollector{}

func (c *cadvisorCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{cadvisorLastSeenDesc, cadvisorCPUUsageDesc, cadvisorMemoryRSSDesc,
		cadvisorMemoryUsageDesc, cadvisorMemoryWorkingSetDesc, cadvisorThreadsDesc, cadvisorStartTimeDesc,
		cadvisorCPUPeriodDesc, cadvisorCPUQuotaDesc, cadvisorCPUSharesDesc, cadvisorMemoryLimitDesc,
		cadvisorScrapeErrorDesc, machineCPUCoresDesc, machineMemoryBytesDesc, machineScrapeErrorDesc} {
		ch <- d
	}
	for _, d := range fsNetDescs {
		ch <- d
	}
}

func (c *cadvisorCollector) Collect(ch chan<- prometheus.Metric) {
	m, err := c.stats.MachineInfo()
	c.collectMachine(ch, m, err)
	var scrapeError float64
	if err := c.collectContainers(ch, m.BootTime); err != nil {
		scrapeError = 1
		klog.Warningf("Couldn't get containers: %s", err)
	}
	ch <- prometheus.MustNewConstMetric(cadvisorScrapeErrorDesc, prometheus.GaugeValue, scrapeError)
}

// collectMachine sends the machine series, as cAdvisor's machine
// collector: without a timestamp, labelled by machine.
func (c *cadvisorCollector) collectMachine(ch chan<- prometheus.Metric, m MachineInfo, err error) {
	var scrapeError float64
	defer func() {
		ch <- prometheus.MustNewConstMetric(machineScrapeErrorDesc, prometheus.GaugeValue, scrapeError)
	}()
	if err != nil {
		scrapeError = 1
		klog.Warningf("Couldn't get machine info: %s", err)
		return
	}
	ch <- prometheus.MustNewConstMetric(machineCPUCoresDesc, prometheus.GaugeValue, float64(m.NumCores), m.MachineID, m.SystemUUID, m.BootID)
	ch <- prometheus.MustNewConstMetric(machineMemoryBytesDesc, prometheus.GaugeValue, float64(m.MemoryCapacity), m.MachineID, m.SystemUUID, m.BootID)
}

// collectContainers sends the series of the node's, the pods' and the
// containers' cgroups. A cgroup that cannot be read (one just gone, or the
// root cgroup on a cgroup v2 host, which has no memory files) has no
// series; only failing to list the pods is an error. boot is the root
// cgroup's start time, zero when unknown.
func (c *cadvisorCollector) collectContainers(ch chan<- prometheus.Metric, boot time.Time) error {
	pods, err := c.pods(context.Background())
	if err != nil {
		return err
	}
	if s, err := c.stats.NodeCPUMemory(); err == nil {
		c.collectCgroup(ch, s, boot, "", "", "", "", "")
	}
	fs := c.fsFigures(context.Background())
	fs.collect(ch, fs.node, []string{"", "/", "", "", "", ""})
	for _, pod := range pods {
		for _, cs := range pod.Status.ContainerStatuses {
			if cs.State.Running == nil || cs.ContainerID == "" {
				continue
			}
			_, id, _ := strings.Cut(cs.ContainerID, "://")
			s, err := c.stats.ContainerCPUMemory(string(pod.UID), id)
			if err != nil {
				continue
			}
			c.collectCgroup(ch, s, cs.State.Running.StartedAt.Time, cs.Name, cs.Image, id, pod.Namespace, pod.Name)
			fs.collect(ch, fs.layers[string(pod.UID)][cs.Name], []string{cs.Name, s.Cgroup, cs.Image, id, pod.Namespace, pod.Name})
		}
		s, err := c.stats.PodCPUMemory(string(pod.UID))
		if err != nil {
			continue
		}
		var started time.Time
		if pod.Status.StartTime != nil {
			started = pod.Status.StartTime.Time
		}
		c.collectCgroup(ch, s, started, "", "", "", pod.Namespace, pod.Name)
		c.collectPodNetwork(ch, string(pod.UID), []string{"", s.Cgroup, "", "", pod.Namespace, pod.Name})
	}
	return nil
}

// collectCgroup sends the series of one cgroup as cAdvisor does for one
// container: the spec series without a timestamp, the usage series at the
// time the cgroup was read.
func (c *cadvisorCollector) collectCgroup(ch chan<- prometheus.Metric, s CPUMemory, started time.Time, container, image, name, namespace, pod string) {
	labels := []string{container, s.Cgroup, image, name, namespace, pod}
	gauge := func(d *prometheus.Desc, v uint64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v), labels...)
	}
	at := func(d *prometheus.Desc, t prometheus.ValueType, v float64, extra ...string) {
		ch <- prometheus.NewMetricWithTimestamp(s.Time, prometheus.MustNewConstMetric(d, t, v, append(labels, extra...)...))
	}
	if !started.IsZero() {
		ch <- prometheus.MustNewConstMetric(cadvisorStartTimeDesc, prometheus.GaugeValue, float64(started.Unix()), labels...)
	}
	if s.CPUPeriod != 0 {
		gauge(cadvisorCPUPeriodDesc, s.CPUPeriod)
		if s.CPUQuota != 0 {
			gauge(cadvisorCPUQuotaDesc, s.CPUQuota)
		}
	}
	if s.CPUShares != 0 {
		gauge(cadvisorCPUSharesDesc, s.CPUShares)
	}
	gauge(cadvisorMemoryLimitDesc, s.MemoryLimitBytes)

	now := c.now()
	ch <- prometheus.NewMetricWithTimestamp(now,
		prometheus.MustNewConstMetric(cadvisorLastSeenDesc, prometheus.GaugeValue, float64(now.Unix()), labels...))
	// cAdvisor leaves out a zero total (no CPU accounting) and, with
	// per-CPU usage off as in kubelet, labels the total cpu="total".
	if s.CPUUsageNanoSeconds > 0 {
		at(cadvisorCPUUsageDesc, prometheus.CounterValue, float64(s.CPUUsageNanoSeconds)/float64(time.Second), "total")
	}
	at(cadvisorMemoryRSSDesc, prometheus.GaugeValue, float64(s.MemoryRSSBytes))
	at(cadvisorMemoryUsageDesc, prometheus.GaugeValue, float64(s.MemoryUsageBytes))
	at(cadvisorMemoryWorkingSetDesc, prometheus.GaugeValue, float64(s.MemoryWorkingSetBytes))
	if s.Pids != 0 {
		at(cadvisorThreadsDesc, prometheus.GaugeValue, float64(s.Pids))
	}
}

// cadvisorMetricsHandler serves /metrics/cadvisor from a registry of its
// own, as kubelet, which registers cAdvisor's collectors raw: their help
// texts carry no stability level.
func (s *Server) cadvisorMetricsHandler() http.Handler {
	return s.cadvisorMetricsHandlerFor(&cadvisorCollector{pods: s.cfg.Provider.RunningPods, stats: s.cfg.Stats, summary: s.cfg.Summary, now: time.Now})
}

func (s *Server) cadvisorMetricsHandlerFor(c *cadvisorCollector) http.Handler {
	reg := metrics.NewKubeRegistry()
	reg.RawMustRegister(c)
	return metrics.HandlerFor(reg, metrics.HandlerOpts{ErrorHandling: metrics.ContinueOnError})
}
