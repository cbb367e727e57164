//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

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

// oom_score_adj as kubelet sets it (pkg/kubelet/qos/policy.go): the node
// -999, so the OOM killer takes a pod first; a container 1000 when its pod
// is BestEffort, -997 when Guaranteed, and for Burstable 1000 − 1000 ×
// memory request / node memory capacity. A process kubectl exec runs in a
// container has its container's value; before, every container and exec
// ran with whatever pocketkube had.
func TestOOMScoreAdj(t *testing.T) {
	t.Parallel()
	c, ns := busyboxNamespace(t, "oomscore-")

	best := busyboxSleeper(ns, "besteffort")
	guaranteed := busyboxSleeper(ns, "guaranteed")
	guaranteed.Spec.Containers[0].Resources.Limits = corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse("100m"),
		corev1.ResourceMemory: resource.MustParse("64Mi"),
	}
	burstable := busyboxSleeper(ns, "burstable")
	request := resource.MustParse("1Gi")
	burstable.Spec.Containers[0].Resources.Requests = corev1.ResourceList{corev1.ResourceMemory: request}
	framework.RunPods(t, c, best, guaranteed, burstable)

	node, err := c.CoreV1().Nodes().Get(t.Context(), burstable.Spec.NodeName, metav1.GetOptions{})
	if err != nil || burstable.Spec.NodeName == "" {
		nodes, lerr := c.CoreV1().Nodes().List(t.Context(), metav1.ListOptions{})
		if lerr != nil || len(nodes.Items) == 0 {
			t.Fatalf("the node: %v, %v", err, lerr)
		}
		node = &nodes.Items[0]
	}
	capacity := node.Status.Capacity.Memory().Value()
	// Without CAP_SYS_RESOURCE (as on the project's VMs) no process may
	// lower its score: pocketkube keeps its own, and no container goes
	// below it (containerd's restrict_oom_score_adj).
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/oom_score_adj", shared.Pid()))
	if err != nil {
		t.Fatal(err)
	}
	own, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	floor := -1000
	if hasCapSysResource(t) {
		if own != -999 {
			t.Errorf("pocketkube's oom_score_adj = %d, want -999 as kubelet's", own)
		}
	} else {
		t.Logf("no CAP_SYS_RESOURCE here: pocketkube keeps oom_score_adj %d, containers get at least that", own)
		floor = own
	}
	want := map[string]int{
		"besteffort": 1000,
		"guaranteed": max(-997, floor),
		"burstable":  max(int(1000-(1000*request.Value())/capacity), floor),
	}
	for name, w := range want {
		for _, what := range []string{"/proc/1/oom_score_adj", "/proc/self/oom_score_adj"} {
			out, err := shared.Kubectl(t.Context(), framework.Newest(), "-n", ns, "exec", name, "--", "cat", what)
			if got := strings.TrimSpace(out); err != nil || got != strconv.Itoa(w) {
				t.Errorf("pod %s: %s = %q (%v), want %d", name, what, got, err, w)
			}
		}
	}
}

// hasCapSysResource says whether this process (root, as pocketkube) has
// CAP_SYS_RESOURCE (bit 24) in its effective set.
func hasCapSysResource(t *testing.T) bool {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "CapEff:"); ok {
			mask, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				t.Fatal(err)
			}
			return mask&(1<<24) != 0
		}
	}
	t.Fatal("no CapEff in /proc/self/status")
	return false
}
