package runtime

import (
	"bufio"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// CgroupStats are a cgroup's figures as cadvisor reports them to kubelet.
type CgroupStats struct {
	// MemoryUsage is memory.current (v2) or memory.usage_in_bytes (v1).
	MemoryUsage uint64
	// MemoryWorkingSet is kubelet's working set: the usage less the
	// inactive file cache (inactive_file, v1's total_inactive_file), which
	// the kernel reclaims first.
	MemoryWorkingSet uint64
	// MemoryLimit is memory.max or memory.limit_in_bytes; 0 when the
	// cgroup has none.
	MemoryLimit uint64
	// Pids is pids.current: the processes and threads in the cgroup.
	Pids uint64
}

// PodsCgroupStats returns the figures of the cgroup every pod is in
// (Config.CgroupRoot, kubelet's node allocatable cgroup).
func (r *Runtime) PodsCgroupStats() (CgroupStats, error) {
	return r.cgroups.stats(r.cfg.CgroupRoot)
}

// PodCgroupStats returns the figures of a pod's cgroup; qos is the pod's
// QoS class (v1.PodQOSClass as a string), which names the cgroup's parent.
func (r *Runtime) PodCgroupStats(podUID, qos string) (CgroupStats, error) {
	return r.cgroups.stats(podCgroup(r.cfg.CgroupRoot, qos, podUID))
}

// ContainerCgroupStats returns the figures of a container's cgroup, which
// is under its pod's.
func (r *Runtime) ContainerCgroupStats(podUID, qos, containerID string) (CgroupStats, error) {
	return r.cgroups.stats(filepath.Join(podCgroup(r.cfg.CgroupRoot, qos, podUID), containerID))
}

// stats reads the memory and pids figures of cgroup path.
func (c *cgroupFS) stats(path string) (CgroupStats, error) {
	var s CgroupStats
	memDir, pidsDir := filepath.Join(c.root, path), filepath.Join(c.root, path)
	usageFile, limitFile, inactiveKey := "memory.current", "memory.max", "inactive_file"
	if !c.v2 {
		memDir, pidsDir = filepath.Join(c.mounts["memory"], path), filepath.Join(c.mounts["pids"], path)
		usageFile, limitFile, inactiveKey = "memory.usage_in_bytes", "memory.limit_in_bytes", "total_inactive_file"
	}
	var err error
	if s.MemoryUsage, err = readCgroupUint(filepath.Join(memDir, usageFile)); err != nil {
		return s, err
	}
	inactive, err := readStatKey(filepath.Join(memDir, "memory.stat"), inactiveKey)
	if err != nil {
		return s, err
	}
	if s.MemoryUsage > inactive {
		s.MemoryWorkingSet = s.MemoryUsage - inactive
	}
	if s.MemoryLimit, err = readCgroupUint(filepath.Join(memDir, limitFile)); err != nil {
		return s, err
	}
	// cgroup v1 says "no limit" with the largest page-aligned int64.
	if s.MemoryLimit >= math.MaxInt64-4096*2 {
		s.MemoryLimit = 0
	}
	if s.Pids, err = readCgroupUint(filepath.Join(pidsDir, "pids.current")); err != nil && !errors.Is(err, os.ErrNotExist) {
		return s, err
	}
	return s, nil
}

// readCgroupUint reads a file holding one number, or "max" (read as 0).
func readCgroupUint(file string) (uint64, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0, err
	}
	v := strings.TrimSpace(string(b))
	if v == "max" {
		return 0, nil
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("parse %s: %w", file, err)
	}
	return n, nil
}

// readStatKey returns key's value in a "key value" file (memory.stat).
func readStatKey(file, key string) (uint64, error) {
	f, err := os.Open(file)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), " ")
		if ok && k == key {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("parse %s %s: %w", file, key, err)
			}
			return n, nil
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, nil
}
