//go:build e2e

package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/pocketkube/pocketkube/test/framework"
)

// TestAPIServerVerifiesKubelet (issue 13): the API server hands `kubectl
// logs`, exec and port-forward only to a kubelet whose serving
// certificate the cluster CA signed (--kubelet-certificate-authority).
// The node's real certificate verifies against the CA for every address
// the Node reports, the address type the API server dials included. A
// Node whose address leads to an impostor (a TLS server with a
// certificate of its own, as a process that took the kubelet's port
// would have) gets no request: before the fix the API server sent it the
// logs request, with its kubelet-client credentials, and relayed its
// answer as the container's log; now it answers 500 and logs the
// verification error.
//
// Not parallel: the impostor Node exists only while no other test runs,
// since several count the cluster's nodes.
func TestAPIServerVerifiesKubelet(t *testing.T) {
	ctx := t.Context()
	c := shared.Client(t)
	caPEM, err := os.ReadFile(filepath.Join(shared.DataDir, "pki", "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)

	// The shared cluster's node, once it reported its addresses.
	var node corev1.Node
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, framework.PodTimeout, true, func(ctx context.Context) (bool, error) {
		nodes, err := c.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil || len(nodes.Items) != 1 {
			return false, nil
		}
		node = nodes.Items[0]
		// With its pod CIDR: the impostor must not take the first one.
		return len(node.Status.Addresses) > 0 && node.Status.DaemonEndpoints.KubeletEndpoint.Port != 0 && node.Spec.PodCIDR != "", nil
	})
	if err != nil {
		t.Fatalf("no node with addresses: %v (%+v)", err, node.Status)
	}
	port := strconv.Itoa(int(node.Status.DaemonEndpoints.KubeletEndpoint.Port))
	var dialHost string
	for _, a := range node.Status.Addresses {
		if a.Type == corev1.NodeInternalIP {
			dialHost = a.Address
			break
		}
	}
	if dialHost == "" {
		t.Fatalf("node %s has no InternalIP: %v", node.Name, node.Status.Addresses)
	}
	// The certificate must name every address of the Node, whichever of
	// them the API server dials (--kubelet-preferred-address-types).
	for _, a := range node.Status.Addresses {
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", net.JoinHostPort(dialHost, port),
			&tls.Config{RootCAs: roots, ServerName: a.Address})
		if err != nil {
			t.Errorf("kubelet serving certificate for Node address %s %s: %v", a.Type, a.Address, err)
			continue
		}
		conn.Close()
	}

	// The impostor: httptest's certificate, from a CA of its own, for
	// 127.0.0.1.
	var requests atomic.Int32
	impostor := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		io.WriteString(w, "log from an impostor\n")
	}))
	impostor.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes
	impostor.StartTLS()
	defer impostor.Close()
	_, impostorPort, _ := net.SplitHostPort(impostor.Listener.Addr().String())
	portNum, _ := strconv.Atoi(impostorPort)

	fake := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "impostor-node"},
		// Never a candidate for the scheduler or DaemonSets.
		Spec: corev1.NodeSpec{Unschedulable: true, Taints: []corev1.Taint{{Key: "pocketkube.test/impostor", Effect: corev1.TaintEffectNoSchedule}}},
	}
	if fake, err = c.CoreV1().Nodes().Create(ctx, fake, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx := context.Background() // t.Context() is done by now
		zero := int64(0)
		c.CoreV1().Pods("default").Delete(ctx, "impostor-logs", metav1.DeleteOptions{GracePeriodSeconds: &zero})
		c.CoreV1().Nodes().Delete(ctx, "impostor-node", metav1.DeleteOptions{})
	})
	fake.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "127.0.0.1"}}
	fake.Status.DaemonEndpoints.KubeletEndpoint.Port = int32(portNum)
	if _, err := c.CoreV1().Nodes().UpdateStatus(ctx, fake, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "impostor-logs", Namespace: "default"},
		Spec: corev1.PodSpec{
			NodeName:    "impostor-node",
			Tolerations: []corev1.Toleration{{Operator: corev1.TolerationOpExists}},
			Containers:  []corev1.Container{{Name: "c", Image: "busybox"}},
		},
	}
	if _, err := c.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	out, err := c.CoreV1().Pods("default").GetLogs("impostor-logs", &corev1.PodLogOptions{}).DoRaw(ctx)
	if err == nil {
		t.Errorf("logs through a kubelet with a certificate the cluster CA did not sign: %q, want an error", out)
	}
	// The API server answers 500 "unknown" and logs why.
	if !waitOutput(shared, "127.0.0.1:"+impostorPort+"/containerLogs/default/impostor-logs/c", "certificate signed by unknown authority") {
		t.Errorf("logs through the impostor: %v; the API server logged no certificate verification error", err)
	}
	if n := requests.Load(); n != 0 {
		t.Errorf("the impostor got %d requests from the API server", n)
	}
}

// waitOutput waits up to 5 s for a line of c's output holding every one
// of words.
func waitOutput(c *framework.Cluster, words ...string) bool {
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		for _, line := range strings.Split(c.Output(), "\n") {
			found := true
			for _, w := range words {
				found = found && strings.Contains(line, w)
			}
			if found {
				return true
			}
		}
	}
	return false
}
