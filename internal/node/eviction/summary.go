package eviction

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2"
	statsapi "k8s.io/kubelet/pkg/apis/stats/v1alpha1"
	"k8s.io/kubernetes/pkg/apis/core/v1/helper/qos"
	"k8s.io/kubernetes/pkg/kubelet/stats/pidlimit"

	"github.com/pocketkube/pocketkube/internal/node/network"
	"github.com/pocketkube/pocketkube/internal/node/runtime"
)

// Cgroups reads the pods' cgroups (internal/node/runtime's Runtime).
type Cgroups interface {
	PodsCgroupStats() (runtime.CgroupStats, error)
	PodCgroupStats(podUID, qos string) (runtime.CgroupStats, error)
	ContainerCgroupStats(podUID, qos, containerID string) (runtime.CgroupStats, error)
}

// Summary is kubelet's stats summary (pkg/kubelet/server/stats): the one
// place the node's statsapi.Summary is built, read by the eviction
// manager and served by the kubelet API's /stats/summary. It measures this
// machine: the node's CPU (the root cgroup), memory (/proc/meminfo),
// network (the host's interfaces), the filesystems of the node's and the
// images' directories and the kernel's task limit; the "pods" system
// container (the cgroup every pod is in, which allocatableMemory.available
// reads); per pod its cgroup's CPU, memory and processes, its network
// (the interfaces of its namespace), its containers' CPU, memory,
// writable layer and logs, and its volumes, which with the layers and
// logs make its ephemeral-storage (see podFs).
//
// Its methods may be called concurrently.
type Summary struct {
	// NodeName names the node in the summary.
	NodeName string
	// NodeFsDir is on kubelet's nodefs: the node's data directory.
	NodeFsDir string
	// ImageFsDir is on kubelet's imagefs: the image store's directory.
	ImageFsDir string
	// Cgroups reads the pods' cgroups; when it also has
	// NodeStats() (runtime.CgroupStats, error), as the runtime does, the
	// node's CPU is the root cgroup's.
	Cgroups Cgroups
	// Pods returns the pods to measure.
	Pods func() ([]*v1.Pod, error)
	// Containers returns the running containers of every pod: pod UID →
	// name → ID. Get calls it once: a listing per pod would read every
	// container's state once per pod.
	Containers func(ctx context.Context) (map[string]map[string]string, error)
	// EmptyDirUsage returns the bytes an emptyDir volume takes on disk.
	EmptyDirUsage func(podUID, volume string) (int64, error)
	// Meminfo is /proc/meminfo unless a test says otherwise.
	Meminfo string
	// ProcDir is /proc unless a test says otherwise: its stat gives the
	// boot time, its net/dev the host's interfaces.
	ProcDir string
	// PodFs reads the pods' network and filesystem figures; without
	// its VolumePath, the volume stats are the emptyDir usage alone.
	PodFs PodFs

	cpu cpuSampler
	du  duCache
}

// nodeCgroup is the optional ability of Cgroups to read the root cgroup.
type nodeCgroup interface {
	NodeStats() (runtime.CgroupStats, error)
}

