// Package apilb is an agent's client-side load balancer in front of the
// cluster's API servers, as k3s's agent has one (pkg/agent/loadbalancer):
// a TCP listener on the node's loopback that the node's kubeconfigs name,
// which passes each connection on, TLS and all, to one of the API servers.
//
// An agent joins through one server (--server, then the one
// kube-public/cluster-info names). Without the balancer, the node's
// clients (its lease and status, its pods' watch, the Service proxy, the
// NetworkPolicy enforcer) all talk to that one server: if it stops, the
// node goes NotReady although other servers serve. With it, a connection
// goes to the server the last one reached, and when that server refuses
// or does not answer within DialTimeout, to the next: those of the
// `kubernetes` Service's endpoints (each API server publishes its own
// address there and removes it when it stops: the apiserver's lease
// endpoint reconciler), then the server the agent joined through.
// Connections to a server that leaves the endpoints are closed, so that
// the clients dial again and reach one that is there.
//
// Every server's serving certificate holds 127.0.0.1 (internal/pki), so
// the clients verify the server they reach as before, against the cluster
// CA; the balancer sees only TLS. It listens on loopback only, on a port
// the kernel picks: pods in their own network namespace cannot reach it,
// and a hostNetwork pod that can reaches no more than it could without the
// balancer (the API servers authenticate every request), with at most
// MaxConns connections at once.
package apilb

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"slices"
	"sync"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"

	"github.com/pocketkube/pocketkube/internal/atomicfile"
)

const (
	// DialTimeout is how long a server has to accept a connection before
	// the balancer tries the next.
	DialTimeout = 2 * time.Second
	// MaxConns is how many connections the balancer passes on at once;
	// beyond, a new one is closed at once. The node's own clients hold a
	// handful (HTTP/2 multiplexes their requests).
	MaxConns = 256
)

// LB passes connections to the API servers. Its zero value is not usable:
// New makes one.
type LB struct {
	ln       net.Listener
	fallback string // the server the agent joined through, HOST:PORT

	mu      sync.Mutex
	servers []string // the `kubernetes` endpoints, HOST:PORT
	current string   // the server the last connection reached
	conns   map[string]map[*pair]struct{}
	active  int
}

// pair is one connection passed on: the client's and the server's.
type pair struct{ client, server net.Conn }

func (p *pair) close() {
	p.client.Close()
	p.server.Close()
}

// New listens on listen (HOST:PORT; port 0 for one the kernel picks) and
// returns the balancer, which tries servers (HOST:PORT, e.g. those an
// earlier run saved) then fallback. Serve passes the connections on.
func New(listen, fallback string, servers []string) (*LB, error) {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, fmt.Errorf("API server load balancer: %w", err)
	}
	return &LB{ln: ln, fallback: fallback, current: fallback, servers: slices.Clone(servers), conns: map[string]map[*pair]struct{}{}}, nil
}

// URL is the https URL that the node's kubeconfigs name instead of a
// server.
func (l *LB) URL() string { return "https://" + l.ln.Addr().String() }

// Servers returns the servers the balancer tries, in the order it tries
// them now.
func (l *LB) Servers() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.order()
}

// order is the servers to try: the current one, the endpoints, the
// fallback, each once.
func (l *LB) order() []string {
	out := []string{l.current}
	for _, s := range append(slices.Clone(l.servers), l.fallback) {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// SetServers replaces the endpoints the balancer tries. The connections
// to a server that was among them and is not any more are closed.
func (l *LB) SetServers(servers []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if slices.Equal(servers, l.servers) {
		return
	}
	for _, old := range l.servers {
		if slices.Contains(servers, old) {
			continue
		}
		for p := range l.conns[old] {
			p.close() // its handler untracks it
		}
		if l.current == old && len(servers) > 0 {
			l.current = servers[0]
		}
	}
	l.servers = slices.Clone(servers)
}

// Serve passes the listener's connections on until ctx is done, then
// closes the listener and every connection.
func (l *LB) Serve(ctx context.Context) {
	stop := context.AfterFunc(ctx, func() {
		l.ln.Close()
		l.mu.Lock()
		defer l.mu.Unlock()
		for _, ps := range l.conns {
			for p := range ps {
				p.close()
			}
		}
	})
	defer stop()
	logger := klog.FromContext(ctx)
	for {
		c, err := l.ln.Accept()
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, net.ErrClosed) {
				logger.Error(err, "API server load balancer stopped accepting")
			}
			return
		}
		l.mu.Lock()
		full := l.active >= MaxConns
		if !full {
			l.active++
		}
		l.mu.Unlock()
		if full {
			logger.V(2).Info("API server load balancer: too many connections, closing a new one", "from", c.RemoteAddr())
			c.Close()
			continue
		}
		go func() {
			defer func() {
				l.mu.Lock()
				l.active--
				l.mu.Unlock()
			}()
			l.handle(ctx, c)
		}()
	}
}

