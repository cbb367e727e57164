package kubeletapi

import (
	"context"
	"net/http"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/component-base/metrics"
	"k8s.io/klog/v2"
)

// CPUMemory is what the cgroup of the node, a pod or a container gives:
// its CPU and memory usage read at Time, and its limits.
type CPUMemory struct {
	// Cgroup is the cgroup's path, "/" for the node's root cgroup:
	// cAdvisor's id label.
	Cgroup string
	Time   time.Time
	// CPUUsageNanoSeconds is the cumulative CPU time in nanoseconds.
	CPUUsageNanoSeconds uint64
	// MemoryUsageBytes is the memory charged to the cgroup, page cache
	// included.
	MemoryUsageBytes uint64
	// MemoryWorkingSetBytes is kubelet's working set: usage less the
	// inactive file cache.
	MemoryWorkingSetBytes uint64
	// MemoryRSSBytes is the anonymous memory (total_rss, anon).
	MemoryRSSBytes uint64
	// MemoryLimitBytes is the memory limit; 0 when there is none.
	MemoryLimitBytes uint64
	// Pids is the number of tasks (threads) in the cgroup; 0 when unknown.
	Pids uint64
	// CPUPeriod and CPUQuota are the CFS period and quota in
	// microseconds, CPUShares the CPU shares; 0 when unknown or (quota)
	// unlimited.
	CPUPeriod, CPUQuota, CPUShares uint64
}

// MachineInfo is what /metrics/cadvisor reports of the machine.
type MachineInfo struct {
	// NumCores is the number of logical CPUs.
	NumCores int
	// MemoryCapacity is the machine's memory in bytes (MemTotal).
	MemoryCapacity uint64
	// MachineID, SystemUUID and BootID label the machine series; a
	// missing one is "".
	MachineID, SystemUUID, BootID string
	// BootTime is the node root cgroup's start time; zero when unknown.
	BootTime time.Time
}

// StatsProvider reads the usage of the node's, the pods' and the
// containers' cgroups. podUID is the pod's metadata.uid, containerID the
// container's ID without its runtime scheme.
type StatsProvider interface {
	NodeCPUMemory() (CPUMemory, error)
	PodCPUMemory(podUID string) (CPUMemory, error)
	ContainerCPUMemory(podUID, containerID string) (CPUMemory, error)
	MachineInfo() (MachineInfo, error)
}

// The descriptors of kubelet's /metrics/resource
// (pkg/kubelet/metrics/collectors/resource_metrics.go); the swap series are
// left out, as on a node without swap.
var (
	nodeCPUUsageDesc = metrics.NewDesc("node_cpu_usage_seconds_total",
		"Cumulative cpu time consumed by the node in core-seconds",
		nil, nil, metrics.STABLE, "")
	nodeMemoryUsageDesc = metrics.NewDesc("node_memory_working_set_bytes",
		"Current working set of the node in bytes",
		nil, nil, metrics.STABLE, "")
	containerCPUUsageDesc = metrics.NewDesc("container_cpu_usage_seconds_total",
		"Cumulative cpu time consumed by the container in core-seconds",
		[]string{"container", "pod", "namespace"}, nil, metrics.STABLE, "")
	containerMemoryUsageDesc = metrics.NewDesc("container_memory_working_set_bytes",
		"Current working set of the container in bytes",
		[]string{"container", "pod", "namespace"}, nil, metrics.STABLE, "")
	podCPUUsageDesc = metrics.NewDesc("pod_cpu_usage_seconds_total",
		"Cumulative cpu time consumed by the pod in core-seconds",
		[]string{"pod", "namespace"}, nil, metrics.STABLE, "")
	podMemoryUsageDesc = metrics.NewDesc("pod_memory_working_set_bytes",
		"Current working set of the pod in bytes",
		[]string{"pod", "namespace"}, nil, metrics.STABLE, "")
	resourceScrapeResultDesc = metrics.NewDesc("scrape_error",
		"1 if there was an error while getting container metrics, 0 otherwise",
		nil, nil, metrics.ALPHA, "1.29.0")
	resourceScrapeErrorResultDesc = metrics.NewDesc("resource_scrape_error",
		"1 if there was an error while getting container metrics, 0 otherwise",
		nil, nil, metrics.STABLE, "")
	containerStartTimeDesc = metrics.NewDesc("container_start_time_seconds",
		"Start time of the container since unix epoch in seconds",
		[]string{"container", "pod", "namespace"}, nil, metrics.STABLE, "")
)

