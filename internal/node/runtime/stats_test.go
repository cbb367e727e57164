package runtime

import (
	"testing"
	"time"
)

// TestContainerStats reads a busy container's cgroup: a shell loop that
// holds a 4 MiB string in memory and burns CPU, in a pod cgroup of its own.
func TestContainerStats(t *testing.T) {
	e := newTestEnv(t)
	pod := e.pod(t, "busy")
	id := e.run(t, e.container(pod, "main", "sh", "-c", `x=$(head -c 4194304 /dev/zero | tr '\0' a); while :; do :; done`))
	e.waitState(t, id, StateRunning)

	// Poll (bounded) until the loop has run and the string is built.
	var c CgroupStats
	deadline := time.Now().Add(30 * time.Second)
	for {
		var err error
		if c, err = e.r.ContainerStats(pod.UID, id); err != nil {
			t.Fatalf("ContainerStats: %v", err)
		}
		if c.CPUUsageNanoSeconds > 0 && c.MemoryRSSBytes >= 4<<20 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("container stats %+v: want CPU time and at least 4 MiB RSS", c)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if c.MemoryUsageBytes == 0 || c.MemoryWorkingSetBytes == 0 || c.MemoryWorkingSetBytes > c.MemoryUsageBytes {
		t.Errorf("container memory %+v: want 0 < working set <= usage", c)
	}

	// The pod cgroup holds the container's: at least as much of both.
	p, err := e.r.PodStats(pod.UID)
	if err != nil {
		t.Fatalf("PodStats: %v", err)
	}
	if p.CPUUsageNanoSeconds < c.CPUUsageNanoSeconds || p.MemoryUsageBytes < c.MemoryUsageBytes {
		t.Errorf("pod stats %+v below its container's %+v", p, c)
	}

	n, err := e.r.NodeStats()
	if err != nil {
		if e.r.cgroups.v2 {
			t.Skipf("NodeStats on cgroup v2: %v", err)
		}
		t.Fatalf("NodeStats: %v", err)
	}
	if n.CPUUsageNanoSeconds < p.CPUUsageNanoSeconds || n.MemoryWorkingSetBytes == 0 {
		t.Errorf("node stats %+v: want at least the pod's CPU time %d and a working set", n, p.CPUUsageNanoSeconds)
	}

	if _, err := e.r.ContainerStats("uid-none", id); err == nil {
		t.Errorf("ContainerStats of an unknown pod: no error")
	}
}
