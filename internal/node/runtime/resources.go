package runtime

import (
	v1 "k8s.io/api/core/v1"
	resourcehelper "k8s.io/component-helpers/resource"
	v1qos "k8s.io/kubernetes/pkg/apis/core/v1/helper/qos"
)

// Resources are the cgroup values of a pod or a container, as kubelet computes
// them (pkg/kubelet/cm/helpers_linux.go and kuberuntime_container_linux.go).
// A zero field means "not set" (no limit).
type Resources struct {
	CPUShares   uint64 // cpu.shares (v1); converted to cpu.weight on v2
	CPUQuota    int64  // cpu.cfs_quota_us in µs per CPUPeriod; 0 = unlimited
	CPUPeriod   uint64 // cpu.cfs_period_us in µs
	MemoryLimit int64  // bytes; 0 = unlimited
	PidsLimit   int64  // pids.max; 0 = not set, negative = "max" (unlimited)
}

// Updated returns r with the values an update u sets: those u does not
// leave zero (a runc update changes only the values it is given; the CPU
// period and quota go together).
func (r Resources) Updated(u Resources) Resources {
	if u.CPUShares != 0 {
		r.CPUShares = u.CPUShares
	}
	if u.CPUPeriod != 0 {
		r.CPUPeriod, r.CPUQuota = u.CPUPeriod, u.CPUQuota
	}
	if u.MemoryLimit != 0 {
		r.MemoryLimit = u.MemoryLimit
	}
	return r
}

// Values of kubelet's pkg/kubelet/cm (helpers_linux.go).
const (
	minShares        = 2
	maxShares        = 262144
	sharesPerCPU     = 1024
	milliCPUToCPU    = 1000
	quotaPeriod      = 100000
	minQuotaPeriod   = 1000
	qosGuaranteed    = string(v1.PodQOSGuaranteed)
	qosBurstable     = string(v1.PodQOSBurstable)
	qosBestEffort    = string(v1.PodQOSBestEffort)
	defaultCgroupTop = "/kubepods"
)

// MilliCPUToShares converts milli-CPU to cgroup v1 cpu.shares as kubelet
// does: 0 → 2 (MinShares), clamped to [2, 262144].
func MilliCPUToShares(milliCPU int64) uint64 {
	if milliCPU == 0 {
		return minShares
	}
	shares := (milliCPU * sharesPerCPU) / milliCPUToCPU
	if shares < minShares {
		return minShares
	}
	if shares > maxShares {
		return maxShares
	}
	return uint64(shares)
}

// MilliCPUToQuota converts a milli-CPU limit to a CFS quota for period as
// kubelet does: 0 → 0 (unlimited), at least 1000 µs.
func MilliCPUToQuota(milliCPU, period int64) int64 {
	if milliCPU == 0 {
		return 0
	}
	quota := (milliCPU * period) / milliCPUToCPU
	if quota < minQuotaPeriod {
		quota = minQuotaPeriod
	}
	return quota
}

// ContainerResources returns the container cgroup values kubelet's
// calculateLinuxResources computes for c (CFS quota enforced, default
// 100ms period): shares from the CPU request (or the limit when only a limit
// is set), quota from the CPU limit, the memory limit.
func ContainerResources(c *v1.Container) Resources {
	var r Resources
	req, hasReq := c.Resources.Requests[v1.ResourceCPU]
	lim, hasLim := c.Resources.Limits[v1.ResourceCPU]
	if !hasReq && hasLim {
		r.CPUShares = MilliCPUToShares(lim.MilliValue())
	} else {
		r.CPUShares = MilliCPUToShares(req.MilliValue())
	}
	r.CPUPeriod = quotaPeriod
	r.CPUQuota = MilliCPUToQuota(lim.MilliValue(), quotaPeriod)
	if m, ok := c.Resources.Limits[v1.ResourceMemory]; ok {
		r.MemoryLimit = m.Value()
	}
	return r
}

// QOSClass returns the pod's QoS class ("Guaranteed", "Burstable",
// "BestEffort") as upstream's GetPodQOS computes it.
func QOSClass(pod *v1.Pod) string {
	return string(v1qos.GetPodQOS(pod))
}

// PodResources returns the pod cgroup values of kubelet's
// ResourceConfigForPod (CFS quota enforced, 100ms period, no memory QoS, no
// pod-level resources): Guaranteed pods get shares, quota and memory;
// Burstable pods get shares, plus quota only when every container has a CPU
// limit and memory only when every container has a memory limit; BestEffort
// pods get 2 shares.
func PodResources(pod *v1.Pod) Resources {
	opts := resourcehelper.PodResourcesOptions{SkipPodLevelResources: true}
	reqs := resourcehelper.PodRequests(pod, opts)
	limits := resourcehelper.PodLimits(pod, opts)
	cpuLimitsDeclared, memoryLimitsDeclared := true, true
	all := append(append([]v1.Container{}, pod.Spec.InitContainers...), pod.Spec.Containers...)
	for _, c := range all {
		if c.Resources.Limits.Cpu().IsZero() {
			cpuLimitsDeclared = false
		}
		if c.Resources.Limits.Memory().IsZero() {
			memoryLimitsDeclared = false
		}
	}
	var cpuRequests, cpuLimits, memoryLimits int64
	if q, ok := reqs[v1.ResourceCPU]; ok {
		cpuRequests = q.MilliValue()
	}
	if q, ok := limits[v1.ResourceCPU]; ok {
		cpuLimits = q.MilliValue()
	}
	if q, ok := limits[v1.ResourceMemory]; ok {
		memoryLimits = q.Value()
	}
	shares := MilliCPUToShares(cpuRequests)
	quota := MilliCPUToQuota(cpuLimits, quotaPeriod)
	switch QOSClass(pod) {
	case qosGuaranteed:
		return Resources{CPUShares: shares, CPUQuota: quota, CPUPeriod: quotaPeriod, MemoryLimit: memoryLimits}
	case qosBurstable:
		r := Resources{CPUShares: shares}
		if cpuLimitsDeclared {
			r.CPUQuota, r.CPUPeriod = quota, quotaPeriod
		}
		if memoryLimitsDeclared {
			r.MemoryLimit = memoryLimits
		}
		return r
	default:
		return Resources{CPUShares: minShares}
	}
}

// SharesToMilliCPU converts cpu.shares back to milli-CPU as kubelet does
// for a container's reported resources (pkg/kubelet/cm
// SharesToMilliCPU): rounded up, 0 below the minimum of 2 shares.
func SharesToMilliCPU(shares int64) int64 {
	if shares < minShares {
		return 0
	}
	return (shares*milliCPUToCPU + sharesPerCPU - 1) / sharesPerCPU
}

// QuotaToMilliCPU converts a CFS quota and period back to milli-CPU as
// kubelet does (pkg/kubelet/cm QuotaToMilliCPU); no quota (0 or -1) is 0.
func QuotaToMilliCPU(quota, period int64) int64 {
	if quota <= 0 || period <= 0 {
		return 0
	}
	return quota * milliCPUToCPU / period
}
