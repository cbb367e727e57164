package kubeletapi

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"k8s.io/apiserver/pkg/server/healthz"
	"k8s.io/klog/v2"
)

// DefaultHealthzAddr is kubelet's default healthz listener
// (--healthz-bind-address 127.0.0.1, --healthz-port 10248).
const DefaultHealthzAddr = "127.0.0.1:10248"

// newMetricsRegistry is the registry /metrics serves: the process' Go and
// process collectors. Kubelet serves its global registry there; ours is a
// registry of its own, since the process' global one holds the embedded
// control plane's metrics, which the API server serves itself.
func newMetricsRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector())
	reg.MustRegister(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// metricsHandler serves reg in the Prometheus text (or negotiated) format.
func metricsHandler(reg prometheus.Gatherer) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// RunHealthz serves kubelet's healthz endpoint, plain HTTP, on addr (default
// DefaultHealthzAddr) until ctx is done. As kubelet's healthz server it
// serves /healthz ("ok") and nothing else, without authentication, which is
// why it belongs on loopback.
func RunHealthz(ctx context.Context, addr string) error {
	if addr == "" {
		addr = DefaultHealthzAddr
	}
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("serve healthz: %w", err)
	}
	klog.FromContext(ctx).Info("Starting healthz server", "address", addr)
	return serveHealthz(ctx, ln)
}

// serveHealthz serves /healthz on ln until ctx is done.
func serveHealthz(ctx context.Context, ln net.Listener) error {
	mux := http.NewServeMux()
	healthz.InstallHandler(mux)
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		MaxHeaderBytes:    1 << 20,
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	errCh := make(chan error, 1)
	go func() { errCh <- srv.Serve(ln) }()
	select {
	case err := <-errCh:
		return fmt.Errorf("serve healthz on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		_ = srv.Close()
		return fmt.Errorf("shut down healthz server: %w", err)
	}
	return nil
}
