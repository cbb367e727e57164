package runtime

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// CgroupStats are a cgroup's figures as cAdvisor reads them for kubelet:
// the resource metrics (/metrics/resource) and the eviction manager's
// summary both read them.
type CgroupStats struct {
	// Cgroup is the cgroup's path below the hierarchy's root, "/" for the
	// root cgroup: cAdvisor's container name, kubelet's id label.
	Cgroup string
	// Time is when the files were read.
	Time time.Time
	// CPUUsageNanoSeconds is the cumulative CPU time of the cgroup
	// (cgroup v1 cpuacct.usage; v2 cpu.stat usage_usec × 1000); 0 when the
	// host has no CPU accounting for it.
	CPUUsageNanoSeconds uint64
	// MemoryUsageBytes is memory.usage_in_bytes (v1) or memory.current (v2).
	MemoryUsageBytes uint64
	// MemoryWorkingSetBytes is kubelet's working set: the usage less the
	// inactive file cache (total_inactive_file in v1, inactive_file in
	// v2), which the kernel reclaims first; floored at 0.
	MemoryWorkingSetBytes uint64
	// MemoryRSSBytes is total_rss (v1) or anon (v2) of memory.stat.
	MemoryRSSBytes uint64
	// MemoryLimitBytes is memory.limit_in_bytes (v1) or memory.max (v2);
	// 0 when the cgroup has none.
	MemoryLimitBytes uint64
	// Pids is pids.current: the processes and threads in the cgroup; 0
	// when the host has no pids controller for it.
	Pids uint64
	// CPUPeriod and CPUQuota are the CFS period and quota in microseconds
	// (v2 cpu.max; v1 cpu.cfs_period_us and cpu.cfs_quota_us); CPUQuota is
	// 0 when unlimited, both are 0 when the cgroup has no such files (the
	// root cgroup).
	CPUPeriod, CPUQuota uint64
	// CPUShares is cpu.shares (v1), or cpu.weight (v2) converted back to
	// shares as cAdvisor does; 0 when the cgroup has no such file.
	CPUShares uint64
}

// NodeStats returns the usage of the root cgroup, which kubelet reports as
// the node's. On a pure cgroup v2 host the root cgroup has no memory files,
// so it returns an error there.
func (r *Runtime) NodeStats() (CgroupStats, error) {
	return r.cgroups.stats("/")
}

// PodStats returns the usage of the pod cgroup of podUID, as its state
// file records it.
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

// PodsCgroupStats returns the figures of the cgroup every pod is in
// (Config.CgroupRoot, kubelet's node allocatable cgroup).
func (r *Runtime) PodsCgroupStats() (CgroupStats, error) {
	return r.cgroups.stats(r.cfg.CgroupRoot)
}

// PodCgroupStats returns the usage figures of a pod's cgroup (CPU time,
// memory, pids), for the stats summary; qos is the pod's QoS class
// (v1.PodQOSClass as a string), which names the cgroup's parent. Its CPU
// spec (CPUPeriod, CPUQuota, CPUShares) is left 0: the summary has no use
// for it, and it is three of the eight files a cgroup's figures take
// (PodStats reads it).
func (r *Runtime) PodCgroupStats(podUID, qos string) (CgroupStats, error) {
	return r.cgroups.usage(podCgroup(r.cfg.CgroupRoot, qos, podUID))
}

// ContainerCgroupStats returns the usage figures of a container's cgroup,
// which is under its pod's, as PodCgroupStats (no CPU spec).
func (r *Runtime) ContainerCgroupStats(podUID, qos, containerID string) (CgroupStats, error) {
	return r.cgroups.usage(filepath.Join(podCgroup(r.cfg.CgroupRoot, qos, podUID), containerID))
}

// ContainerPid returns a process of a container's cgroup, the first its
// cgroup.procs lists (the container's init while it runs), or 0 when the
// cgroup has none: a process to read the container's namespaces through
// from the host, as the pods' network stats do.
func (r *Runtime) ContainerPid(podUID, qos, containerID string) (int, error) {
	return r.cgroups.firstPid(filepath.Join(podCgroup(r.cfg.CgroupRoot, qos, podUID), containerID))
}