// handle dials a server for client connection c and copies both ways
// until either side ends.
func (l *LB) handle(ctx context.Context, c net.Conn) {
	s, server, err := l.dial(ctx)
	if err != nil {
		klog.FromContext(ctx).Info("API server load balancer: no server answered", "err", err)
		c.Close()
		return
	}
	p := &pair{client: c, server: s}
	l.mu.Lock()
	if ctx.Err() != nil {
		l.mu.Unlock()
		p.close()
		return
	}
	if l.conns[server] == nil {
		l.conns[server] = map[*pair]struct{}{}
	}
	l.conns[server][p] = struct{}{}
	l.mu.Unlock()
	defer func() {
		l.mu.Lock()
		delete(l.conns[server], p)
		if len(l.conns[server]) == 0 {
			delete(l.conns, server)
		}
		l.mu.Unlock()
	}()
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(s, c); done <- struct{}{} }()
	go func() { _, _ = io.Copy(c, s); done <- struct{}{} }()
	<-done
	p.close()
	<-done
}

// dial connects to the first server of order that accepts within
// DialTimeout and makes it the current one.
func (l *LB) dial(ctx context.Context) (net.Conn, string, error) {
	l.mu.Lock()
	try := l.order()
	l.mu.Unlock()
	var errs []error
	d := net.Dialer{Timeout: DialTimeout, KeepAlive: 30 * time.Second}
	for _, server := range try {
		s, err := d.DialContext(ctx, "tcp", server)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		l.mu.Lock()
		if l.current != server {
			klog.FromContext(ctx).Info("API server load balancer: switched server", "from", l.current, "to", server)
			l.current = server
		}
		l.mu.Unlock()
		return s, server, nil
	}
	return nil, "", errors.Join(errs...)
}

// ServerOf returns the HOST:PORT of the server that kubeconfig's current
// context names.
func ServerOf(kubeconfig string) (string, error) {
	cfg, err := clientcmd.LoadFromFile(kubeconfig)
	if err != nil {
		return "", err
	}
	kctx, ok := cfg.Contexts[cfg.CurrentContext]
	if !ok {
		return "", fmt.Errorf("%s: no context %q", kubeconfig, cfg.CurrentContext)
	}
	cluster, ok := cfg.Clusters[kctx.Cluster]
	if !ok {
		return "", fmt.Errorf("%s: no cluster %q", kubeconfig, kctx.Cluster)
	}
	u, err := url.Parse(cluster.Server)
	if err != nil || u.Scheme != "https" || u.Port() == "" {
		return "", fmt.Errorf("%s: server %q, want https://HOST:PORT", kubeconfig, cluster.Server)
	}
	return u.Host, nil
}

// WriteKubeconfig writes dst (0600): kubeconfig src with each cluster's
// server the balancer's URL.
func (l *LB) WriteKubeconfig(src, dst string) error {
	cfg, err := clientcmd.LoadFromFile(src)
	if err != nil {
		return err
	}
	for _, c := range cfg.Clusters {
		c.Server = l.URL()
	}
	data, err := clientcmd.Write(*cfg)
	if err != nil {
		return err
	}
	return atomicfile.Write(dst, data, 0o600)
}
