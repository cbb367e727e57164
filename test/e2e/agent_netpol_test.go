//go:build e2e

package e2e

import (
	"os"
	"strconv"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pocketkube/pocketkube/test/framework"
)

// TestAgentNetworkPolicy checks that a joined node enforces NetworkPolicies
// on its own pods, with the node's credentials (group system:nodes bound
// to the enforcer's ClusterRole by the server): a policy that lets only
// pod c reach pod a, all three on the joined node, blocks b and still lets
// c in (in the same round of probes), and b reaches a again once the
// policy is gone.
func TestAgentNetworkPolicy(t *testing.T) {
	c := startNodeCluster(t)
	admin := c.Client(t)
	n := joinReadyNode(t, c, "agent-netpol-"+strconv.Itoa(os.Getpid()))

	ns := framework.NewNamespace(t, admin, "agent-netpol")
	pods := []*corev1.Pod{httpdPod(ns, "a", map[string]string{"pod": "a"}, []int32{80}, "http"), busyboxSleeper(ns, "b"), busyboxSleeper(ns, "c")}
	for _, p := range pods {
		p.Spec.NodeName = n.name
		if p.Labels == nil {
			p.Labels = map[string]string{"pod": p.Name}
		}
	}
	running := framework.RunPods(t, admin, pods...)
	probe := func(from string, want bool) netpolProbe {
		return netpolProbe{ns: ns, from: from, url: "http://" + running["a"].Status.PodIP + ":80/", want: want}
	}
	expectReach(t, c, "no policy, the pods on the joined node", probe("b", true), probe("c", true))

	onlyC := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "only-c", Namespace: ns},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"pod": "a"}},
			Ingress: []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{{
				PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"pod": "c"}},
			}}}},
		},
	}
	if _, err := admin.NetworkingV1().NetworkPolicies(ns).Create(t.Context(), onlyC, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	expectReach(t, c, "ingress to a only from c, on the joined node", probe("b", false), probe("c", true))
	if err := admin.NetworkingV1().NetworkPolicies(ns).Delete(t.Context(), onlyC.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	expectReach(t, c, "policy deleted", probe("b", true), probe("c", true))
}

// joinReadyNode joins an agent named name to c with the token of c's
// node-token, busybox imported into its image store, and waits until its
// Node is Ready.
func joinReadyNode(t *testing.T, c *framework.Cluster, name string) *joinedNode {
	t.Helper()
	tok, hash := nodeToken(t, c)
	n := newJoinedNode(t, c, name)
	n.importBusybox(t)
	started := time.Now()
	n.start(t, "--token", tok, "--discovery-token-ca-cert-hash", hash)
	waitNodeReady(t, c.Client(t), n.name, started)
	return n
}