// firstPid reads the first pid of cgroup path's cgroup.procs (v1: in the
// memory hierarchy, which stats requires too).
func (c *cgroupFS) firstPid(path string) (int, error) {
	dir := filepath.Join(c.root, path)
	if !c.v2 {
		mem, ok := c.mounts["memory"]
		if !ok {
			return 0, errors.New("cgroup v1: no memory hierarchy")
		}
		dir = filepath.Join(mem, path)
	}
	var rd fileReader
	b, err := rd.read(dir + "/cgroup.procs")
	if err != nil {
		return 0, err
	}
	line, _, _ := bytes.Cut(b, []byte{'\n'})
	if len(line) == 0 {
		return 0, nil
	}
	pid, err := strconv.Atoi(string(line))
	if err != nil {
		return 0, fmt.Errorf("parse %s/cgroup.procs: %w", dir, err)
	}
	return pid, nil
}

// stats reads the CPU, memory and pids files of cgroup path and its CPU
// spec: each file once, into one buffer (a summary reads a cgroup's five
// usage files for each pod and each container, through usage).
func (c *cgroupFS) stats(path string) (CgroupStats, error) {
	return c.read(path, true)
}

// usage is stats without the CPU spec (period, quota, shares), which stay 0.
func (c *cgroupFS) usage(path string) (CgroupStats, error) {
	return c.read(path, false)
}

func (c *cgroupFS) read(path string, spec bool) (CgroupStats, error) {
	s := CgroupStats{Cgroup: filepath.Join("/", path), Time: time.Now()}
	rd := fileReader{buf: make([]byte, 4096)}
	dir := filepath.Join(c.root, path)
	cpuFile := dir + "/cpu.stat"
	memDir, pidsDir := dir, dir
	usageFile, limitFile, inactiveKey, rssKey := "memory.current", "memory.max", "inactive_file", "anon"
	if !c.v2 {
		cpuFile = ""
		if m, ok := c.mounts["cpuacct"]; ok {
			cpuFile = filepath.Join(m, path, "cpuacct.usage")
		}
		mem, ok := c.mounts["memory"]
		if !ok {
			return s, errors.New("cgroup v1: no memory hierarchy")
		}
		memDir, pidsDir = filepath.Join(mem, path), filepath.Join(c.mounts["pids"], path)
		usageFile, limitFile, inactiveKey, rssKey = "memory.usage_in_bytes", "memory.limit_in_bytes", "total_inactive_file", "total_rss"
	}
	var err error
	switch {
	case cpuFile == "":
	case c.v2:
		var usec [1]uint64
		if err = rd.keyed(cpuFile, []string{"usage_usec"}, usec[:]); err == nil {
			s.CPUUsageNanoSeconds = usec[0] * 1000
		}
	default:
		s.CPUUsageNanoSeconds, err = rd.uint(cpuFile)
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return s, err
	}
	if s.MemoryUsageBytes, err = rd.uint(memDir + "/" + usageFile); err != nil {
		return s, err
	}
	var mem [2]uint64
	if err := rd.keyed(memDir+"/memory.stat", []string{rssKey, inactiveKey}, mem[:]); err != nil {
		return s, err
	}
	s.MemoryRSSBytes = mem[0]
	s.MemoryWorkingSetBytes = workingSet(s.MemoryUsageBytes, mem[1])
	if s.MemoryLimitBytes, err = rd.uint(memDir + "/" + limitFile); err != nil && !errors.Is(err, os.ErrNotExist) {
		return s, err // the root cgroup has no limit file on v2
	}
	// cgroup v1 says "no limit" with the largest page-aligned int64.
	if s.MemoryLimitBytes >= math.MaxInt64-4096*2 {
		s.MemoryLimitBytes = 0
	}
	if s.Pids, err = rd.uint(pidsDir + "/pids.current"); err != nil && !errors.Is(err, os.ErrNotExist) {
		return s, err
	}
	if spec {
		c.cpuSpec(&rd, path, &s)
	}
	return s, nil
}

