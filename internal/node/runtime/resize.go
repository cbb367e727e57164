package runtime

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"k8s.io/klog/v2"
)

// UpdateContainerResources changes the cgroup values of a created or
// running container in place, as containerd's UpdateContainerResources
// does: through `runc update`, which writes the cgroup files (cpu.shares,
// cpu.cfs_period_us and cpu.cfs_quota_us, memory.limit_in_bytes on cgroup
// v1; cpu.weight, cpu.max, memory.max on v2) and keeps runc's own record
// of the container's configuration in step. The CPU values change when
// r has CPUShares or CPUPeriod (a zero CPUQuota then means no quota); the
// memory limit when r.MemoryLimit is set: a limit is never removed, as
// the API refuses that resize. The kernel refuses a memory limit below
// what the container uses (EBUSY on v1) once it cannot reclaim enough;
// that error comes back wrapped.
func (r *Runtime) UpdateContainerResources(ctx context.Context, id string, res Resources) error {
	m, err := r.loadMeta(id)
	if err != nil {
		return fmt.Errorf("update resources of container %s: %w", id, err)
	}
	lr := specs.LinuxResources{}
	applied := Resources{}
	if m.Resources != nil {
		applied = *m.Resources
	}
	if res.CPUShares != 0 || res.CPUPeriod != 0 {
		quota := int64(-1)
		if res.CPUQuota > 0 {
			quota = res.CPUQuota
		}
		lr.CPU = &specs.LinuxCPU{Quota: &quota}
		if res.CPUShares != 0 {
			lr.CPU.Shares = new(res.CPUShares)
			applied.CPUShares = res.CPUShares
		}
		if res.CPUPeriod != 0 {
			lr.CPU.Period = new(res.CPUPeriod)
			applied.CPUPeriod, applied.CPUQuota = res.CPUPeriod, res.CPUQuota
		}
	}
	if res.MemoryLimit > 0 {
		lr.Memory = &specs.LinuxMemory{Limit: new(res.MemoryLimit)}
		applied.MemoryLimit = res.MemoryLimit
	}
	if lr.CPU == nil && lr.Memory == nil {
		return nil
	}
	if oci := r.ociOf(id); oci.name == Crun {
		// crun 1.8.1's update writes a quota of -1 (none) as an
		// unsigned number, which cgroup v1 refuses; crun keeps no record
		// of the values that later commands read, so the cgroup files
		// are written here, as for the pod cgroup.
		if err := r.cgroups.apply(m.CgroupPath, Resources{CPUShares: res.CPUShares, CPUPeriod: res.CPUPeriod, CPUQuota: res.CPUQuota, MemoryLimit: res.MemoryLimit}); err != nil {
			return fmt.Errorf("update resources of container %s: %w", id, err)
		}
	} else {
		b, err := json.Marshal(lr)
		if err != nil {
			return err
		}
		cmd := oci.command(ctx, "update", "--resources", "-", id)
		var stderr bytes.Buffer
		cmd.Stdin, cmd.Stderr = bytes.NewReader(b), &stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("update resources of container %s: runc update: %w: %s", id, err, strings.TrimSpace(stderr.String()))
		}
	}
	nm := *m
	nm.Resources = &applied
	if err := writeJSONAtomic(filepath.Join(r.containerDir(id), "meta.json"), nm); err != nil {
		return fmt.Errorf("record resources of container %s: %w", id, err)
	}
	r.metas.Store(id, &nm)
	klog.FromContext(ctx).V(4).Info("Updated container resources", "podUID", m.PodUID, "container", m.Name, "containerID", id, "resources", applied)
	return nil
}

// UpdatePodResources writes res to the pod cgroup of uid, as kubelet's
// pod container manager (SetPodCgroupConfig) does: zero fields stay as
// they are, so a pod without a memory limit keeps none, and one whose
// containers do not all have a CPU limit keeps its quota. The pod's
// record (pod.json) keeps the new values.
func (r *Runtime) UpdatePodResources(ctx context.Context, uid string, res Resources) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	st, err := r.loadPod(uid)
	if err != nil {
		return fmt.Errorf("update resources of pod %s: %w", uid, err)
	}
	if !r.cgroups.v2 && res.CPUPeriod != 0 {
		r.unlimitEmptyChildren(ctx, st.CgroupPath)
	}
	if err := r.cgroups.apply(st.CgroupPath, res); err != nil {
		return fmt.Errorf("update resources of pod %s: %w", uid, err)
	}
	st.Config.Resources = st.Config.Resources.Updated(res)
	if err := writeJSONAtomic(filepath.Join(r.podDir(uid), "pod.json"), st); err != nil {
		return fmt.Errorf("record pod %s: %w", uid, err)
	}
	klog.FromContext(ctx).V(4).Info("Updated pod cgroup", "podUID", uid, "cgroup", st.CgroupPath, "resources", res)
	return nil
}

// unlimitEmptyChildren lifts the CPU quota of the cgroups under the pod
// cgroup that no process is left in: those of exited containers, which
// runc keeps until the container is deleted (containerd removes them when
// the task exits). On cgroup v1 the kernel refuses (EINVAL) a pod quota
// below that of any child cgroup, so a resize that shrinks the quota of a
// container that restarted for it would fail on its previous attempt's
// cgroup. (Removing the cgroup is not enough: the kernel frees its task
// group after an RCU grace period and checks it until then.)
func (r *Runtime) unlimitEmptyChildren(ctx context.Context, podPath string) {
	m, ok := r.cgroups.mounts["cpu"]
	if !ok {
		return
	}
	entries, _ := os.ReadDir(filepath.Join(m, podPath))
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		dir := filepath.Join(m, podPath, e.Name())
		procs, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
		if err != nil || len(bytes.TrimSpace(procs)) > 0 {
			continue
		}
		if err := writeCgroupFile(dir, "cpu.cfs_quota_us", "-1"); err != nil {
			klog.FromContext(ctx).V(2).Info("Cannot lift the CPU quota of an exited container", "cgroup", dir, "err", err)
		}
	}
}
