package dns

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	mdns "github.com/miekg/dns"
	corelisters "k8s.io/client-go/listers/core/v1"
	discoverylisters "k8s.io/client-go/listers/discovery/v1"
	"k8s.io/klog/v2"
)

// Defaults for the optional Config fields.
const (
	DefaultDomain         = "cluster.local"
	DefaultTTL            = 5 * time.Second
	DefaultResolvConf     = "/etc/resolv.conf"
	DefaultForwardTimeout = 2 * time.Second
)

// shutdownTimeout bounds how long Run waits for in-flight queries once its
// context is done.
const shutdownTimeout = 5 * time.Second

// Config configures a Server. Addr, Services and EndpointSlices are required;
// a zero value in any other field means its default.
type Config struct {
	// Addr is the UDP and TCP address to serve on, such as "10.244.0.1:53".
	// With port 0 the kernel picks a free UDP port and TCP uses the same one
	// (see Server.Addr); tests use "127.0.0.1:0".
	Addr string
	// Domain is the cluster domain answered authoritatively. Default
	// "cluster.local".
	Domain string
	// Services and EndpointSlices are read on every query; they are meant to
	// be informer listers, so the answers follow the API server's events.
	// The server never modifies the objects they return.
	Services       corelisters.ServiceLister
	EndpointSlices discoverylisters.EndpointSliceLister
	// Upstreams are the resolvers ("ip:port", or "ip" for port 53) that
	// names outside the cluster domain are forwarded to, tried in order.
	// Default: the nameservers of ResolvConf.
	Upstreams []string
	// ResolvConf is read by New when Upstreams is empty. Default
	// /etc/resolv.conf. A file without nameservers means 127.0.0.1:53 and
	// [::1]:53, as for the C library and Go's resolver.
	ResolvConf string
	// TTL of every record in the cluster domain and the SOA's negative-cache
	// TTL. Default 5 s, as in CoreDNS's kubernetes plugin. Longer TTLs mean
	// fewer queries but slower convergence after a Service or Pod changes.
	TTL time.Duration
	// ForwardTimeout bounds one exchange with one upstream (each of the UDP
	// try and the TCP retry). Default 2 s. A client waits up to
	// len(Upstreams) times this before it gets SERVFAIL, so keep it below
	// the client's own timeout (5 s for glibc).
	ForwardTimeout time.Duration
}

// Server answers DNS queries for the cluster domain from listers and forwards
// the rest. Create it with New and start it with Run.
type Server struct {
	listen    string // Config.Addr
	zone      string // lower-case, fully qualified cluster domain
	services  corelisters.ServiceLister
	slices    discoverylisters.EndpointSliceLister
	upstreams []string
	ttl       uint32
	timeout   time.Duration
	serial    uint32

	mu      sync.Mutex
	started bool
	addr    net.Addr
	ready   chan struct{}
}

// New checks cfg, fills in defaults and returns a Server that is not yet
// serving. It reads cfg.ResolvConf when cfg.Upstreams is empty.
func New(cfg Config) (*Server, error) {
	if cfg.Addr == "" {
		return nil, errors.New("dns server: Addr is required")
	}
	if _, _, err := net.SplitHostPort(cfg.Addr); err != nil {
		return nil, fmt.Errorf("dns server: parse Addr %q: %w", cfg.Addr, err)
	}
	if cfg.Services == nil || cfg.EndpointSlices == nil {
		return nil, errors.New("dns server: Services and EndpointSlices listers are required")
	}
	if cfg.Domain == "" {
		cfg.Domain = DefaultDomain
	}
	if _, ok := mdns.IsDomainName(cfg.Domain); !ok {
		return nil, fmt.Errorf("dns server: invalid Domain %q", cfg.Domain)
	}
	if cfg.TTL == 0 {
		cfg.TTL = DefaultTTL
	}
	if cfg.TTL < time.Second {
		return nil, fmt.Errorf("dns server: TTL %s is below one second", cfg.TTL)
	}
	if cfg.ForwardTimeout == 0 {
		cfg.ForwardTimeout = DefaultForwardTimeout
	}
	if cfg.ResolvConf == "" {
		cfg.ResolvConf = DefaultResolvConf
	}
	ups := cfg.Upstreams
	if len(ups) == 0 {
		var err error
		if ups, err = ResolvConfUpstreams(cfg.ResolvConf); err != nil {
			return nil, fmt.Errorf("dns server: %w", err)
		}
	}
	upstreams, err := normalizeUpstreams(ups, cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("dns server: %w", err)
	}
	return &Server{
		listen:    cfg.Addr,
		zone:      mdns.CanonicalName(cfg.Domain),
		services:  cfg.Services,
		slices:    cfg.EndpointSlices,
		upstreams: upstreams,
		ttl:       uint32(cfg.TTL / time.Second),
		timeout:   cfg.ForwardTimeout,
		serial:    uint32(time.Now().Unix()),
		ready:     make(chan struct{}),
	}, nil
}