// Get measures the node and its pods now, as kubelet's summary provider
// does with cadvisor; a pod whose cgroup cannot be read has no stats, as
// a pod cadvisor does not know. usageNanoCores is the rate since the
// previous sample of the same cgroup at least a second older; a cgroup's
// first summary has none (cadvisor's first housekeeping has none either).
func (s *Summary) Get(ctx context.Context, _ bool) (*statsapi.Summary, error) {
	logger := klog.FromContext(ctx)
	now := metav1.NewTime(time.Now())
	node := statsapi.NodeStats{NodeName: s.NodeName, StartTime: s.bootTime(now)}
	mem, err := s.nodeMemory(now)
	if err != nil {
		return nil, err
	}
	node.Memory = mem
	if nc, ok := s.Cgroups.(nodeCgroup); ok {
		if root, err := nc.NodeStats(); err == nil {
			node.CPU = s.cpu.stats("/", root)
		} else {
			logger.V(4).Info("Cannot read the root cgroup", "err", err)
		}
	}
	if pods, err := s.Cgroups.PodsCgroupStats(); err == nil {
		node.SystemContainers = append(node.SystemContainers, statsapi.ContainerStats{
			Name: statsapi.SystemContainerPods, StartTime: node.StartTime,
			CPU: s.cpu.stats(statsapi.SystemContainerPods, pods), Memory: memoryStats(pods, now),
		})
	} else {
		// Without it the eviction manager logs "system container pods
		// not found in metrics" and has no allocatableMemory.available.
		logger.Error(err, "Failed to get system container stats", "containerName", statsapi.SystemContainerPods)
	}
	if net, err := s.hostNetwork(now); err == nil {
		node.Network = net
	} else {
		logger.V(4).Info("Cannot read the host's interfaces", "err", err)
	}
	if node.Fs, err = fsStats(s.NodeFsDir, now); err != nil {
		return nil, err
	}
	imageFs, err := fsStats(s.ImageFsDir, now)
	if err != nil {
		return nil, err
	}
	node.Runtime = &statsapi.RuntimeStats{ImageFs: imageFs, ContainerFs: imageFs}
	if node.Rlimit, err = pidlimit.Stats(); err != nil {
		return nil, err
	}
	summary := &statsapi.Summary{Node: node}
	pods, err := s.Pods()
	if err != nil {
		return nil, fmt.Errorf("list pods: %w", err)
	}
	containers, err := s.Containers(ctx)
	if err != nil {
		logger.V(4).Info("Cannot list the containers", "err", err)
	}
	seen := map[string]bool{"/": true, statsapi.SystemContainerPods: true}
	for _, pod := range pods {
		if ps, ok := s.podStats(pod, containers[string(pod.UID)], node.Fs, now, seen); ok {
			summary.Pods = append(summary.Pods, ps)
		}
	}
	s.cpu.forget(seen)
	s.du.forget(seen)
	return summary, nil
}

// GetCPUAndMemoryStats is Get: the eviction manager does not call it, and
// the other figures cost little more.
func (s *Summary) GetCPUAndMemoryStats(ctx context.Context) (*statsapi.Summary, error) {
	return s.Get(ctx, false)
}

// podStats measures pod, whose running containers are containers (name →
// ID), on the node's filesystem nodeFs, and records the cgroups it read in
// seen.
func (s *Summary) podStats(pod *v1.Pod, containers map[string]string, nodeFs *statsapi.FsStats, now metav1.Time, seen map[string]bool) (statsapi.PodStats, bool) {
	uid, class := string(pod.UID), string(qos.GetPodQOS(pod))
	cg, err := s.Cgroups.PodCgroupStats(uid, class)
	if err != nil {
		return statsapi.PodStats{}, false
	}
	seen[uid] = true
	pids := cg.Pids
	start := now
	if pod.Status.StartTime != nil {
		start = *pod.Status.StartTime
	}
	ps := statsapi.PodStats{
		PodRef:       statsapi.PodReference{Name: pod.Name, Namespace: pod.Namespace, UID: uid},
		StartTime:    start,
		CPU:          s.cpu.stats(uid, cg),
		Memory:       memoryStats(cg, now),
		ProcessStats: &statsapi.ProcessStats{ProcessCount: &pids},
	}
	started := map[string]metav1.Time{}
	for _, st := range pod.Status.ContainerStatuses {
		if st.State.Running != nil {
			started[st.Name] = st.State.Running.StartedAt
		}
	}
	names := make([]string, 0, len(containers))
	for name := range containers {
		names = append(names, name)
	}
	slices.Sort(names)
	ids := make([]string, 0, len(names))
	for _, name := range names {
		id := containers[name]
		c, err := s.Cgroups.ContainerCgroupStats(uid, class, id)
		if err != nil {
			continue
		}
		ids = append(ids, id)
		key := uid + "/" + id
		seen[key] = true
		cs := statsapi.ContainerStats{Name: name, StartTime: start, CPU: s.cpu.stats(key, c), Memory: memoryStats(c, now)}
		if t, ok := started[name]; ok {
			cs.StartTime = t
		}
		ps.Containers = append(ps.Containers, cs)
	}
	ps.Network = s.podNetwork(uid, class, ids, now)
	s.podFs(pod, containers, nodeFs, &ps, now)
	return ps, true
}

