//go:build e2e

package e2e

import (
	"context"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
)

// TestDiskPressureCondition starts a node whose nodefs threshold the
// machine crosses now (nodefs.available<99.9% of the data dir's
// filesystem): kubelet's eviction manager sets DiskPressure True with
// kubelet's reason, and its admission refuses a pod bound to the node
// with kubelet's reason and message.
func TestDiskPressureCondition(t *testing.T) {
	c := startNodeCluster(t, "--eviction-hard=nodefs.available<99.9%")
	client := c.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	var node *v1.Node
	var cond v1.NodeCondition
	if err := wait.PollUntilContextCancel(ctx, time.Second, true, func(ctx context.Context) (bool, error) {
		nodes, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil || len(nodes.Items) == 0 {
			return false, nil
		}
		node = &nodes.Items[0]
		for _, cd := range node.Status.Conditions {
			if cd.Type == v1.NodeDiskPressure {
				cond = cd
			}
		}
		return cond.Status == v1.ConditionTrue, nil
	}); err != nil {
		t.Fatalf("DiskPressure never True: %+v", cond)
	}
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
}