// resourceMetricsCollector is kubelet's collector of /metrics/resource:
// it reads the cgroups of the running pods and containers at each scrape,
// so series of gone containers go with them.
type resourceMetricsCollector struct {
	metrics.BaseStableCollector
	pods  func(context.Context) ([]*v1.Pod, error)
	stats StatsProvider
}

var _ metrics.StableCollector = &resourceMetricsCollector{}

func (rc *resourceMetricsCollector) DescribeWithStability(ch chan<- *metrics.Desc) {
	for _, d := range []*metrics.Desc{nodeCPUUsageDesc, nodeMemoryUsageDesc, containerStartTimeDesc,
		containerCPUUsageDesc, containerMemoryUsageDesc, podCPUUsageDesc, podMemoryUsageDesc,
		resourceScrapeResultDesc, resourceScrapeErrorResultDesc} {
		ch <- d
	}
}

func (rc *resourceMetricsCollector) CollectWithStability(ch chan<- metrics.Metric) {
	var errorCount float64
	defer func() {
		ch <- metrics.NewLazyConstMetric(resourceScrapeResultDesc, metrics.GaugeValue, errorCount)
		ch <- metrics.NewLazyConstMetric(resourceScrapeErrorResultDesc, metrics.GaugeValue, errorCount)
	}()
	node, err := rc.stats.NodeCPUMemory()
	if err != nil {
		errorCount = 1
		klog.ErrorS(err, "Error getting summary for resourceMetric prometheus endpoint")
		return
	}
	pods, err := rc.pods(context.Background())
	if err != nil {
		errorCount = 1
		klog.ErrorS(err, "Error getting summary for resourceMetric prometheus endpoint")
		return
	}
	ch <- metrics.NewLazyMetricWithTimestamp(node.Time,
		metrics.NewLazyConstMetric(nodeCPUUsageDesc, metrics.CounterValue, float64(node.CPUUsageNanoSeconds)/float64(time.Second)))
	ch <- metrics.NewLazyMetricWithTimestamp(node.Time,
		metrics.NewLazyConstMetric(nodeMemoryUsageDesc, metrics.GaugeValue, float64(node.MemoryWorkingSetBytes)))

	for _, pod := range pods {
		// A pod or container that has just gone has no cgroup to read:
		// it has no series, as in kubelet's summary.
		for _, cs := range pod.Status.ContainerStatuses {
			if cs.State.Running == nil || cs.ContainerID == "" {
				continue
			}
			_, id, _ := strings.Cut(cs.ContainerID, "://")
			s, err := rc.stats.ContainerCPUMemory(string(pod.UID), id)
			if err != nil {
				continue
			}
			ch <- metrics.NewLazyConstMetric(containerStartTimeDesc, metrics.GaugeValue,
				float64(cs.State.Running.StartedAt.UnixNano())/float64(time.Second), cs.Name, pod.Name, pod.Namespace)
			ch <- metrics.NewLazyMetricWithTimestamp(s.Time,
				metrics.NewLazyConstMetric(containerCPUUsageDesc, metrics.CounterValue,
					float64(s.CPUUsageNanoSeconds)/float64(time.Second), cs.Name, pod.Name, pod.Namespace))
			ch <- metrics.NewLazyMetricWithTimestamp(s.Time,
				metrics.NewLazyConstMetric(containerMemoryUsageDesc, metrics.GaugeValue,
					float64(s.MemoryWorkingSetBytes), cs.Name, pod.Name, pod.Namespace))
		}
		s, err := rc.stats.PodCPUMemory(string(pod.UID))
		if err != nil {
			continue
		}
		ch <- metrics.NewLazyMetricWithTimestamp(s.Time,
			metrics.NewLazyConstMetric(podCPUUsageDesc, metrics.CounterValue,
				float64(s.CPUUsageNanoSeconds)/float64(time.Second), pod.Name, pod.Namespace))
		ch <- metrics.NewLazyMetricWithTimestamp(s.Time,
			metrics.NewLazyConstMetric(podMemoryUsageDesc, metrics.GaugeValue,
				float64(s.MemoryWorkingSetBytes), pod.Name, pod.Namespace))
	}
}

// resourceMetricsHandler serves /metrics/resource from a registry of its
// own, as kubelet.
func (s *Server) resourceMetricsHandler() http.Handler {
	reg := metrics.NewKubeRegistry()
	reg.CustomMustRegister(&resourceMetricsCollector{pods: s.cfg.Provider.RunningPods, stats: s.cfg.Stats})
	return metrics.HandlerFor(reg, metrics.HandlerOpts{ErrorHandling: metrics.ContinueOnError})
}