// cpuSampler keeps one sample of each cgroup's cumulative CPU time, the
// last one at least minCPUInterval older than the one before, to give
// usageNanoCores as kubelet's CRI stats provider keeps its cache.
type cpuSampler struct {
	mu      sync.Mutex
	samples map[string]cpuSample
}

type cpuSample struct {
	time  time.Time
	usage uint64
	// rate is the last usageNanoCores, nil before two samples.
	rate *uint64
}

// minCPUInterval is the shortest interval a rate is computed over; reads
// closer together reuse the last rate, so that a burst of requests does
// not make it noisy.
const minCPUInterval = time.Second

// stats records cg's CPU time under key and returns its CPUStats; nil
// when the host has no CPU accounting for it.
func (c *cpuSampler) stats(key string, cg runtime.CgroupStats) *statsapi.CPUStats {
	if cg.CPUUsageNanoSeconds == 0 {
		return nil
	}
	usage := cg.CPUUsageNanoSeconds
	out := &statsapi.CPUStats{Time: metav1.NewTime(cg.Time), UsageCoreNanoSeconds: &usage}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.samples == nil {
		c.samples = map[string]cpuSample{}
	}
	prev, ok := c.samples[key]
	switch {
	case !ok || usage < prev.usage:
		// New, or a cgroup of the same name that started over.
		c.samples[key] = cpuSample{time: cg.Time, usage: usage}
	case cg.Time.Sub(prev.time) >= minCPUInterval:
		rate := uint64(float64(usage-prev.usage) / float64(cg.Time.Sub(prev.time).Nanoseconds()) * float64(time.Second))
		c.samples[key] = cpuSample{time: cg.Time, usage: usage, rate: &rate}
		out.UsageNanoCores = &rate
	default:
		out.UsageNanoCores = prev.rate
	}
	return out
}

// forget drops the samples of cgroups not in seen: gone pods and containers.
func (c *cpuSampler) forget(seen map[string]bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k := range c.samples {
		if !seen[k] {
			delete(c.samples, k)
		}
	}
}

func (s *Summary) procDir() string {
	if s.ProcDir == "" {
		return "/proc"
	}
	return s.ProcDir
}

// bootTime is the node's start time, as kubelet's (the system's boot
// time, /proc/stat btime); now if it cannot be read.
func (s *Summary) bootTime(now metav1.Time) metav1.Time {
	b, err := os.ReadFile(filepath.Join(s.procDir(), "stat"))
	if err != nil {
		return now
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "btime "); ok {
			if n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil {
				return metav1.NewTime(time.Unix(n, 0))
			}
		}
	}
	return now
}

// readNetDev reads the node's /proc/net/dev. Under /proc it reads the
// calling thread's (/proc/thread-self), locked to it: /proc/net/dev is the
// namespace of the process's main thread, which Go leaves parked, never
// ended, when a goroutine that locked it returns inside another namespace
// (network.createNetNS's does, on whichever thread it ran); that file
// would then show a pod's interfaces. Every thread Go runs goroutines on
// is in the node's namespace.
func (s *Summary) readNetDev() ([]byte, error) {
	if s.ProcDir != "" {
		return os.ReadFile(filepath.Join(s.ProcDir, "net", "dev"))
	}
	goruntime.LockOSThread()
	defer goruntime.UnlockOSThread()
	return os.ReadFile("/proc/thread-self/net/dev")
}

// hostNetwork is the host's interfaces from /proc/net/dev, loopback left
// out, as cadvisor's root container; the default interface is eth0, as
// kubelet's (network.DefaultInterfaceName), when there is one.
func (s *Summary) hostNetwork(now metav1.Time) (*statsapi.NetworkStats, error) {
	b, err := s.readNetDev()
	if err != nil {
		return nil, err
	}
	return networkStats(network.ParseNetDev(b), now), nil
}

