//go:build e2e

package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
)

// TestDiskPressureCondition starts a node whose nodefs threshold the
// machine crosses now (nodefs.available<99.9% of the data dir's
// filesystem): kubelet's eviction manager sets DiskPressure True with
// kubelet's reason, and its admission refuses a pod bound to the node
// with kubelet's reason and message. Restarted with kubelet's default
// thresholds, which the machine does not cross, the condition is False.
func TestDiskPressureCondition(t *testing.T) {
	c := startNodeCluster(t, "--eviction-hard=nodefs.available<99.9%")
	client := c.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	node, cond := waitNodeCondition(ctx, t, client, v1.NodeDiskPressure, v1.ConditionTrue)
	if cond.Reason != "KubeletHasDiskPressure" || cond.Message != "kubelet has disk pressure" {
		t.Errorf("DiskPressure reason %q message %q, want kubelet's KubeletHasDiskPressure, kubelet has disk pressure", cond.Reason, cond.Message)
	}
	for _, cd := range node.Status.Conditions {
		if cd.Type == v1.NodeMemoryPressure && (cd.Status != v1.ConditionFalse || cd.Reason != "KubeletHasSufficientMemory") {
			t.Errorf("MemoryPressure %s %s, want False KubeletHasSufficientMemory", cd.Status, cd.Reason)
		}
	}

	// The scheduler keeps pods off the node (its disk-pressure taint);
	// a pod bound to it directly meets kubelet's admission.
	pod := &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "under-pressure", Namespace: "default"},
		Spec: v1.PodSpec{
			NodeName:   node.Name,
			Containers: []v1.Container{{Name: "c", Image: "registry.k8s.io/pause:3.10"}},
		},
	}
	if _, err := client.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var got *v1.Pod
	if err := wait.PollUntilContextCancel(ctx, time.Second, true, func(ctx context.Context) (bool, error) {
		var err error
		got, err = client.CoreV1().Pods("default").Get(ctx, pod.Name, metav1.GetOptions{})
		return err == nil && got.Status.Phase == v1.PodFailed, nil
	}); err != nil {
		t.Fatalf("pod never refused: %+v", got.Status)
	}
	if want := "Pod was rejected: The node had condition: [DiskPressure]. "; got.Status.Reason != "Evicted" || got.Status.Message != want {
		t.Errorf("pod reason %q message %q, want Evicted, %q", got.Status.Reason, got.Status.Message, want)
	}

	if _, err := c.Stop(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	c, err := c.RestartWith()
	if err != nil {
		t.Fatal(err)
	}
	client = c.Client(t)
	_, cond = waitNodeCondition(ctx, t, client, v1.NodeDiskPressure, v1.ConditionFalse)
	if cond.Reason != "KubeletHasNoDiskPressure" || cond.Message != "kubelet has no disk pressure" {
		t.Errorf("DiskPressure reason %q message %q, want kubelet's KubeletHasNoDiskPressure, kubelet has no disk pressure", cond.Reason, cond.Message)
	}
}

// TestMemoryPressureEviction starts a node whose memory threshold is
// above what the machine has (memory.available<1000Gi): MemoryPressure
// turns True with kubelet's reason; a BestEffort pod is refused as
// kubelet's admission refuses it; a Guaranteed pod is admitted, then
// evicted by the eviction manager with kubelet's message and the
// DisruptionTarget condition.
func TestMemoryPressureEviction(t *testing.T) {
	c := startNodeCluster(t, "--eviction-hard=memory.available<1000Gi")
	client := c.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	node, cond := waitNodeCondition(ctx, t, client, v1.NodeMemoryPressure, v1.ConditionTrue)
	if cond.Reason != "KubeletHasInsufficientMemory" || cond.Message != "kubelet has insufficient memory available" {
		t.Errorf("MemoryPressure reason %q message %q, want kubelet's", cond.Reason, cond.Message)
	}

	mkPod := func(name string, res v1.ResourceList) *v1.Pod {
		p := &v1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
			Spec: v1.PodSpec{
				NodeName: node.Name,
				Containers: []v1.Container{{Name: "c", Image: "busybox", Command: []string{"sleep", "3600"},
					Resources: v1.ResourceRequirements{Requests: res, Limits: res}}},
			},
		}
		if _, err := client.CoreV1().Pods("default").Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		return p
	}
	failed := func(name string) *v1.Pod { return waitPodFailed(ctx, t, client, name) }

	mkPod("besteffort", nil)
	got := failed("besteffort")
	if want := "Pod was rejected: The node had condition: [MemoryPressure]. "; got.Status.Reason != "Evicted" || got.Status.Message != want {
		t.Errorf("BestEffort pod reason %q message %q, want Evicted, %q", got.Status.Reason, got.Status.Message, want)
	}

	mkPod("guaranteed", v1.ResourceList{v1.ResourceCPU: resource.MustParse("10m"), v1.ResourceMemory: resource.MustParse("64Mi")})
	got = failed("guaranteed")
	checkMemoryEvicted(t, got)
}

// waitPodFailed polls until pod default/name is Failed and returns it.
func waitPodFailed(ctx context.Context, t *testing.T, client kubernetes.Interface, name string) *v1.Pod {
	t.Helper()
	var got *v1.Pod
	if err := wait.PollUntilContextCancel(ctx, time.Second, true, func(ctx context.Context) (bool, error) {
		var err error
		got, err = client.CoreV1().Pods("default").Get(ctx, name, metav1.GetOptions{})
		return err == nil && got.Status.Phase == v1.PodFailed, nil
	}); err != nil {
		t.Fatalf("pod %s never Failed: %+v", name, got.Status)
	}
	return got
}

