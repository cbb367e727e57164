package eviction

import (
	"errors"
	"io/fs"
	"slices"
	"strings"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	statsapi "k8s.io/kubelet/pkg/apis/stats/v1alpha1"

	"github.com/pocketkube/pocketkube/internal/node/network"
	"github.com/pocketkube/pocketkube/internal/node/volume"
)

// PodFs are the optional sources of a pod's network and filesystem
// figures in the Summary; a nil member leaves its figures out.
type PodFs struct {
	// Interfaces reads the interfaces of a pod's network namespace
	// (network.Interfaces of its path), pid a process of one of its
	// containers to read them through (0: none known); an error (a
	// host-network pod has no namespace of its own) leaves the pod's
	// network out.
	Interfaces func(podUID string, pid int) ([]network.Interface, error)
	// VolumePath returns where a volume of a pod is, false for a volume
	// the node does not keep under the pod (volume.Manager.VolumePath).
	VolumePath func(podUID string, vol *v1.Volume) (string, bool)
	// LayerDir returns a container's writable layer (its overlay upper
	// directory).
	LayerDir func(containerID string) string
	// LogDir returns the directory of a container's log files.
	LogDir func(pod *v1.Pod, container string) string
	// Claim returns a pod's claim volume as set up
	// (volume.Manager.Claim), false when it is not.
	Claim func(podUID, volume string) (volume.ClaimVolume, bool)
}

// Periods of the du cache. A volume is walked at most once a minute, as
// kubelet's fsResourceAnalyzer (volumeStatsAggPeriod); a writable layer or
// log directory at most once per housekeeping interval (cadvisor's 10 s).
// A volume is walked again sooner when the pod's running containers
// changed: an init container that filled it has ended.
const (
	volumeStatsPeriod    = time.Minute
	containerStatsPeriod = 10 * time.Second
)

// duCache keeps what du found per directory of a live pod: keys begin
// with the pod's UID, and Get forgets the pods it no longer measures, so
// it holds at most one entry per volume and container of the node's pods.
type duCache struct {
	mu      sync.Mutex
	entries map[string]duEntry
}

type duEntry struct {
	at            time.Time
	gen           string
	bytes, inodes uint64
}

