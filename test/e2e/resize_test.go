//go:build e2e

package e2e

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/pocketkube/pocketkube/test/framework"
)

// In-place pod resize (InPlacePodVerticalScaling, GA): `kubectl patch
// --subresource resize` changes a running pod's CPU and memory; the node
// admits the resize, writes the new values to the pod's and the
// containers' cgroups (a container whose resizePolicy says
// RestartContainer for the resource restarts instead), and reports them
// in status.containerStatuses[].resources and allocatedResources, as
// kubelet does. The cgroup files are read from inside the containers, as
// upstream's pod_resize.go specs read them.

// resizeReqs is requirements from "cpu=100m,memory=32Mi" lists.
func resizeReqs(requests, limits string) corev1.ResourceRequirements {
	parse := func(s string) corev1.ResourceList {
		if s == "" {
			return nil
		}
		l := corev1.ResourceList{}
		for _, kv := range strings.Split(s, ",") {
			k, v, _ := strings.Cut(kv, "=")
			l[corev1.ResourceName(k)] = resource.MustParse(v)
		}
		return l
	}
	return corev1.ResourceRequirements{Requests: parse(requests), Limits: parse(limits)}
}

// cgroupV2 tells whether the host (and so the containers) has the unified
// hierarchy only.
func cgroupV2(t *testing.T) bool {
	var st unix.Statfs_t
	if err := unix.Statfs("/sys/fs/cgroup", &st); err != nil {
		t.Fatal(err)
	}
	return st.Type == unix.CGROUP2_SUPER_MAGIC
}

// cgroupWant is what a container with res reads in its own cgroup, as
// upstream's cgroups.VerifyContainerCgroupValues expects it: the quota
// (-1, or "max", without a CPU limit), the shares (weight on v2) and the
// memory limit.
func cgroupWant(v2 bool, res corev1.ResourceRequirements) map[string]string {
	cpuReq, cpuLim := res.Requests.Cpu().MilliValue(), res.Limits.Cpu().MilliValue()
	if cpuReq == 0 {
		cpuReq = cpuLim
	}
	shares := max(cpuReq*1024/1000, 2)
	quota := "-1"
	if cpuLim > 0 {
		quota = strconv.FormatInt(max(cpuLim*100, 1000), 10)
	}
	mem := res.Limits.Memory().Value()
	if v2 {
		if quota == "-1" {
			quota = "max"
		}
		w := map[string]string{
			"/sys/fs/cgroup/cpu.max":    quota + " 100000",
			"/sys/fs/cgroup/cpu.weight": strconv.FormatInt(1+((shares-2)*9999)/262142, 10),
		}
		if mem > 0 {
			w["/sys/fs/cgroup/memory.max"] = strconv.FormatInt(mem, 10)
		}
		return w
	}
	w := map[string]string{
		"/sys/fs/cgroup/cpu/cpu.cfs_quota_us": quota,
		"/sys/fs/cgroup/cpu/cpu.shares":       strconv.FormatInt(shares, 10),
	}
	if mem > 0 {
		w["/sys/fs/cgroup/memory/memory.limit_in_bytes"] = strconv.FormatInt(mem, 10)
	}
	return w
}

// checkCgroups reads want's files in container of pod ns/name.
func checkCgroups(t *testing.T, ns, name, container string, want map[string]string) {
	t.Helper()
	for path, w := range want {
		out, err := shared.Kubectl(t.Context(), framework.Newest(), "-n", ns, "exec", name, "-c", container, "--", "head", "-n", "1", path)
		if got := strings.TrimSpace(out); err != nil || got != w {
			t.Errorf("container %s: %s = %q (%v), want %q", container, path, got, err, w)
		}
	}
}

// resizePatch asks for res on each named container through the resize
// subresource, with kubectl's strategic merge patch (containers merged by
// name); the names must sort in the pod's order.
func resizePatch(t *testing.T, ns, name string, res map[string]corev1.ResourceRequirements) (string, error) {
	t.Helper()
	// In the pod's order: a strategic merge patch orders the list as
	// the patch does, and a resize must not reorder containers.
	var cs []string
	for _, c := range slices.Sorted(maps.Keys(res)) {
		r := res[c]
		var parts []string
		for _, l := range []struct {
			key  string
			list corev1.ResourceList
		}{{"requests", r.Requests}, {"limits", r.Limits}} {
			if l.list == nil {
				continue
			}
			var kv []string
			for k, q := range l.list {
				kv = append(kv, fmt.Sprintf("%q:%q", k, q.String()))
			}
			parts = append(parts, fmt.Sprintf("%q:{%s}", l.key, strings.Join(kv, ",")))
		}
		cs = append(cs, fmt.Sprintf(`{"name":%q,"resources":{%s}}`, c, strings.Join(parts, ",")))
	}
	patch := fmt.Sprintf(`{"spec":{"containers":[%s]}}`, strings.Join(cs, ","))
	return shared.Kubectl(t.Context(), framework.Newest(), "-n", ns, "patch", "pod", name, "--subresource", "resize", "--type", "strategic", "-p", patch)
}