// memoryStats is cadvisor's view of a cgroup's memory: the available
// bytes only when the cgroup has a limit.
func memoryStats(cg runtime.CgroupStats, now metav1.Time) *statsapi.MemoryStats {
	usage, ws := cg.MemoryUsageBytes, cg.MemoryWorkingSetBytes
	m := &statsapi.MemoryStats{Time: now, UsageBytes: &usage, WorkingSetBytes: &ws}
	if cg.MemoryLimitBytes > 0 {
		avail := uint64(0)
		if cg.MemoryLimitBytes > ws {
			avail = cg.MemoryLimitBytes - ws
		}
		m.AvailableBytes = &avail
	}
	return m
}

// nodeMemory is the machine's memory as cadvisor reports the root cgroup
// (runc's statsFromMeminfo): usage is MemTotal - MemFree, the working set
// is that less Inactive(file), and what is available is the capacity
// less the working set, so memory.available = MemFree + Inactive(file).
func (s *Summary) nodeMemory(now metav1.Time) (*statsapi.MemoryStats, error) {
	file := s.Meminfo
	if file == "" {
		file = "/proc/meminfo"
	}
	info, err := readMeminfo(file)
	if err != nil {
		return nil, err
	}
	total, free, inactive := info["MemTotal"], info["MemFree"], info["Inactive(file)"]
	if total == 0 {
		return nil, fmt.Errorf("read %s: no MemTotal", file)
	}
	usage := total - free
	ws := usage
	if ws > inactive {
		ws -= inactive
	} else {
		ws = 0
	}
	avail := total - ws
	return &statsapi.MemoryStats{Time: now, UsageBytes: &usage, WorkingSetBytes: &ws, AvailableBytes: &avail}, nil
}

// readMeminfo returns /proc/meminfo's values in bytes.
func readMeminfo(file string) (map[string]uint64, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]uint64{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		fields := strings.Fields(v)
		if len(fields) == 0 {
			continue
		}
		n, err := strconv.ParseUint(fields[0], 10, 64)
		if err != nil {
			continue
		}
		if len(fields) > 1 && fields[1] == "kB" {
			n *= 1024
		}
		out[k] = n
	}
	return out, sc.Err()
}

// fsStats is the filesystem dir is on, as statfs(2) sees it: available
// is what an unprivileged writer may still use (f_bavail), as cadvisor.
func fsStats(dir string, now metav1.Time) (*statsapi.FsStats, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return nil, fmt.Errorf("statfs %s: %w", dir, err)
	}
	bs := uint64(st.Bsize)
	capacity, avail, used := st.Blocks*bs, st.Bavail*bs, (st.Blocks-st.Bfree)*bs
	inodes, free := st.Files, st.Ffree
	inodesUsed := inodes - free
	return &statsapi.FsStats{Time: now, CapacityBytes: &capacity, AvailableBytes: &avail, UsedBytes: &used,
		Inodes: &inodes, InodesFree: &free, InodesUsed: &inodesUsed}, nil
}

// diskInfo is kubelet's DiskInfoProvider: imagefs is dedicated when the
// image store is on another filesystem than the node's directory.
type diskInfo struct{ nodeFs, imageFs string }

func (d diskInfo) HasDedicatedImageFs(context.Context) (bool, error) {
	var a, b unix.Stat_t
	if err := unix.Stat(d.nodeFs, &a); err != nil {
		return false, fmt.Errorf("stat %s: %w", d.nodeFs, err)
	}
	if err := unix.Stat(d.imageFs, &b); err != nil {
		return false, fmt.Errorf("stat %s: %w", d.imageFs, err)
	}
	return a.Dev != b.Dev, nil
}

// HasDedicatedContainerFs is false: containers' writable layers live with
// the node's runtime state, on nodefs.
func (d diskInfo) HasDedicatedContainerFs(context.Context) (bool, error) { return false, nil }
