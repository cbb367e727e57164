//go:build e2e

package e2e

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/pocketkube/pocketkube/test/framework"
)

// TestKubeletMetrics: the kubelet API's /metrics, through the API server's
// node proxy as `kubectl get --raw` reaches it, serves the node agent's Go
// and process metrics; without credentials the kubelet port answers 401 on
// /metrics and /stats/; the healthz port 10248 answers "ok" on loopback.
func TestKubeletMetrics(t *testing.T) {
	t.Parallel()
	c := shared.Client(t)
	// Alone, this test may run before the node has registered.
	var node string
	err := wait.PollUntilContextTimeout(t.Context(), time.Second, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		nodes, err := c.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil || len(nodes.Items) != 1 {
			return false, nil
		}
		node = nodes.Items[0].Name
		return true, nil
	})
	if err != nil {
		t.Fatalf("no node registered: %v", err)
	}

	out, err := shared.Kubectl(t.Context(), framework.Newest(), "get", "--raw", "/api/v1/nodes/"+node+"/proxy/metrics")
	if err != nil {
		t.Fatalf("kubectl get --raw .../proxy/metrics: %v\n%s", err, out)
	}
	for _, want := range []string{"\ngo_goroutines ", "\nprocess_resident_memory_bytes ", "\nprocess_open_fds "} {
		if !strings.Contains(out, want) {
			t.Errorf("/metrics lacks %q:\n%.2000s", want, out)
		}
	}

	client, base := kubeletClient(t, nodeInternalIP(t, c), nil)
	for _, r := range []kubeletRequest{
		{"GET", "/metrics", "[metrics]", "get"},
		{"GET", "/metrics/resource", "[metrics]", "get"},
		{"GET", "/stats/summary", "[stats]", "get"},
	} {
		if code, body := kubeletDo(t, client, base, r, ""); code != http.StatusUnauthorized || body != "Unauthorized" {
			t.Errorf("%s %s without credentials: %d %q, want 401 \"Unauthorized\"", r.method, r.path, code, body)
		}
	}

	hc := &http.Client{Timeout: 10 * time.Second}
	resp, err := hc.Get("http://127.0.0.1:10248/healthz")
	if err != nil {
		t.Fatalf("healthz port: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(body) != "ok" {
		t.Errorf("GET 127.0.0.1:10248/healthz = %d %q, want 200 \"ok\"", resp.StatusCode, body)
	}
	resp, err = hc.Get("http://127.0.0.1:10248/pods")
	if err != nil {
		t.Fatalf("healthz port: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET 127.0.0.1:10248/pods = %d, want 404: the healthz port serves nothing else", resp.StatusCode)
	}
}