// resized is upstream's WaitForPodResizeActuation condition: the node saw
// the pod's generation, no resize condition is left, the pod is ready, and
// each container reports the resources of its spec.
func resized(p *corev1.Pod) bool {
	if p.Status.ObservedGeneration < p.Generation || !framework.Ready(p) {
		return false
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodResizePending || c.Type == corev1.PodResizeInProgress {
			return false
		}
	}
	for i, c := range p.Spec.Containers {
		if i >= len(p.Status.ContainerStatuses) {
			return false
		}
		cs := p.Status.ContainerStatuses[i]
		if cs.Resources == nil || !equality.Semantic.DeepEqual(*cs.Resources, c.Resources) ||
			!equality.Semantic.DeepEqual(cs.AllocatedResources, c.Resources.Requests) {
			return false
		}
	}
	return true
}

// podCgroupFile is file of the pod cgroup of uid on the host (kubelet's
// cgroupfs layout under any root), in the hierarchy of controller on v1.
func podCgroupFile(t *testing.T, v2 bool, controller, uid, file string) string {
	t.Helper()
	root := "/sys/fs/cgroup"
	if !v2 {
		root = filepath.Join(root, controller)
	}
	for _, pattern := range []string{"*/pod" + uid, "*/*/pod" + uid, "*/*/*/pod" + uid} {
		if m, _ := filepath.Glob(filepath.Join(root, pattern)); len(m) == 1 {
			b, err := readFileTrim(filepath.Join(m[0], file))
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
	}
	t.Fatalf("no pod cgroup of %s under %s", uid, root)
	return ""
}

func TestInPlacePodResize(t *testing.T) {
	t.Parallel()
	c, ns := busyboxNamespace(t, "resize-")
	v2 := cgroupV2(t)

	pod := busyboxSleeper(ns, "resize")
	pod.Spec.Containers[0].Name = "live"
	pod.Spec.Containers[0].Resources = resizeReqs("cpu=100m,memory=32Mi", "cpu=200m,memory=64Mi")
	restart := pod.Spec.Containers[0]
	restart.Name = "restart"
	restart.Resources = resizeReqs("cpu=50m,memory=32Mi", "cpu=50m,memory=64Mi")
	restart.ResizePolicy = []corev1.ContainerResizePolicy{
		{ResourceName: corev1.ResourceCPU, RestartPolicy: corev1.NotRequired},
		{ResourceName: corev1.ResourceMemory, RestartPolicy: corev1.RestartContainer},
	}
	pod.Spec.Containers = append(pod.Spec.Containers, restart)
	framework.RunPods(t, c, pod)
	got := framework.WaitPod(t, c, ns, "resize", "reporting its resources", resized)
	if got.Generation != 1 {
		t.Errorf("generation %d, want 1", got.Generation)
	}
	checkCgroups(t, ns, "resize", "live", cgroupWant(v2, pod.Spec.Containers[0].Resources))
	checkCgroups(t, ns, "resize", "restart", cgroupWant(v2, restart.Resources))
	// Upstream's specs tell v2 from v1 by `mount -t cgroup2` in the
	// container: a hybrid host's unified hierarchy must not show there.
	out, err := shared.Kubectl(t.Context(), framework.Newest(), "-n", ns, "exec", "resize", "-c", "live", "--", "mount", "-t", "cgroup2")
	if err != nil || strings.Contains(out, "/sys/fs/cgroup") != v2 {
		t.Errorf("mount -t cgroup2 in the container: %q (%v); the host is cgroup v2: %v", out, err, v2)
	}
	uid := string(got.UID)
	if v := podCgroupFile(t, v2, "cpu", uid, map[bool]string{false: "cpu.shares", true: "cpu.weight"}[v2]); !v2 && v != "153" {
		t.Errorf("pod cgroup cpu.shares = %s, want 153 (150m)", v)
	}

	// live grows in place; restart's memory grows with a restart, its
	// CPU in place.
	live := resizeReqs("cpu=250m,memory=48Mi", "cpu=300m,memory=96Mi")
	restarted := resizeReqs("cpu=80m,memory=40Mi", "cpu=80m,memory=80Mi")
	if out, err := resizePatch(t, ns, "resize", map[string]corev1.ResourceRequirements{"live": live, "restart": restarted}); err != nil {
		t.Fatalf("kubectl patch --subresource resize: %v\n%s", err, out)
	}
	got = framework.WaitPod(t, c, ns, "resize", "resized", resized)
	if got.Generation != 2 || got.Status.ObservedGeneration != 2 {
		t.Errorf("generation %d, observedGeneration %d, want 2", got.Generation, got.Status.ObservedGeneration)
	}
	for _, cs := range got.Status.ContainerStatuses {
		want := map[string]int32{"live": 0, "restart": 1}[cs.Name]
		if cs.RestartCount != want {
			t.Errorf("container %s restarted %d times, want %d", cs.Name, cs.RestartCount, want)
		}
	}
	checkCgroups(t, ns, "resize", "live", cgroupWant(v2, live))
	checkCgroups(t, ns, "resize", "restart", cgroupWant(v2, restarted))
	if !v2 {
		// The pod cgroup: both containers have limits, so it has the
		// sum of the quotas and of the memory limits.
		for file, want := range map[string]string{"cpu.shares": "337", "cpu.cfs_quota_us": "38000"} {
			if v := podCgroupFile(t, v2, "cpu", uid, file); v != want {
				t.Errorf("pod cgroup %s = %s, want %s", file, v, want)
			}
		}
		if v := podCgroupFile(t, v2, "memory", uid, "memory.limit_in_bytes"); v != strconv.Itoa(176<<20) {
			t.Errorf("pod cgroup memory.limit_in_bytes = %s, want %d", v, 176<<20)
		}
	}

	// Shrinking the memory limit below what the container uses fails as
	// kubelet's does: PodResizeInProgress, reason Error; the container
	// keeps its limit. 4 MiB of tmpfs in /dev/shm are the pod's memory.
	if out, err := shared.Kubectl(t.Context(), framework.Newest(), "-n", ns, "exec", "resize", "-c", "live", "--",
		"dd", "if=/dev/zero", "of=/dev/shm/fill", "bs=1M", "count=8"); err != nil {
		t.Fatalf("fill /dev/shm: %v\n%s", err, out)
	}
	small := resizeReqs("cpu=250m,memory=1Mi", "cpu=300m,memory=2Mi")
	if out, err := resizePatch(t, ns, "resize", map[string]corev1.ResourceRequirements{"live": small}); err != nil {
		t.Fatalf("kubectl patch --subresource resize: %v\n%s", err, out)
	}
	got = framework.WaitPod(t, c, ns, "resize", "failing its resize", func(p *corev1.Pod) bool {
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodResizeInProgress && c.Reason == corev1.PodReasonError {
				return true
			}
		}
		return false
	})
	for _, cond := range got.Status.Conditions {
		if cond.Type == corev1.PodResizeInProgress && !strings.Contains(cond.Message, `memory limit (2097152) below current usage`) {
			t.Errorf("PodResizeInProgress message %q, want kubelet's", cond.Message)
		}
	}
	if cs := got.Status.ContainerStatuses[0]; cs.Resources == nil || !cs.Resources.Limits.Memory().Equal(resource.MustParse("96Mi")) ||
		!cs.AllocatedResources.Memory().Equal(resource.MustParse("1Mi")) {
		t.Errorf("live container status resources %v, allocated %v: want the 96Mi limit it has, 1Mi allocated", cs.Resources, cs.AllocatedResources)
	}
	checkCgroups(t, ns, "resize", "live", cgroupWant(v2, live))
	// Asking for what it has again ends the resize.
	if out, err := resizePatch(t, ns, "resize", map[string]corev1.ResourceRequirements{"live": live}); err != nil {
		t.Fatalf("kubectl patch --subresource resize: %v\n%s", err, out)
	}
	framework.WaitPod(t, c, ns, "resize", "back to its resources", resized)

	// A one-container pod shrinks with a restart: on cgroup v1 the pod's
	// quota goes below the one the previous attempt's cgroup still has.
	shrink := busyboxSleeper(ns, "shrink")
	shrink.Spec.Containers[0].Resources = resizeReqs("cpu=200m,memory=64Mi", "cpu=200m,memory=64Mi")
	shrink.Spec.Containers[0].ResizePolicy = restart.ResizePolicy
	framework.RunPods(t, c, shrink)
	small = resizeReqs("cpu=100m,memory=48Mi", "cpu=100m,memory=48Mi")
	if out, err := resizePatch(t, ns, "shrink", map[string]corev1.ResourceRequirements{"main": small}); err != nil {
		t.Fatalf("kubectl patch --subresource resize: %v\n%s", err, out)
	}
	got = framework.WaitPod(t, c, ns, "shrink", "resized", resized)
	if n := got.Status.ContainerStatuses[0].RestartCount; n != 1 {
		t.Errorf("shrink restarted %d times, want 1", n)
	}
	checkCgroups(t, ns, "shrink", "main", cgroupWant(v2, small))
	if !v2 {
		if v := podCgroupFile(t, v2, "cpu", string(got.UID), "cpu.cfs_quota_us"); v != "10000" {
			t.Errorf("pod cgroup cpu.cfs_quota_us = %s, want 10000", v)
		}
	}
}

