//go:build e2e

package e2e

import (
	"strings"
	"testing"

	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/pocketkube/pocketkube/test/framework"
)

// Container resource limits as the container sees them in its own cgroup,
// with the values kubelet asks runc for (pkg/kubelet/kuberuntime
// calculateLinuxResources, CFS quota on, 100ms period): quota = milliCPU
// × 100000 / 1000, shares = request milliCPU × 1024 / 1000 (the API
// server defaults a missing request to the limit), the memory limit in
// bytes. On cgroup v2 runc writes quota and period to cpu.max and the limit
// to memory.max; on v1 to cpu.cfs_quota_us, cpu.cfs_period_us, cpu.shares
// and memory.limit_in_bytes.

// cgroupV1NoLimit is memory.limit_in_bytes without a limit: the kernel's
// PAGE_COUNTER_MAX in bytes (4 KiB pages, 64 bits).
const cgroupV1NoLimit = "9223372036854771712"

func TestContainerCgroupLimits(t *testing.T) {
	t.Parallel()
	c, ns := busyboxNamespace(t, "resources-")

	pod := busyboxSleeper(ns, "limited")
	pod.Spec.Containers[0].Resources.Limits = corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse("250m"),
		corev1.ResourceMemory: resource.MustParse("64Mi"),
	}
	// A second container with a CPU limit only: its memory is unlimited
	// (and the pod Burstable).
	side := pod.Spec.Containers[0]
	side.Name = "side"
	side.Resources.Limits = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1500m")}
	pod.Spec.Containers = append(pod.Spec.Containers, side)
	framework.RunPods(t, c, pod)

	var st unix.Statfs_t
	if err := unix.Statfs("/sys/fs/cgroup", &st); err != nil {
		t.Fatal(err)
	}
	type file struct{ path, want string }
	want := map[string][]file{}
	if st.Type == unix.CGROUP2_SUPER_MAGIC {
		want["main"] = []file{{"/sys/fs/cgroup/cpu.max", "25000 100000"}, {"/sys/fs/cgroup/memory.max", "67108864"}}
		want["side"] = []file{{"/sys/fs/cgroup/cpu.max", "150000 100000"}, {"/sys/fs/cgroup/memory.max", "max"}}
	} else {
		want["main"] = []file{
			{"/sys/fs/cgroup/cpu/cpu.cfs_quota_us", "25000"},
			{"/sys/fs/cgroup/cpu/cpu.cfs_period_us", "100000"},
			{"/sys/fs/cgroup/cpu/cpu.shares", "256"},
			{"/sys/fs/cgroup/memory/memory.limit_in_bytes", "67108864"},
		}
		want["side"] = []file{
			{"/sys/fs/cgroup/cpu/cpu.cfs_quota_us", "150000"},
			{"/sys/fs/cgroup/cpu/cpu.cfs_period_us", "100000"},
			{"/sys/fs/cgroup/cpu/cpu.shares", "1536"},
			{"/sys/fs/cgroup/memory/memory.limit_in_bytes", cgroupV1NoLimit},
		}
	}
	for _, container := range []string{"main", "side"} {
		for _, f := range want[container] {
			out, err := shared.Kubectl(t.Context(), framework.Newest(), "-n", ns, "exec", "limited", "-c", container, "--", "cat", f.path)
			if got := strings.TrimSpace(out); err != nil || got != f.want {
				t.Errorf("container %s: %s = %q (%v), want %q", container, f.path, got, err, f.want)
			}
		}
	}
}