// Upstreams returns the resolvers the server forwards to, after defaults.
func (s *Server) Upstreams() []string {
	return append([]string(nil), s.upstreams...)
}

// Ready is closed once Run serves both UDP and TCP. It stays open when Run
// fails to start, so callers wait for Run's return as well.
func (s *Server) Ready() <-chan struct{} {
	return s.ready
}

// Addr returns the address Run listens on (the same port for UDP and TCP),
// or nil before Run has bound its sockets. It resolves a configured port 0.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// Run serves DNS over UDP and TCP on Config.Addr until ctx is done, then
// waits up to a few seconds for queries in flight and returns nil. It returns
// an error if a socket cannot be bound or a listener fails. Run may be called
// once.
func (s *Server) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.started {
		s.mu.Unlock()
		return errors.New("dns server: Run called twice")
	}
	s.started = true
	s.mu.Unlock()

	logger := klog.FromContext(ctx).WithName("dns")
	ctx = klog.NewContext(ctx, logger)
	pc, l, err := listen(s.listen)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.addr = pc.LocalAddr()
	s.mu.Unlock()

	handler := mdns.HandlerFunc(func(w mdns.ResponseWriter, r *mdns.Msg) {
		s.serveDNS(ctx, w, r)
	})
	var started sync.WaitGroup
	started.Add(2)
	udp := &mdns.Server{PacketConn: pc, Handler: handler, NotifyStartedFunc: started.Done}
	tcp := &mdns.Server{Listener: l, Handler: handler, NotifyStartedFunc: started.Done,
		ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second}

	errCh := make(chan error, 2)
	go func() { errCh <- serve(udp, "udp") }()
	go func() { errCh <- serve(tcp, "tcp") }()
	startedCh := make(chan struct{})
	go func() {
		started.Wait()
		close(startedCh)
	}()

	var runErr error
	// Wait for both servers before anything else: miekg/dns cannot shut
	// down a server that has not started yet.
	select {
	case <-startedCh:
		logger.Info("Serving cluster DNS", "addr", s.addr.String(), "zone", s.zone, "upstreams", s.upstreams)
		close(s.ready)
		select {
		case <-ctx.Done():
		case runErr = <-errCh:
		}
	case runErr = <-errCh:
	}
	shutCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	for _, srv := range []*mdns.Server{udp, tcp} {
		// ShutdownContext fails for a server that has not started or has
		// already stopped; closing the sockets below ends those.
		_ = srv.ShutdownContext(shutCtx)
	}
	pc.Close()
	l.Close()
	return runErr
}

// portZeroAttempts bounds the retries of listen for port 0.
const portZeroAttempts = 20

// listen binds UDP and TCP on the same address. For port 0 the kernel picks
// the UDP port, and TCP takes the same one; as that TCP port may be in use
// (ports are allocated per protocol), listen then tries another UDP port.
func listen(addr string) (net.PacketConn, net.Listener, error) {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, nil, fmt.Errorf("parse listen address %q: %w", addr, err)
	}
	attempts := 1
	if port == "0" {
		attempts = portZeroAttempts
	}
	for i := 0; ; i++ {
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			return nil, nil, fmt.Errorf("listen on udp %s: %w", addr, err)
		}
		l, err := net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			return pc, l, nil
		}
		pc.Close()
		if i+1 >= attempts {
			return nil, nil, fmt.Errorf("listen on tcp %s: %w", pc.LocalAddr(), err)
		}
	}
}

