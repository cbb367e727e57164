//go:build e2e

package e2e

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/pocketkube/pocketkube/test/framework"
)

// nodeReady says whether node is Ready as kubelet reports it.
func nodeReady(node *corev1.Node) bool {
	for _, cond := range node.Status.Conditions {
		if cond.Type == corev1.NodeReady {
			return cond.Status == corev1.ConditionTrue && cond.Reason == "KubeletReady"
		}
	}
	return false
}

func TestNodeRegistered(t *testing.T) {
	t.Parallel()
	c := shared.Client(t)
	var node *corev1.Node
	err := wait.PollUntilContextTimeout(t.Context(), 100*time.Millisecond, framework.PodTimeout, true, func(ctx context.Context) (bool, error) {
		nodes, err := c.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil || len(nodes.Items) != 1 {
			return false, nil
		}
		node = &nodes.Items[0]
		// The label, the pod CIDR (node-ipam controller) and Ready come
		// from three writers: wait for all three, then check the rest.
		return node.Labels["node-role.kubernetes.io/control-plane"] == "true" && node.Spec.PodCIDR != "" && nodeReady(node), nil
	})
	if err != nil {
		t.Fatalf("no labelled, Ready node with a pod CIDR: %v (%+v)", err, node)
	}
	hostname, _ := os.Hostname()
	if node.Name != strings.ToLower(hostname) || node.Labels["kubernetes.io/hostname"] != node.Name {
		t.Errorf("node %q labels %v, want the lowercase hostname %q", node.Name, node.Labels, strings.ToLower(hostname))
	}
	for _, l := range []string{"kubernetes.io/os", "kubernetes.io/arch", "beta.kubernetes.io/os", "node-role.kubernetes.io/master"} {
		if node.Labels[l] == "" {
			t.Errorf("label %s missing: %v", l, node.Labels)
		}
	}
	info := node.Status.NodeInfo
	if info.KubeletVersion != "v1.37.2" || !strings.HasPrefix(info.ContainerRuntimeVersion, "runc://") || info.OperatingSystem != "linux" {
		t.Errorf("nodeInfo = %+v", info)
	}

	if pods := node.Status.Allocatable[corev1.ResourcePods]; pods.Value() != 110 {
		t.Errorf("allocatable pods = %s", pods.String())
	}
	lease, err := c.CoordinationV1().Leases("kube-node-lease").Get(t.Context(), node.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if *lease.Spec.HolderIdentity != node.Name || len(lease.OwnerReferences) == 0 {
		t.Errorf("lease %+v", lease.Spec)
	}
	// kubectl shows it Ready, with its roles.
	out, err := shared.Kubectl(t.Context(), framework.Newest(), "get", "nodes")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, " Ready ") || !strings.Contains(out, "control-plane,master") {
		t.Errorf("kubectl get nodes:\n%s", out)
	}
}
