//go:build bench

package bench

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/pocketkube/pocketkube/test/framework"
)

// netpolGap is the pause between two policies, so that each one is
// measured on a node that has settled.
const netpolGap = 500 * time.Millisecond

// BenchmarkNetworkPolicy measures how fast a NetworkPolicy is enforced:
// each iteration creates a default-deny ingress policy for a busybox httpd
// pod and deletes it again. The clock starts before the create and stops
// when the kernel holds the rule: the pod's address is in the ingress
// verdict map of the node's nftables table (`nft list map inet
// pocketkube-netpol ingress-v4`, polled every 5 ms) — create-enforced —
// and likewise from the delete to the address gone — delete-lifted. The
// first iteration also checks with a connection from a second pod that
// the policy blocks it.
func BenchmarkNetworkPolicy(b *testing.B) {
	c := startCluster(b)
	c.ImportBusybox(b, "busybox")
	client := c.Client(b)
	ctx := b.Context()
	server := backendPod("netpol-server", "0")
	clientPod := backendPod("netpol-client", "1")
	for _, p := range []*corev1.Pod{server, clientPod} {
		if _, err := client.CoreV1().Pods("default").Create(ctx, p, metav1.CreateOptions{}); err != nil {
			b.Fatalf("create pod %s: %v", p.Name, err)
		}
	}
	var ip string
	for _, name := range []string{server.Name, clientPod.Name} {
		p, err := framework.WaitPodIn(ctx, client, "default", name, 2*time.Minute, func(p *corev1.Pod) (bool, error) { return framework.Ready(p), nil })
		if err != nil {
			b.Fatalf("pod %s not ready: %v", name, err)
		}
		if name == server.Name {
			ip = p.Status.PodIP
		}
	}
	url := "http://" + ip + ":8080/"
	fetch := func() error {
		_, err := c.Kubectl(ctx, framework.Newest(), "exec", clientPod.Name, "-c", "web", "--", "timeout", "2", "wget", "-qO-", url)
		return err
	}
	if err := fetch(); err != nil {
		b.Fatalf("no policy: %s does not answer: %v", url, err)
	}

	policies := client.NetworkingV1().NetworkPolicies("default")
	policy := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "deny-server"},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{svcLabelKey: "0"}},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
		},
	}
	var enforced, lifted []time.Duration
	first := true
	for b.Loop() {
		time.Sleep(netpolGap)
		start := time.Now()
		if _, err := policies.Create(ctx, policy, metav1.CreateOptions{}); err != nil {
			b.Fatalf("create policy: %v", err)
		}
		if err := waitInMap(ctx, ip, true); err != nil {
			b.Fatalf("policy not enforced: %v", err)
		}
		enforced = append(enforced, time.Since(start))
		if first {
			if err := fetch(); err == nil {
				b.Fatalf("%s answered with the policy in the kernel", url)
			}
			first = false
		}
		time.Sleep(netpolGap)
		start = time.Now()
		if err := policies.Delete(ctx, policy.Name, metav1.DeleteOptions{}); err != nil {
			b.Fatalf("delete policy: %v", err)
		}
		if err := waitInMap(ctx, ip, false); err != nil {
			b.Fatalf("policy not lifted: %v", err)
		}
		lifted = append(lifted, time.Since(start))
	}
	if err := fetch(); err != nil {
		b.Errorf("after the last delete: %s does not answer: %v", url, err)
	}
	noNsPerOp(b)
	reportRoundedQuantiles(b, "create-enforced", enforced)
	reportRoundedQuantiles(b, "delete-lifted", lifted)
}

// waitInMap polls the node's ingress verdict map until ip is in it (in)
// or not.
func waitInMap(ctx context.Context, ip string, in bool) error {
	return wait.PollUntilContextTimeout(ctx, 5*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		out, err := exec.CommandContext(ctx, "nft", "list", "map", "inet", "pocketkube-netpol", "ingress-v4").Output()
		if err != nil {
			return false, nil // the table is written for the first time
		}
		return strings.Contains(string(out), ip+" : jump") == in, nil
	})
}
