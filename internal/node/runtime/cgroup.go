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

	"golang.org/x/sys/unix"
)

// cgroupFS knows where the cgroup hierarchies are mounted. It is detected
// once by New; v2 means a pure unified hierarchy at /sys/fs/cgroup.
type cgroupFS struct {
	v2     bool
	root   string            // unified mount (v2)
	mounts map[string]string // v1: controller (or "name=x") → mount point
}

func detectCgroups() (*cgroupFS, error) {
	var st unix.Statfs_t
	if err := unix.Statfs("/sys/fs/cgroup", &st); err != nil {
		return nil, fmt.Errorf("statfs /sys/fs/cgroup: %w", err)
	}
	if st.Type == unix.CGROUP2_SUPER_MAGIC {
		return &cgroupFS{v2: true, root: "/sys/fs/cgroup"}, nil
	}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("read mountinfo: %w", err)
	}
	defer f.Close()
	c := &cgroupFS{mounts: map[string]string{}}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// id parent maj:min root mountpoint opts ... - fstype source superopts
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		pf, qf := strings.Fields(pre), strings.Fields(post)
		if len(pf) < 5 || len(qf) < 3 {
			continue
		}
		if qf[0] == "cgroup2" {
			// Hybrid layout: runc also creates the container's cgroup in
			// the unified hierarchy, so removal must visit it.
			if _, dup := c.mounts["unified"]; !dup {
				c.mounts["unified"] = unescapeMountPath(pf[4])
			}
			continue
		}
		if qf[0] != "cgroup" {
			continue
		}
		for _, o := range strings.Split(qf[2], ",") {
			if o == "rw" || o == "ro" {
				continue
			}
			if _, dup := c.mounts[o]; !dup {
				c.mounts[o] = unescapeMountPath(pf[4])
			}
		}
	}
	if len(c.mounts) == 0 {
		return nil, errors.New("detect cgroups: no cgroup v1 hierarchy and no unified /sys/fs/cgroup")
	}
	return c, sc.Err()
}

func unescapeMountPath(p string) string {
	s, err := strconv.Unquote(`"` + strings.ReplaceAll(p, `"`, `\"`) + `"`)
	if err != nil {
		return p
	}
	return s
}

// hierarchies returns every distinct mount point (v1) or the unified root.
func (c *cgroupFS) hierarchies() []string {
	if c.v2 {
		return []string{c.root}
	}
	seen := map[string]bool{}
	var out []string
	for _, m := range c.mounts {
		if !seen[m] {
			seen[m] = true
			out = append(out, m)
		}
	}
	return out
}

// oomFile is the file and key holding the OOM-kill counter of cgroup path.
func (c *cgroupFS) oomFile(path string) string {
	if c.v2 {
		return filepath.Join(c.root, path, "memory.events")
	}
	if m, ok := c.mounts["memory"]; ok {
		return filepath.Join(m, path, "memory.oom_control")
	}
	return ""
}

// podCgroup is kubelet's cgroupfs name of a pod's cgroup.
func podCgroup(root, qos, uid string) string {
	switch qos {
	case qosGuaranteed:
		return filepath.Join(root, "pod"+uid)
	case qosBurstable:
		return filepath.Join(root, "burstable", "pod"+uid)
	default:
		return filepath.Join(root, "besteffort", "pod"+uid)
	}
}

// createQOSCgroups makes the pods' cgroup root and its burstable and
// besteffort children before any pod, as kubelet's container manager does
// at start (pkg/kubelet/cm qosContainerManager.Start): the eviction
// manager reads the root as the "pods" system container from its first
// pass, not only once the first pod has made it.
func (c *cgroupFS) createQOSCgroups(root string) error {
	for _, p := range []string{root, filepath.Join(root, "burstable"), filepath.Join(root, "besteffort")} {
		if err := c.apply(p, Resources{}); err != nil {
			return fmt.Errorf("create the pods' cgroups: %w", err)
		}
	}
	return nil
}

// sharesToWeight is runc's cgroup v1 → v2 CPU conversion.
func sharesToWeight(shares uint64) uint64 {
	if shares == 0 {
		return 0
	}
	return 1 + ((shares-2)*9999)/262142
}

// pidsMax is the pids.max value of a PidsLimit ("" leaves the file alone).
func pidsMax(limit int64) string {
	switch {
	case limit > 0:
		return strconv.FormatInt(limit, 10)
	case limit < 0:
		return "max"
	}
	return ""
}

