//go:build e2e

package e2e

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/pocketkube/pocketkube/test/framework"
)

// TestKubeletMetrics: the kubelet API's /metrics, through the API server's
// node proxy as `kubectl get --raw` reaches it, serves the node agent's Go
// and process metrics, and /metrics/resource a busy pod's CPU and memory
// series from its cgroups; without credentials the kubelet port answers 401 on
// /metrics and /stats/; the healthz port 10248 answers "ok" on loopback.
func TestKubeletMetrics(t *testing.T) {
	t.Parallel()
	c, ns := busyboxNamespace(t, "metrics-")
	busy := busyboxSleeper(ns, "busy")
	busy.Spec.Containers[0].Command = busyLoop
	busy.Spec.Containers[0].Resources.Limits = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("200m")}
	framework.RunPods(t, c, busy)
	node := onlyNode(t, c)

	out, err := shared.Kubectl(t.Context(), framework.Newest(), "get", "--raw", "/api/v1/nodes/"+node+"/proxy/metrics")
	if err != nil {
		t.Fatalf("kubectl get --raw .../proxy/metrics: %v\n%s", err, out)
	}
	for _, want := range []string{"\ngo_goroutines ", "\nprocess_resident_memory_bytes ", "\nprocess_open_fds "} {
		if !strings.Contains(out, want) {
			t.Errorf("/metrics lacks %q:\n%.2000s", want, out)
		}
	}

	// /metrics/resource: the busy container's series from its cgroup.
	// Its CPU time grows from the start; poll (bounded) until the
	// counter is above 0.
	series := func(out, prefix string) (float64, bool) {
		for _, line := range strings.Split(out, "\n") {
			if rest, ok := strings.CutPrefix(line, prefix+" "); ok {
				v, err := strconv.ParseFloat(strings.Fields(rest)[0], 64)
				return v, err == nil
			}
		}
		return 0, false
	}
	labels := `{container="main",namespace="` + ns + `",pod="busy"}`
	podLabels := `{namespace="` + ns + `",pod="busy"}`
	out, err = shared.PollKubectl(t.Context(), framework.Newest(), time.Minute, func(out string, err error) bool {
		v, ok := series(out, "container_cpu_usage_seconds_total"+labels)
		return err == nil && ok && v > 0
	}, "get", "--raw", "/api/v1/nodes/"+node+"/proxy/metrics/resource")
	if err != nil {
		t.Fatalf("/metrics/resource: %v\n%s", err, out)
	}
	for _, name := range []string{
		"container_cpu_usage_seconds_total" + labels, "container_memory_working_set_bytes" + labels,
		"container_start_time_seconds" + labels, "pod_cpu_usage_seconds_total" + podLabels,
		"pod_memory_working_set_bytes" + podLabels, "node_cpu_usage_seconds_total", "node_memory_working_set_bytes",
	} {
		if v, ok := series(out, name); !ok || v <= 0 {
			t.Errorf("/metrics/resource: %s = %v (present %v), want > 0", name, v, ok)
		}
	}
	// scrape_error, deprecated in 1.29, is hidden, as kubelet's.
	if v, ok := series(out, "resource_scrape_error"); !ok || v != 0 {
		t.Errorf("/metrics/resource: resource_scrape_error = %v (present %v), want 0", v, ok)
	}
	v, _ := series(out, "container_cpu_usage_seconds_total"+labels)
	w, _ := series(out, "container_memory_working_set_bytes"+labels)
	t.Logf("busy container: %.3f CPU seconds, working set %.0f bytes", v, w)
	if !strings.Contains(out, "# HELP container_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the container in core-seconds") {
		t.Errorf("/metrics/resource lacks kubelet's HELP line:\n%.3000s", out)
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