// cpuSpec reads the CFS quota, period and shares of cgroup path into s, as
// cAdvisor's GetSpec: a file that is missing or unreadable leaves its
// figure 0.
func (c *cgroupFS) cpuSpec(rd *fileReader, path string, s *CgroupStats) {
	if c.v2 {
		dir := filepath.Join(c.root, path)
		if w, err := rd.uint(dir + "/cpu.weight"); err == nil && w >= 1 && w <= 10000 {
			s.CPUShares = 2 + ((w-1)*262142)/9999
		}
		if b, err := rd.read(dir + "/cpu.max"); err == nil {
			quota, period, ok := strings.Cut(string(bytes.TrimSpace(b)), " ")
			if ok {
				s.CPUPeriod, _ = strconv.ParseUint(period, 10, 64)
				if quota != "max" {
					s.CPUQuota, _ = strconv.ParseUint(quota, 10, 64)
				}
			}
		}
		return
	}
	m, ok := c.mounts["cpu"]
	if !ok {
		return
	}
	dir := filepath.Join(m, path)
	s.CPUShares, _ = rd.uint(dir + "/cpu.shares")
	s.CPUPeriod, _ = rd.uint(dir + "/cpu.cfs_period_us")
	if b, err := rd.read(dir + "/cpu.cfs_quota_us"); err == nil {
		// -1 is "no quota", which ParseUint rejects, leaving 0.
		s.CPUQuota, _ = strconv.ParseUint(string(bytes.TrimSpace(b)), 10, 64)
	}
}

// fileReader reads small kernel files (cgroup files) into one buffer that
// it reuses from file to file, with plain open, read and close calls: no
// os.File, no fstat for a size the kernel does not know, no allocation per
// file. It is not safe for concurrent use.
type fileReader struct {
	buf []byte
}

// read returns the content of file, valid until the next call. Errors
// are *os.PathError, so errors.Is(err, os.ErrNotExist) works.
func (rd *fileReader) read(file string) ([]byte, error) {
	fd, err := unix.Open(file, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: file, Err: err}
	}
	defer unix.Close(fd)
	if len(rd.buf) == 0 {
		rd.buf = make([]byte, 4096)
	}
	n := 0
	for {
		if n == len(rd.buf) {
			rd.buf = append(rd.buf, make([]byte, len(rd.buf))...)
		}
		m, err := unix.Read(fd, rd.buf[n:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, &os.PathError{Op: "read", Path: file, Err: err}
		}
		if m == 0 {
			return rd.buf[:n], nil
		}
		n += m
	}
}

// uint reads a file holding one number, or "max" (read as 0).
func (rd *fileReader) uint(file string) (uint64, error) {
	b, err := rd.read(file)
	if err != nil {
		return 0, err
	}
	return parseCgroupUint(file, bytes.TrimSpace(b))
}

// keyed reads the values of keys from a flat keyed file ("key value"
// lines) such as memory.stat into values (same order); a key the file
// does not have, or with a value that is not a number, leaves 0.
func (rd *fileReader) keyed(file string, keys []string, values []uint64) error {
	b, err := rd.read(file)
	if err != nil {
		return err
	}
	for len(b) > 0 {
		var line []byte
		line, b, _ = bytes.Cut(b, []byte{'\n'})
		k, v, ok := bytes.Cut(line, []byte{' '})
		if !ok {
			continue
		}
		for i, key := range keys {
			if string(k) == key {
				values[i], _ = strconv.ParseUint(string(bytes.TrimSpace(v)), 10, 64)
			}
		}
	}
	return nil
}

// workingSet is cAdvisor's: usage less inactive file pages, at least 0.
func workingSet(usage, inactiveFile uint64) uint64 {
	if inactiveFile >= usage {
		return 0
	}
	return usage - inactiveFile
}

// parseCgroupUint parses the content v of a file holding one number, or
// "max" (read as 0).
func parseCgroupUint(file string, v []byte) (uint64, error) {
	if string(v) == "max" {
		return 0, nil
	}
	n, err := strconv.ParseUint(string(v), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("parse %s: %w", file, err)
	}
	return n, nil
}