func writeCgroupFile(dir, file, value string) error {
	if err := os.WriteFile(filepath.Join(dir, file), []byte(value), 0o644); err != nil {
		return fmt.Errorf("write cgroup file %s: %w", filepath.Join(dir, file), err)
	}
	return nil
}

// apply creates the cgroup path and sets r on it.
func (c *cgroupFS) apply(path string, r Resources) error {
	if c.v2 {
		// Enable the controllers on every ancestor so that path has them.
		parts := strings.Split(strings.Trim(path, "/"), "/")
		dir := c.root
		for _, p := range parts {
			for _, ctl := range []string{"cpu", "memory", "pids"} {
				_ = writeCgroupFile(dir, "cgroup.subtree_control", "+"+ctl)
			}
			dir = filepath.Join(dir, p)
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return fmt.Errorf("create cgroup %s: %w", dir, err)
			}
		}
		if w := sharesToWeight(r.CPUShares); w != 0 {
			if err := writeCgroupFile(dir, "cpu.weight", strconv.FormatUint(w, 10)); err != nil {
				return err
			}
		}
		if r.CPUPeriod != 0 {
			q := "max"
			if r.CPUQuota > 0 {
				q = strconv.FormatInt(r.CPUQuota, 10)
			}
			if err := writeCgroupFile(dir, "cpu.max", fmt.Sprintf("%s %d", q, r.CPUPeriod)); err != nil {
				return err
			}
		}
		if r.MemoryLimit > 0 {
			if err := writeCgroupFile(dir, "memory.max", strconv.FormatInt(r.MemoryLimit, 10)); err != nil {
				return err
			}
		}
		if v := pidsMax(r.PidsLimit); v != "" {
			if err := writeCgroupFile(dir, "pids.max", v); err != nil {
				return err
			}
		}
		return nil
	}
	type kv struct{ ctl, file, val string }
	var writes []kv
	if r.CPUShares != 0 {
		writes = append(writes, kv{"cpu", "cpu.shares", strconv.FormatUint(r.CPUShares, 10)})
	}
	if r.CPUPeriod != 0 {
		writes = append(writes, kv{"cpu", "cpu.cfs_period_us", strconv.FormatUint(r.CPUPeriod, 10)})
		q := int64(-1)
		if r.CPUQuota > 0 {
			q = r.CPUQuota
		}
		writes = append(writes, kv{"cpu", "cpu.cfs_quota_us", strconv.FormatInt(q, 10)})
	}
	if r.MemoryLimit > 0 {
		writes = append(writes, kv{"memory", "memory.limit_in_bytes", strconv.FormatInt(r.MemoryLimit, 10)})
	}
	if v := pidsMax(r.PidsLimit); v != "" {
		writes = append(writes, kv{"pids", "pids.max", v})
	}
	for _, ctl := range []string{"cpu", "memory", "pids"} {
		m, ok := c.mounts[ctl]
		if !ok {
			continue
		}
		if err := os.MkdirAll(filepath.Join(m, path), 0o755); err != nil {
			return fmt.Errorf("create cgroup %s: %w", filepath.Join(m, path), err)
		}
	}
	for _, w := range writes {
		m, ok := c.mounts[w.ctl]
		if !ok {
			continue
		}
		if err := writeCgroupFile(filepath.Join(m, path), w.file, w.val); err != nil {
			return err
		}
	}
	return nil
}

// remove kills what is left in path and its children, then removes the
// directories bottom-up in every hierarchy. A missing path is not an error.
func (c *cgroupFS) remove(path string) error {
	var errs []error
	for _, h := range c.hierarchies() {
		dir := filepath.Join(h, path)
		if _, err := os.Stat(dir); err != nil {
			continue
		}
		if err := removeCgroupTree(dir); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func removeCgroupTree(dir string) error {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if e.IsDir() {
			if err := removeCgroupTree(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	var err error
	for i := 0; i < 50; i++ {
		if err = unix.Rmdir(dir); err == nil || errors.Is(err, unix.ENOENT) {
			return nil
		}
		if procs, _ := os.ReadFile(filepath.Join(dir, "cgroup.procs")); len(procs) > 0 {
			for _, f := range strings.Fields(string(procs)) {
				if pid, perr := strconv.Atoi(f); perr == nil {
					_ = unix.Kill(pid, unix.SIGKILL)
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("remove cgroup %s: %w", dir, err)
}