func serve(srv *mdns.Server, network string) error {
	if err := srv.ActivateAndServe(); err != nil {
		return fmt.Errorf("serve dns over %s: %w", network, err)
	}
	return nil
}

// serveDNS answers one query: authoritatively for the cluster domain, from
// the listers for known reverse names, and through the upstreams otherwise.
func (s *Server) serveDNS(ctx context.Context, w mdns.ResponseWriter, r *mdns.Msg) {
	resp := s.respond(ctx, r)
	_, udp := w.RemoteAddr().(*net.UDPAddr)
	size := mdns.MaxMsgSize
	if udp {
		size = mdns.MinMsgSize
		if opt := r.IsEdns0(); opt != nil && int(opt.UDPSize()) > size {
			size = int(opt.UDPSize())
		}
	}
	resp.Truncate(size)
	if err := w.WriteMsg(resp); err != nil {
		klog.FromContext(ctx).V(4).Info("Write DNS reply failed", "client", w.RemoteAddr().String(), "err", err)
	}
}

// respond builds the reply to r.
func (s *Server) respond(ctx context.Context, r *mdns.Msg) *mdns.Msg {
	if r.Opcode != mdns.OpcodeQuery {
		return errorReply(r, mdns.RcodeNotImplemented)
	}
	if len(r.Question) != 1 {
		return errorReply(r, mdns.RcodeFormatError)
	}
	q := r.Question[0]
	name := strings.ToLower(mdns.Fqdn(q.Name))
	logger := klog.FromContext(ctx)
	if q.Qtype == mdns.TypeAXFR || q.Qtype == mdns.TypeIXFR {
		return errorReply(r, mdns.RcodeRefused) // no zone transfers, as CoreDNS without the transfer plugin
	}

	if mdns.IsSubDomain(s.zone, name) {
		if q.Qclass != mdns.ClassINET && q.Qclass != mdns.ClassANY {
			return errorReply(r, mdns.RcodeRefused)
		}
		resp := s.zoneReply(ctx, r, q, name)
		logAnswer(logger, q, resp)
		return resp
	}
	if q.Qtype == mdns.TypePTR && q.Qclass == mdns.ClassINET {
		if targets := s.ptrTargets(name); len(targets) > 0 {
			resp := new(mdns.Msg)
			resp.SetReply(r)
			resp.Authoritative = true
			resp.RecursionAvailable = true
			for _, t := range targets {
				resp.Answer = append(resp.Answer, &mdns.PTR{Hdr: s.hdr(q.Name, mdns.TypePTR), Ptr: t})
			}
			addEdns(resp, r)
			logAnswer(logger, q, resp)
			return resp
		}
	}
	resp, err := s.forward(ctx, r)
	if err != nil {
		logger.V(2).Info("Forward DNS query failed", "name", q.Name, "type", mdns.TypeToString[q.Qtype], "err", err)
		return errorReply(r, mdns.RcodeServerFailure)
	}
	addEdns(resp, r)
	logAnswer(logger, q, resp)
	return resp
}

func logAnswer(logger logr.Logger, q mdns.Question, resp *mdns.Msg) {
	if v := logger.V(5); v.Enabled() {
		v.Info("Answered DNS query", "name", q.Name, "type", mdns.TypeToString[q.Qtype],
			"rcode", mdns.RcodeToString[resp.Rcode], "answers", len(resp.Answer))
	}
}

func errorReply(r *mdns.Msg, rcode int) *mdns.Msg {
	m := new(mdns.Msg)
	m.SetRcode(r, rcode)
	m.RecursionAvailable = true
	addEdns(m, r)
	return m
}

// addEdns answers an EDNS0 query with an OPT record, as RFC 6891 asks.
func addEdns(m, r *mdns.Msg) {
	if opt := r.IsEdns0(); opt != nil && m.IsEdns0() == nil {
		m.SetEdns0(advertisedUDPSize, opt.Do())
	}
}

// advertisedUDPSize is the EDNS0 buffer size the server announces: the 2020
// DNS flag day value, which avoids IP fragmentation.
const advertisedUDPSize = 1232
