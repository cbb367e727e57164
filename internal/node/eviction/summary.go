package eviction

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2"
	statsapi "k8s.io/kubelet/pkg/apis/stats/v1alpha1"
	"k8s.io/kubernetes/pkg/apis/core/v1/helper/qos"
	"k8s.io/kubernetes/pkg/kubelet/stats/pidlimit"

	"github.com/pocketkube/pocketkube/internal/node/runtime"
)

// Cgroups reads the pods' cgroups (internal/node/runtime's Runtime).
type Cgroups interface {
	PodsCgroupStats() (runtime.CgroupStats, error)
	PodCgroupStats(podUID, qos string) (runtime.CgroupStats, error)
	ContainerCgroupStats(podUID, qos, containerID string) (runtime.CgroupStats, error)
}

// Summary is the part of kubelet's stats summary (pkg/kubelet/server/stats)
// that the eviction manager reads, measured on this machine: the node's
// memory, the filesystems of the node's and the images' directories, the
// kernel's task limit, and per pod its cgroup's memory and processes,
// its containers' memory and its emptyDir volumes.
type Summary struct {
	// NodeName names the node in the summary.
	NodeName string
	// NodeFsDir is on kubelet's nodefs: the node's data directory.
	NodeFsDir string
	// ImageFsDir is on kubelet's imagefs: the image store's directory.
	ImageFsDir string
	// Cgroups reads the pods' cgroups.
	Cgroups Cgroups
	// Pods returns the pods to measure.
	Pods func() ([]*v1.Pod, error)
	// Containers returns the running containers of a pod, name → ID.
	Containers func(ctx context.Context, podUID string) (map[string]string, error)
	// EmptyDirUsage returns the bytes an emptyDir volume takes on disk.
	EmptyDirUsage func(podUID, volume string) (int64, error)
	// Meminfo is /proc/meminfo unless a test says otherwise.
	Meminfo string
}

// Get measures the node and its pods now, as kubelet's summary provider
// does with cadvisor; a pod whose cgroup cannot be read has no stats, as
// a pod cadvisor does not know.
func (s *Summary) Get(ctx context.Context, _ bool) (*statsapi.Summary, error) {
	now := metav1.NewTime(time.Now())
	node := statsapi.NodeStats{NodeName: s.NodeName, StartTime: now}
	mem, err := s.nodeMemory(now)
	if err != nil {
		return nil, err
	}
	node.Memory = mem
	if pods, err := s.Cgroups.PodsCgroupStats(); err == nil {
		node.SystemContainers = append(node.SystemContainers, statsapi.ContainerStats{
			Name: statsapi.SystemContainerPods, StartTime: now, Memory: memoryStats(pods, now),
		})
	} else {
		klog.FromContext(ctx).V(4).Info("Cannot read the pods' cgroup", "err", err)
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
	for _, pod := range pods {
		if ps, ok := s.podStats(ctx, pod, now); ok {
			summary.Pods = append(summary.Pods, ps)
		}
	}
	return summary, nil
}

// GetCPUAndMemoryStats is Get: the eviction manager does not call it.
func (s *Summary) GetCPUAndMemoryStats(ctx context.Context) (*statsapi.Summary, error) {
	return s.Get(ctx, false)
}

func (s *Summary) podStats(ctx context.Context, pod *v1.Pod, now metav1.Time) (statsapi.PodStats, bool) {
	uid, class := string(pod.UID), string(qos.GetPodQOS(pod))
	cg, err := s.Cgroups.PodCgroupStats(uid, class)
	if err != nil {
		return statsapi.PodStats{}, false
	}
	pids := cg.Pids
	ps := statsapi.PodStats{
		PodRef:       statsapi.PodReference{Name: pod.Name, Namespace: pod.Namespace, UID: uid},
		StartTime:    now,
		Memory:       memoryStats(cg, now),
		ProcessStats: &statsapi.ProcessStats{ProcessCount: &pids},
	}
	if containers, err := s.Containers(ctx, uid); err == nil {
		for name, id := range containers {
			if c, err := s.Cgroups.ContainerCgroupStats(uid, class, id); err == nil {
				ps.Containers = append(ps.Containers, statsapi.ContainerStats{Name: name, StartTime: now, Memory: memoryStats(c, now)})
			}
		}
	}
	for _, vol := range pod.Spec.Volumes {
		if vol.EmptyDir == nil || vol.EmptyDir.Medium == v1.StorageMediumMemory {
			continue
		}
		if n, err := s.EmptyDirUsage(uid, vol.Name); err == nil {
			used := uint64(n)
			ps.VolumeStats = append(ps.VolumeStats, statsapi.VolumeStats{Name: vol.Name, FsStats: statsapi.FsStats{Time: now, UsedBytes: &used}})
		}
	}
	return ps, true
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
