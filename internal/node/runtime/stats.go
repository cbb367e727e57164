package runtime

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// CgroupStats is the CPU and memory usage of one cgroup, as cAdvisor reads
// it for kubelet.
type CgroupStats struct {
	// Time is when the files were read.
	Time time.Time
	// CPUUsageNanoSeconds is the cumulative CPU time of the cgroup
	// (cgroup v1 cpuacct.usage; v2 cpu.stat usage_usec × 1000).
	CPUUsageNanoSeconds uint64
	// MemoryUsageBytes is memory.usage_in_bytes (v1) or memory.current (v2).
	MemoryUsageBytes uint64
	// MemoryWorkingSetBytes is kubelet's working set: the usage less the
	// inactive file cache (total_inactive_file in v1, inactive_file in
	// v2), floored at 0.
	MemoryWorkingSetBytes uint64
	// MemoryRSSBytes is total_rss (v1) or anon (v2) of memory.stat.
	MemoryRSSBytes uint64
}

// NodeStats returns the usage of the root cgroup, which kubelet reports as
// the node's. On a pure cgroup v2 host the root cgroup has no memory files,
// so it returns an error there.
func (r *Runtime) NodeStats() (CgroupStats, error) {
	return r.cgroups.stats("/")
}

// PodStats returns the usage of the pod cgroup of podUID.
func (r *Runtime) PodStats(podUID string) (CgroupStats, error) {
	st, err := r.loadPod(podUID)
	if err != nil {
		return CgroupStats{}, err
	}
	return r.cgroups.stats(st.CgroupPath)
}

// ContainerStats returns the usage of container id of pod podUID (its
// cgroup is the pod's cgroup/id).
func (r *Runtime) ContainerStats(podUID, id string) (CgroupStats, error) {
	st, err := r.loadPod(podUID)
	if err != nil {
		return CgroupStats{}, err
	}
	return r.cgroups.stats(filepath.Join(st.CgroupPath, id))
}

// stats reads the CPU and memory files of cgroup path.
func (c *cgroupFS) stats(path string) (CgroupStats, error) {
	s := CgroupStats{Time: time.Now()}
	if c.v2 {
		dir := filepath.Join(c.root, path)
		cpu, err := readKeyed(filepath.Join(dir, "cpu.stat"))
		if err != nil {
			return s, err
		}
		s.CPUUsageNanoSeconds = cpu["usage_usec"] * 1000
		if s.MemoryUsageBytes, err = readUint(filepath.Join(dir, "memory.current")); err != nil {
			return s, err
		}
		mem, err := readKeyed(filepath.Join(dir, "memory.stat"))
		if err != nil {
			return s, err
		}
		s.MemoryRSSBytes = mem["anon"]
		s.MemoryWorkingSetBytes = workingSet(s.MemoryUsageBytes, mem["inactive_file"])
		return s, nil
	}
	cpuacct, ok := c.mounts["cpuacct"]
	if !ok {
		return s, errors.New("cgroup v1: no cpuacct hierarchy")
	}
	memory, ok := c.mounts["memory"]
	if !ok {
		return s, errors.New("cgroup v1: no memory hierarchy")
	}
	var err error
	if s.CPUUsageNanoSeconds, err = readUint(filepath.Join(cpuacct, path, "cpuacct.usage")); err != nil {
		return s, err
	}
	if s.MemoryUsageBytes, err = readUint(filepath.Join(memory, path, "memory.usage_in_bytes")); err != nil {
		return s, err
	}
	mem, err := readKeyed(filepath.Join(memory, path, "memory.stat"))
	if err != nil {
		return s, err
	}
	s.MemoryRSSBytes = mem["total_rss"]
	s.MemoryWorkingSetBytes = workingSet(s.MemoryUsageBytes, mem["total_inactive_file"])
	return s, nil
}

// workingSet is cAdvisor's: usage less inactive file pages, at least 0.
func workingSet(usage, inactiveFile uint64) uint64 {
	if inactiveFile >= usage {
		return 0
	}
	return usage - inactiveFile
}

func readUint(file string) (uint64, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0, err
	}
	v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("parse %s: %w", file, err)
	}
	return v, nil
}

// readKeyed reads a flat keyed file ("key value" lines) such as memory.stat.
func readKeyed(file string) (map[string]uint64, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]uint64{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		if n, err := strconv.ParseUint(v, 10, 64); err == nil {
			out[k] = n
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", file, err)
	}
	return out, nil
}
