//go:build e2e

package e2e

import (
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
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

// TestKubeletCadvisorMetrics: the kubelet API's /metrics/cadvisor, through
// the API server's node proxy, is Prometheus text (parsed with expfmt)
// with cAdvisor's families and kubelet's labels: a busy pod's
// container_cpu_usage_seconds_total grows between scrapes, its
// container_memory_working_set_bytes, its pod cgroup's series
// (container="") and its 200m CPU limit (container_spec_cpu_quota 20000
// of period 100000) are there, as are the machine series and, where the
// root cgroup has memory files (cgroup v1), the node's id="/" series;
// the pod's network series per interface (eth0) on its cgroup, and
// container_fs_usage_bytes/limit_bytes of the container's writable layer
// and of the node (id="/"), with a device label; without credentials the
// path answers 401.
func TestKubeletCadvisorMetrics(t *testing.T) {
	t.Parallel()
	c, ns := busyboxNamespace(t, "cadvisor-")
	busy := busyboxSleeper(ns, "busy")
	busy.Spec.Containers[0].Command = busyLoop
	busy.Spec.Containers[0].Resources.Limits = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("200m")}
	pod := framework.RunPods(t, c, busy)["busy"]
	node := onlyNode(t, c)
	if pod == nil || len(pod.Status.ContainerStatuses) != 1 {
		t.Fatalf("pod busy: %+v", pod)
	}
	_, id, _ := strings.Cut(pod.Status.ContainerStatuses[0].ContainerID, "://")

	parse := func(out string) (map[string]*dto.MetricFamily, error) {
		p := expfmt.NewTextParser(model.UTF8Validation)
		return p.TextToMetricFamilies(strings.NewReader(out))
	}
	// find returns the value of family name's series whose labels
	// include want.
	find := func(fams map[string]*dto.MetricFamily, name string, want map[string]string) (*dto.Metric, bool) {
	series:
		for _, m := range fams[name].GetMetric() {
			have := map[string]string{}
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for k, v := range want {
				if have[k] != v {
					continue series
				}
			}
			return m, true
		}
		return nil, false
	}
	value := func(m *dto.Metric) float64 {
		if m.Counter != nil {
			return m.GetCounter().GetValue()
		}
		return m.GetGauge().GetValue()
	}
	mainSeries := map[string]string{"container": "main", "pod": "busy", "namespace": ns, "name": id}
	cpu := func(out string) float64 {
		fams, err := parse(out)
		if err != nil {
			return 0
		}
		m, ok := find(fams, "container_cpu_usage_seconds_total", mainSeries)
		if !ok {
			return 0
		}
		return value(m)
	}
	path := "/api/v1/nodes/" + node + "/proxy/metrics/cadvisor"
	out, err := shared.PollKubectl(t.Context(), framework.Newest(), time.Minute, func(out string, err error) bool {
		return err == nil && cpu(out) > 0
	}, "get", "--raw", path)
	if err != nil {
		t.Fatalf("/metrics/cadvisor: %v\n%.3000s", err, out)
	}
	first := cpu(out)
	out, err = shared.PollKubectl(t.Context(), framework.Newest(), time.Minute, func(out string, err error) bool {
		return err == nil && cpu(out) > first
	}, "get", "--raw", path)
	if err != nil {
		t.Fatalf("/metrics/cadvisor: container_cpu_usage_seconds_total stays at %v: %v", first, err)
	}
	fams, err := parse(out)
	if err != nil {
		t.Fatalf("/metrics/cadvisor is not Prometheus text: %v\n%.3000s", err, out)
	}
	t.Logf("busy container: %.3f then %.3f CPU seconds; %d families", first, cpu(out), len(fams))

	for _, tc := range []struct {
		family string
		typ    dto.MetricType
		help   string
	}{
		{"container_cpu_usage_seconds_total", dto.MetricType_COUNTER, "Cumulative cpu time consumed in seconds."},
		{"container_memory_working_set_bytes", dto.MetricType_GAUGE, "Current working set in bytes."},
		{"container_memory_usage_bytes", dto.MetricType_GAUGE, "Current memory usage in bytes, including all memory regardless of when it was accessed"},
		{"container_memory_rss", dto.MetricType_GAUGE, "Size of RSS in bytes."},
		{"container_spec_memory_limit_bytes", dto.MetricType_GAUGE, "Memory limit for the container."},
		{"container_start_time_seconds", dto.MetricType_GAUGE, "Start time of the container since unix epoch in seconds."},
		{"container_last_seen", dto.MetricType_GAUGE, "Last time a container was seen by the exporter"},
		{"machine_cpu_cores", dto.MetricType_GAUGE, "Number of logical CPU cores."},
		{"machine_memory_bytes", dto.MetricType_GAUGE, "Amount of memory installed on the machine."},
	} {
		f := fams[tc.family]
		if f == nil || f.GetType() != tc.typ || f.GetHelp() != tc.help {
			t.Errorf("family %s = %v, want type %v, help %q", tc.family, f, tc.typ, tc.help)
		}
	}

	// The container's series carry kubelet's labels; its cgroup is its
	// pod's cgroup/ID.
	ws, ok := find(fams, "container_memory_working_set_bytes", mainSeries)
	if !ok || value(ws) <= 0 {
		t.Fatalf("no container_memory_working_set_bytes for %v (or 0):\n%.3000s", mainSeries, out)
	}
	labels := map[string]string{}
	for _, l := range ws.GetLabel() {
		labels[l.GetName()] = l.GetValue()
	}
	if !strings.HasSuffix(labels["id"], "/"+id) || labels["image"] == "" || len(labels) != 6 {
		t.Errorf("container_memory_working_set_bytes labels %v: want container, id (…/%s), image, name, namespace, pod", labels, id)
	}
	podID := strings.TrimSuffix(labels["id"], "/"+id)
	podSeries := map[string]string{"container": "", "pod": "busy", "namespace": ns, "id": podID}
	for _, name := range []string{"container_cpu_usage_seconds_total", "container_memory_working_set_bytes"} {
		if m, ok := find(fams, name, podSeries); !ok || value(m) <= 0 {
			t.Errorf("%s: no positive pod cgroup series %v", name, podSeries)
		}
	}
	for name, want := range map[string]float64{"container_spec_cpu_quota": 20000, "container_spec_cpu_period": 100000} {
		if m, ok := find(fams, name, mainSeries); !ok || value(m) != want {
			t.Errorf("%s%v = %v (present %v), want %v", name, mainSeries, m, ok, want)
		}
	}
	// The pod's network series are on its cgroup, per interface; the
	// filesystem ones on the container's and the node's (id="/").
	netSeries := map[string]string{"container": "", "pod": "busy", "namespace": ns, "id": podID, "interface": "eth0", "name": "", "image": ""}
	for _, name := range []string{"container_network_receive_bytes_total", "container_network_receive_packets_total",
		"container_network_receive_errors_total", "container_network_transmit_bytes_total",
		"container_network_transmit_packets_total", "container_network_transmit_errors_total"} {
		if f := fams[name]; f == nil || f.GetType() != dto.MetricType_COUNTER {
			t.Errorf("family %s = %v, want a counter", name, f)
		} else if _, ok := find(fams, name, netSeries); !ok {
			t.Errorf("%s: no series %v", name, netSeries)
		}
	}
	for _, want := range []map[string]string{
		{"container": "main", "pod": "busy", "namespace": ns, "name": id, "id": labels["id"], "image": labels["image"]},
		{"id": "/", "container": "", "pod": "", "namespace": ""},
	} {
		for _, name := range []string{"container_fs_usage_bytes", "container_fs_limit_bytes"} {
			m, ok := find(fams, name, want)
			if !ok || value(m) <= 0 {
				t.Errorf("%s%v = %v (present %v), want > 0", name, want, m, ok)
				continue
			}
			if dev := m.GetLabel(); len(dev) != 7 {
				t.Errorf("%s%v labels %v, want the container's 6 and device", name, want, dev)
			}
		}
	}
	for _, name := range []string{"machine_cpu_cores", "machine_memory_bytes"} {
		if m, ok := find(fams, name, nil); !ok || value(m) <= 0 {
			t.Errorf("%s: %v (present %v), want > 0", name, m, ok)
		}
	}
	// On a cgroup v2 host the root cgroup has no memory files, so the
	// node's series are left out (see the kubeletapi package doc).
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err != nil {
		if m, ok := find(fams, "container_memory_working_set_bytes", map[string]string{"id": "/", "container": "", "pod": ""}); !ok || value(m) <= 0 {
			t.Errorf(`container_memory_working_set_bytes{id="/"}: %v (present %v), want > 0`, m, ok)
		}
	}

	client, base := kubeletClient(t, nodeInternalIP(t, c), nil)
	if code, body := kubeletDo(t, client, base, kubeletRequest{"GET", "/metrics/cadvisor", "[metrics]", "get"}, ""); code != http.StatusUnauthorized || body != "Unauthorized" {
		t.Errorf("GET /metrics/cadvisor without credentials: %d %q, want 401 \"Unauthorized\"", code, body)
	}
}
