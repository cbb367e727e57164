package kubeletapi

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
)

func TestMetrics(t *testing.T) {
	env := newTestEnv(t, &fakeProvider{})
	code, body := env.get(env.apiServer(), "/metrics")
	if code != http.StatusOK {
		t.Fatalf("status = %d (body %q)", code, body)
	}
	for _, want := range []string{"\ngo_goroutines ", "\nprocess_resident_memory_bytes ", "# TYPE process_cpu_seconds_total counter"} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics has no %q", want)
		}
	}
	// The control plane's metrics are the API server's to serve.
	if strings.Contains(body, "apiserver_") {
		t.Errorf("/metrics serves the API server's metrics")
	}
	if code, body := env.get(env.restConfig(""), "/metrics"); code != http.StatusUnauthorized {
		t.Errorf("anonymous: status = %d (body %q), want 401", code, body)
	}
	// "reader" may only get nodes/proxy; /metrics is nodes/metrics.
	if code, body := env.get(env.restConfig("reader"), "/metrics"); code != http.StatusForbidden || !strings.Contains(body, "subresource(s)=[metrics]") {
		t.Errorf("reader: status = %d (body %q), want 403 for nodes/metrics", code, body)
	}
}

func TestServeHealthz(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serveHealthz(ctx, ln) }()
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get("http://" + ln.Addr().String() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/healthz"); code != http.StatusOK || body != "ok" {
		t.Errorf("/healthz = %d %q, want 200 ok", code, body)
	}
	// Nothing but /healthz: this port has no authentication.
	for _, p := range []string{"/metrics", "/pods", "/stats/summary", "/"} {
		if code, _ := get(p); code != http.StatusNotFound {
			t.Errorf("%s = %d, want 404", p, code)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("serveHealthz after cancel: %v", err)
	}
}