// TestPodResizeDeferred: a resize that fits the node's allocatable but
// not beside the other pods waits, PodResizePending reason Deferred with
// kubelet's message, and goes through once another pod leaves; one that
// exceeds the node's allocatable the API server refuses
// (PodResizeValidator). Not parallel: it takes the node's whole CPU for a
// moment.
func TestPodResizeDeferred(t *testing.T) {
	c, ns := busyboxNamespace(t, "resize-deferred-")
	nodes, err := c.CoreV1().Nodes().List(t.Context(), metav1.ListOptions{})
	if err != nil || len(nodes.Items) != 1 {
		t.Fatalf("nodes: %v (%d)", err, len(nodes.Items))
	}
	allocatable := nodes.Items[0].Status.Allocatable.Cpu().MilliValue()

	filler := busyboxSleeper(ns, "filler")
	filler.Spec.Containers[0].Resources = resizeReqs("cpu=10m", "")
	target := busyboxSleeper(ns, "target")
	target.Spec.Containers[0].Resources = resizeReqs("cpu=100m", "")
	framework.RunPods(t, c, filler, target)

	all := resizeReqs(fmt.Sprintf("cpu=%dm", allocatable), "")
	if out, err := resizePatch(t, ns, "target", map[string]corev1.ResourceRequirements{"main": all}); err != nil {
		t.Fatalf("kubectl patch --subresource resize: %v\n%s", err, out)
	}
	var pending corev1.PodCondition
	framework.WaitPod(t, c, ns, "target", "Deferred", func(p *corev1.Pod) bool {
		for _, cond := range p.Status.Conditions {
			if cond.Type == corev1.PodResizePending && cond.Reason == corev1.PodReasonDeferred {
				pending = cond
				return true
			}
		}
		return false
	})
	wantMsg := fmt.Sprintf("Node didn't have enough resource: cpu, requested: %d, used: ", allocatable)
	if !strings.HasPrefix(pending.Message, wantMsg) || pending.ObservedGeneration != 2 {
		t.Errorf("PodResizePending %q (generation %d), want %q… for generation 2", pending.Message, pending.ObservedGeneration, wantMsg)
	}
	checkCgroups(t, ns, "target", "main", cgroupWant(cgroupV2(t), target.Spec.Containers[0].Resources))

	more := resizeReqs(fmt.Sprintf("cpu=%dm", allocatable+1000), "")
	out, err := resizePatch(t, ns, "target", map[string]corev1.ResourceRequirements{"main": more})
	if err == nil || !strings.Contains(err.Error(), "node didn't have enough allocatable resources") {
		t.Errorf("resize beyond allocatable: %v\n%s\nwant the API server's Forbidden", err, out)
	}

	// The filler leaves: the node retries the resize and takes it.
	if err := c.CoreV1().Pods(ns).Delete(t.Context(), "filler", metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil {
		t.Fatal(err)
	}
	waitResized(t, c, ns, "target")
	checkCgroups(t, ns, "target", "main", cgroupWant(cgroupV2(t), all))
	// Give the CPU back at once, for the tests after this one.
	if out, err := resizePatch(t, ns, "target", map[string]corev1.ResourceRequirements{"main": resizeReqs("cpu=100m", "")}); err != nil {
		t.Fatalf("kubectl patch --subresource resize: %v\n%s", err, out)
	}
	waitResized(t, c, ns, "target")
}

func waitResized(t *testing.T, c kubernetes.Interface, ns, name string) {
	t.Helper()
	framework.WaitPod(t, c, ns, name, "resized", resized)
}

func readFileTrim(path string) (string, error) {
	b, err := os.ReadFile(path)
	return strings.TrimSpace(string(b)), err
}
