package runtime

import (
	"strings"
	"testing"
)

// TestUpdateResources resizes a running container and its pod in place:
// the container reads its new values in its own cgroup, and its status
// reports them.
func TestUpdateResources(t *testing.T) {
	e := newTestEnv(t)
	p := e.pod(t, "resize", func(p *PodConfig) {
		p.QOSClass = "Burstable"
		p.Resources = Resources{CPUShares: 102, CPUQuota: 20000, CPUPeriod: 100000, MemoryLimit: 64 << 20}
	})
	cfg := e.container(p, "c", "sleep", "60")
	cfg.Resources = Resources{CPUShares: 102, CPUQuota: 20000, CPUPeriod: 100000, MemoryLimit: 64 << 20}
	id := e.run(t, cfg)
	e.waitState(t, id, StateRunning)

	if err := e.r.UpdatePodResources(e.ctx, p.UID, Resources{CPUShares: 256, CPUQuota: 50000, CPUPeriod: 100000, MemoryLimit: 128 << 20}); err != nil {
		t.Fatal(err)
	}
	if err := e.r.UpdateContainerResources(e.ctx, id, Resources{MemoryLimit: 96 << 20}); err != nil {
		t.Fatal(err)
	}
	if err := e.r.UpdateContainerResources(e.ctx, id, Resources{CPUShares: 256, CPUQuota: 0, CPUPeriod: 100000}); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"/sys/fs/cgroup/memory.max": "100663296", "/sys/fs/cgroup/cpu.max": "max 100000", "/sys/fs/cgroup/cpu.weight": "10"}
	pod := map[string]string{"memory/memory.limit_in_bytes": "134217728", "cpu/cpu.cfs_quota_us": "50000", "cpu/cpu.shares": "256"}
	if !e.r.cgroups.v2 {
		want = map[string]string{"/sys/fs/cgroup/memory/memory.limit_in_bytes": "100663296", "/sys/fs/cgroup/cpu/cpu.cfs_quota_us": "-1", "/sys/fs/cgroup/cpu/cpu.shares": "256"}
	} else {
		pod = map[string]string{"memory/memory.max": "134217728", "cpu/cpu.max": "50000 100000", "cpu/cpu.weight": "10"}
	}
	for file, w := range want {
		if got := strings.TrimSpace(e.execOut(t, id, "cat", file)); got != w {
			t.Errorf("container's %s = %q, want %q", file, got, w)
		}
	}
	for f, w := range pod {
		ctl, file, _ := strings.Cut(f, "/")
		if got := e.podCgroupFile(t, p.UID, ctl, file); got != w {
			t.Errorf("pod cgroup %s = %q, want %q", f, got, w)
		}
	}
	cs, err := e.r.ContainerStatus(e.ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if w := (Resources{CPUShares: 256, CPUPeriod: 100000, MemoryLimit: 96 << 20}); cs.Resources == nil || *cs.Resources != w {
		t.Errorf("status resources %+v, want %+v", cs.Resources, w)
	}
}

// TestUpdatePodQuotaBelowExitedContainer: on cgroup v1 the kernel refuses
// a pod quota below a child's; an exited container's cgroup (a container
// that restarted for a resize) must not stand in the way, and the
// container is still removed cleanly afterwards.
func TestUpdatePodQuotaBelowExitedContainer(t *testing.T) {
	e := newTestEnv(t)
	p := e.pod(t, "shrink", func(p *PodConfig) {
		p.QOSClass = "Burstable"
		p.Resources = Resources{CPUShares: 512, CPUQuota: 50000, CPUPeriod: 100000}
	})
	cfg := e.container(p, "old", "true")
	cfg.Resources = Resources{CPUShares: 512, CPUQuota: 50000, CPUPeriod: 100000}
	old := e.run(t, cfg)
	e.waitState(t, old, StateExited)
	cfg = e.container(p, "new", "sleep", "60")
	cfg.Resources = Resources{CPUShares: 102, CPUQuota: 10000, CPUPeriod: 100000}
	e.waitState(t, e.run(t, cfg), StateRunning)

	if err := e.r.UpdatePodResources(e.ctx, p.UID, Resources{CPUShares: 102, CPUQuota: 10000, CPUPeriod: 100000}); err != nil {
		t.Fatal(err)
	}
	if got := e.podCgroupFile(t, p.UID, "cpu", map[bool]string{false: "cpu.cfs_quota_us", true: "cpu.max"}[e.r.cgroups.v2]); got != "10000" && got != "10000 100000" {
		t.Errorf("pod quota %q, want 10000", got)
	}
	if err := e.r.RemoveContainer(e.ctx, old); err != nil {
		t.Errorf("remove the exited container: %v", err)
	}
}
