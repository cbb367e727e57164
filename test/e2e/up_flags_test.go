//go:build e2e

package e2e

import (
	"context"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/pocketkube/pocketkube/test/framework"
)

// flagsImage is busybox under a tag that is not "latest", so that the pod
// starts without a pull: in a network namespace the host's nameserver is
// out of reach, and each pull of busybox:latest (pull policy Always)
// waits ~35 s for the resolver to time out before the agent falls back
// to the imported image.
const flagsImage = "pocketkube.test/busybox:flags"

// `pocketkube up --node-name N --kubelet-port P --cluster-dns A,B`, the
// node flags kubelet has under the same names: the Node is N and pods are
// bound to it and run; the kubelet API serves on P (and not on 10250),
// the Node says so in status.daemonEndpoints, and the API server reaches
// it there (logs, exec); pods' resolv.conf names A and B, in that order,
// as kubelet writes it from its --cluster-dns. A DNS server of the
// user's: the node serves none and publishes no kube-dns Service (`up
// --help`). The cluster is the test's own, in a network namespace, so
// that the ports are free and its node is the only one.
func TestUpNodeFlags(t *testing.T) {
	const (
		nodeName    = "pk-flags-node"
		kubeletPort = 10351
	)
	dnsIPs := []string{"10.96.0.53", "192.0.2.53"}
	c := startNodeClusterConfig(t, framework.ClusterConfig{
		KubeletPort: kubeletPort,
		Args:        []string{"--node-name", nodeName, "--cluster-dns", strings.Join(dnsIPs, ",")},
	})
	ctx := t.Context()
	cs := c.Client(t)

	var node *corev1.Node
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, framework.PodTimeout, true, func(ctx context.Context) (bool, error) {
		n, err := cs.CoreV1().Nodes().Get(ctx, nodeName, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		node = n
		for _, cond := range n.Status.Conditions {
			if cond.Type == corev1.NodeReady {
				return cond.Status == corev1.ConditionTrue, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("node %s never Ready: %v (%+v)", nodeName, err, node)
	}
	nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(nodes.Items) != 1 {
		var names []string
		for _, n := range nodes.Items {
			names = append(names, n.Name)
		}
		t.Errorf("nodes %q, want only %s", names, nodeName)
	}
	if got := node.Labels[corev1.LabelHostname]; got != nodeName {
		t.Errorf("label %s=%q, want %q (kubelet labels the node with its name)", corev1.LabelHostname, got, nodeName)
	}
	if got := node.Status.DaemonEndpoints.KubeletEndpoint.Port; got != kubeletPort {
		t.Errorf("status.daemonEndpoints.kubeletEndpoint.Port %d, want %d", got, kubeletPort)
	}
	listening, err := c.NetNS.Exec("ss", "-Hltn")
	if err != nil {
		t.Fatal(err)
	}
	if !listensOn(listening, kubeletPort) {
		t.Errorf("nothing listens on %d in %s:\n%s", kubeletPort, c.NetNS.Name, listening)
	}
	if listensOn(listening, 10250) {
		t.Errorf("something listens on 10250 in %s with --kubelet-port %d:\n%s", c.NetNS.Name, kubeletPort, listening)
	}

	importTaggedBusybox(t, c, flagsImage)
	ns := framework.NewNamespace(t, cs, "flags-")
	pod := dnsPod(ns, "flagged", flagsImage, func(s *corev1.PodSpec) {
		s.Containers[0].Command = []string{"sh", "-c", "echo hello from " + nodeName + "; exec sleep 3600"}
	})
	pod = framework.RunPods(t, cs, pod)[pod.Name]
	if pod.Spec.NodeName != nodeName {
		t.Errorf("pod bound to %q, want %q", pod.Spec.NodeName, nodeName)
	}

	// The API server reaches the kubelet API at the port the Node gives.
	logs, err := c.Kubectl(ctx, framework.Newest(), "-n", ns, "logs", pod.Name)
	if err != nil || logs != "hello from "+nodeName+"\n" {
		t.Errorf("kubectl logs: %q, %v", logs, err)
	}
	resolv, err := c.PodExec(ctx, ns, pod.Name, "cat", "/etc/resolv.conf")
	if err != nil {
		t.Fatalf("kubectl exec: %v", err)
	}
	hostFile, err := os.ReadFile("/etc/resolv.conf")
	if err != nil {
		t.Fatal(err)
	}
	want := resolvConf{
		nameservers: dnsIPs,
		searches:    dedup(append([]string{ns + ".svc.cluster.local", "svc.cluster.local", "cluster.local"}, parseResolv(string(hostFile)).searches...)),
		options:     []string{"ndots:5"},
	}
	if got := parseResolv(resolv); !slices.Equal(got.nameservers, want.nameservers) || !slices.Equal(got.searches, want.searches) || !slices.Equal(got.options, want.options) {
		t.Errorf("resolv.conf:\n%s\nwant %+v", resolv, want)
	}

	// A DNS server of the user's: none published, none served here.
	if _, err := cs.CoreV1().Services("kube-system").Get(ctx, "kube-dns", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("kube-system/kube-dns with --cluster-dns: %v, want NotFound", err)
	}
	if listensOn(listening, 53) {
		t.Errorf("something listens on 53 in %s with --cluster-dns:\n%s", c.NetNS.Name, listening)
	}
	stopCleanly(t, c)
}

// listensOn reports whether `ss -Hltn` output has a socket listening on
// port.
func listensOn(ss string, port int) bool {
	for _, line := range strings.Split(ss, "\n") {
		// State Recv-Q Send-Q Local:Port Peer:Port
		if f := strings.Fields(line); len(f) >= 4 && strings.HasSuffix(f[3], ":"+strconv.Itoa(port)) {
			return true
		}
	}
	return false
}