// checkMemoryEvicted checks that pod was evicted for memory.available<1000Gi
// as kubelet's eviction manager evicts: reason Evicted, kubelet's message
// and the DisruptionTarget condition, which it returns (nil if missing).
func checkMemoryEvicted(t *testing.T, pod *v1.Pod) *v1.PodCondition {
	t.Helper()
	if prefix := "The node was low on resource: memory. Threshold quantity: 1000Gi, available: "; pod.Status.Reason != "Evicted" || !strings.HasPrefix(pod.Status.Message, prefix) {
		t.Errorf("pod %s reason %q message %q, want Evicted, %q...", pod.Name, pod.Status.Reason, pod.Status.Message, prefix)
	}
	var disruption *v1.PodCondition
	for i := range pod.Status.Conditions {
		if pod.Status.Conditions[i].Type == v1.DisruptionTarget {
			disruption = &pod.Status.Conditions[i]
		}
	}
	if disruption == nil || disruption.Status != v1.ConditionTrue || disruption.Reason != v1.PodReasonTerminationByKubelet {
		t.Errorf("pod %s DisruptionTarget condition %+v, want True TerminationByKubelet", pod.Name, disruption)
		return nil
	}
	return disruption
}

// waitNodeCondition polls until the cluster's one node has condition typ
// with status, and returns the node and the condition.
func waitNodeCondition(ctx context.Context, t *testing.T, client kubernetes.Interface, typ v1.NodeConditionType, status v1.ConditionStatus) (*v1.Node, v1.NodeCondition) {
	t.Helper()
	var node *v1.Node
	var cond v1.NodeCondition
	if err := wait.PollUntilContextCancel(ctx, time.Second, true, func(ctx context.Context) (bool, error) {
		nodes, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil || len(nodes.Items) == 0 {
			return false, nil
		}
		node = &nodes.Items[0]
		for _, cd := range node.Status.Conditions {
			if cd.Type == typ {
				cond = cd
			}
		}
		return cond.Status == status, nil
	}); err != nil {
		t.Fatalf("%s never %s: %+v", typ, status, cond)
	}
	return node, cond
}

// TestSoftMemoryEviction starts a node with no hard threshold and a soft
// one above what the machine has (memory.available<1000Gi, grace period
// 5 s, --eviction-max-pod-grace-period 2): MemoryPressure turns True,
// and once the threshold has held for its grace period the eviction
// manager evicts a Guaranteed pod with kubelet's message, giving it its
// terminationGracePeriodSeconds (60) capped at 2 s: its container, which
// ignores SIGTERM, is killed within seconds, not after a minute.
func TestSoftMemoryEviction(t *testing.T) {
	c := startNodeCluster(t, "--eviction-hard=", "--eviction-soft=memory.available<1000Gi",
		"--eviction-soft-grace-period=memory.available=5s", "--eviction-max-pod-grace-period=2")
	c.ImportBusybox(t, "busybox")
	client := c.Client(t)
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()

	node, cond := waitNodeCondition(ctx, t, client, v1.NodeMemoryPressure, v1.ConditionTrue)
	if cond.Reason != "KubeletHasInsufficientMemory" {
		t.Errorf("MemoryPressure reason %q, want kubelet's KubeletHasInsufficientMemory", cond.Reason)
	}
	// Not 10m of CPU: `runc init` runs under the container's quota, and
	// at 10m it took 5–6 s here (a VM with costly process start-up), so
	// the eviction's SIGTERM could reach runc init, a Go PID 1 that has
	// not exec'd the shell yet and exits 2 on it, not the shell.
	res := v1.ResourceList{v1.ResourceCPU: resource.MustParse("200m"), v1.ResourceMemory: resource.MustParse("64Mi")}
	grace := int64(60)
	pod := &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "soft-evicted", Namespace: "default"},
		Spec: v1.PodSpec{
			NodeName:                      node.Name,
			TerminationGracePeriodSeconds: &grace,
			Containers: []v1.Container{{Name: "c", Image: "busybox", Command: []string{"sh", "-c", "trap '' TERM; while true; do sleep 1; done"},
				Resources: v1.ResourceRequirements{Requests: res, Limits: res}}},
		},
	}
	if _, err := client.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	got := waitPodFailed(ctx, t, client, pod.Name)
	disruption := checkMemoryEvicted(t, got)
	if disruption == nil {
		t.FailNow()
	}
	// A pod evicted before its container started has nothing to kill.
	if len(got.Status.ContainerStatuses) == 0 || got.Status.ContainerStatuses[0].State.Terminated == nil {
		t.Fatalf("container status %+v, want terminated", got.Status.ContainerStatuses)
	}
	term := got.Status.ContainerStatuses[0].State.Terminated
	if term.StartedAt.IsZero() {
		// Kubelet may evict a pod before its container ran; the grace
		// period then has nothing to show (a skip would fail make test).
		t.Logf("evicted before its container ran (%+v): the grace period is not seen", term)
		return
	}
	// Seconds in the API's timestamps: 2 s of grace plus the kill is well
	// under the pod's own 60 s.
	if took := term.FinishedAt.Sub(disruption.LastTransitionTime.Time); term.ExitCode != 137 || took > 20*time.Second {
		t.Errorf("container exit %d, %s after the eviction: want 137 (SIGTERM ignored, SIGKILL after the 2 s cap), well before its own 60 s", term.ExitCode, took)
	}
}