// usage is the du of dir under key, walked again when the entry is older
// than period or of another generation; a missing directory uses nothing.
func (c *duCache) usage(key, gen, dir string, period time.Duration, now time.Time) (bytes, inodes uint64, err error) {
	c.mu.Lock()
	e, ok := c.entries[key]
	c.mu.Unlock()
	if ok && e.gen == gen && now.Sub(e.at) < period {
		return e.bytes, e.inodes, nil
	}
	b, n, err := volume.DiskUsage(dir)
	if errors.Is(err, fs.ErrNotExist) {
		b, n, err = 0, 0, nil
	}
	if err != nil {
		return 0, 0, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil {
		c.entries = map[string]duEntry{}
	}
	c.entries[key] = duEntry{at: now, gen: gen, bytes: uint64(b), inodes: uint64(n)}
	return uint64(b), uint64(n), nil
}

// forget drops the entries of pods not in seen.
func (c *duCache) forget(seen map[string]bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k := range c.entries {
		uid, _, _ := strings.Cut(k, "/")
		if !seen[uid] {
			delete(c.entries, k)
		}
	}
}

// containerPid is the optional ability of Cgroups to name a process of a
// container's cgroup (the runtime's ContainerPid).
type containerPid interface {
	ContainerPid(podUID, qos, containerID string) (int, error)
}

// podNetwork is the pod's network as kubelet reports it: every interface
// of its namespace, eth0 the default one; ids are its running containers,
// through the first of which (with a process) it is read from the host.
func (s *Summary) podNetwork(uid, class string, ids []string, now metav1.Time) *statsapi.NetworkStats {
	if s.PodFs.Interfaces == nil {
		return nil
	}
	pid := 0
	if cp, ok := s.Cgroups.(containerPid); ok {
		for _, id := range ids {
			if p, err := cp.ContainerPid(uid, class, id); err == nil && p > 0 {
				pid = p
				break
			}
		}
	}
	ifs, err := s.PodFs.Interfaces(uid, pid)
	if err != nil || len(ifs) == 0 {
		return nil
	}
	return networkStats(ifs, now)
}

// networkStats is ifs as kubelet reports them: every interface, eth0 the
// default one (network.DefaultInterfaceName) when there is one.
func networkStats(ifs []network.Interface, now metav1.Time) *statsapi.NetworkStats {
	net := &statsapi.NetworkStats{Time: now}
	for _, i := range ifs {
		is := statsapi.InterfaceStats{Name: i.Name, RxBytes: new(i.RxBytes), RxErrors: new(i.RxErrors), TxBytes: new(i.TxBytes), TxErrors: new(i.TxErrors)}
		net.Interfaces = append(net.Interfaces, is)
		if i.Name == "eth0" {
			net.InterfaceStats = is
		}
	}
	return net
}

// podFs fills in the filesystem figures of ps, the stats of pod, whose
// running containers are containers (name → ID), on nodefs (the Summary's
// statfs of it, not one per pod): each container's
// writable layer and logs, the volumes, and the pod's ephemeral storage
// as kubelet's calcEphemeralStorage: the layers, the logs and the local
// ephemeral volumes (emptyDir on disk, configMap), on nodefs.
func (s *Summary) podFs(pod *v1.Pod, containers map[string]string, nodeFs *statsapi.FsStats, ps *statsapi.PodStats, now metav1.Time) {
	uid := string(pod.UID)
	onNodeFs := func(used, inodes uint64) *statsapi.FsStats {
		return &statsapi.FsStats{Time: now, AvailableBytes: nodeFs.AvailableBytes, CapacityBytes: nodeFs.CapacityBytes,
			InodesFree: nodeFs.InodesFree, Inodes: nodeFs.Inodes, UsedBytes: &used, InodesUsed: &inodes}
	}
	eph := onNodeFs(0, 0)
	add := func(f *statsapi.FsStats, inodes bool) {
		if f == nil || f.UsedBytes == nil {
			return
		}
		*eph.UsedBytes += *f.UsedBytes
		if inodes && f.InodesUsed != nil {
			*eph.InodesUsed += *f.InodesUsed
		}
	}
	ids := make([]string, 0, len(containers))
	for i := range ps.Containers {
		cs := &ps.Containers[i]
		id := containers[cs.Name]
		ids = append(ids, id)
		if s.PodFs.LayerDir != nil {
			if b, n, err := s.du.usage(uid+"/rootfs/"+id, "", s.PodFs.LayerDir(id), containerStatsPeriod, now.Time); err == nil {
				cs.Rootfs = onNodeFs(b, n)
			}
		}
		if s.PodFs.LogDir != nil {
			if b, n, err := s.du.usage(uid+"/logs/"+cs.Name, "", s.PodFs.LogDir(pod, cs.Name), containerStatsPeriod, now.Time); err == nil {
				cs.Logs = onNodeFs(b, n)
			}
		}
		add(cs.Rootfs, true)
		add(cs.Logs, true)
	}
	slices.Sort(ids)
	gen := strings.Join(ids, ",")
	for i := range pod.Spec.Volumes {
		vol := &pod.Spec.Volumes[i]
		vs, ok := s.volumeStats(pod, vol, gen, now)
		if !ok {
			continue
		}
		ps.VolumeStats = append(ps.VolumeStats, vs)
		if vol.ConfigMap != nil || vol.EmptyDir != nil && vol.EmptyDir.Medium == v1.StorageMediumDefault {
			add(&vs.FsStats, true)
		}
	}
	ps.EphemeralStorage = eph
}

// volumeStats is kubelet's MetricsDu of a volume: used bytes and inodes
// from a walk (cached), capacity, available and inodes of the filesystem
// it is on. A volume the node does not keep under the pod has none.
func (s *Summary) volumeStats(pod *v1.Pod, vol *v1.Volume, gen string, now metav1.Time) (statsapi.VolumeStats, bool) {
	uid := string(pod.UID)
	if s.PodFs.VolumePath == nil {
		// The emptyDir usage alone, as before the volume stats.
		if vol.EmptyDir == nil || vol.EmptyDir.Medium == v1.StorageMediumMemory || s.EmptyDirUsage == nil {
			return statsapi.VolumeStats{}, false
		}
		n, err := s.EmptyDirUsage(uid, vol.Name)
		if err != nil {
			return statsapi.VolumeStats{}, false
		}
		used := uint64(n)
		return statsapi.VolumeStats{Name: vol.Name, FsStats: statsapi.FsStats{Time: now, UsedBytes: &used}}, true
	}
	if vol.PersistentVolumeClaim != nil || vol.Ephemeral != nil {
		return s.claimStats(pod, vol, gen, now)
	}
	dir, ok := s.PodFs.VolumePath(uid, vol)
	if !ok {
		return statsapi.VolumeStats{}, false
	}
	b, n, err := s.du.usage(uid+"/volumes/"+vol.Name, gen, dir, volumeStatsPeriod, now.Time)
	if err != nil {
		return statsapi.VolumeStats{}, false
	}
	fs, err := fsStats(dir, now)
	if err != nil {
		// Not set up yet: no filesystem of its own to report.
		return statsapi.VolumeStats{}, false
	}
	fs.UsedBytes, fs.InodesUsed = &b, &n
	return statsapi.VolumeStats{Name: vol.Name, FsStats: *fs}, true
}

// claimStats are the stats of a claim volume, with its pvcRef: a local
// PV's filesystem as kubelet's MetricsStatFS; a hostPath PV (as the
// local-path provisioner makes) walked as an emptyDir, where kubelet's
// hostPath plugin reports nothing.
func (s *Summary) claimStats(pod *v1.Pod, vol *v1.Volume, gen string, now metav1.Time) (statsapi.VolumeStats, bool) {
	if s.PodFs.Claim == nil {
		return statsapi.VolumeStats{}, false
	}
	uid := string(pod.UID)
	cv, ok := s.PodFs.Claim(uid, vol.Name)
	if !ok {
		return statsapi.VolumeStats{}, false
	}
	fs, err := fsStats(cv.Path, now)
	if err != nil {
		return statsapi.VolumeStats{}, false
	}
	if !cv.Local {
		b, n, err := s.du.usage(uid+"/volumes/"+vol.Name, gen, cv.Path, volumeStatsPeriod, now.Time)
		if err != nil {
			return statsapi.VolumeStats{}, false
		}
		fs.UsedBytes, fs.InodesUsed = &b, &n
	}
	return statsapi.VolumeStats{Name: vol.Name, PVCRef: &statsapi.PVCReference{Name: cv.Claim, Namespace: pod.Namespace}, FsStats: *fs}, true
}
