package dns

import (
	"context"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	discoverylisters "k8s.io/client-go/listers/discovery/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2/ktesting"
	"k8s.io/utils/ptr"
)

// fixture is a Server on 127.0.0.1 fed by indexers, as informers feed it in
// the node.
type fixture struct {
	addr     string
	services cache.Indexer
	slices   cache.Indexer
}

func newIndexer() cache.Indexer {
	return cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
}

// newFixture starts a Server with objs in its listers and upstreams as its
// resolvers, and stops it when the test ends.
func newFixture(tb testing.TB, upstreams []string, objs ...any) *fixture {
	tb.Helper()
	f := &fixture{services: newIndexer(), slices: newIndexer()}
	for _, o := range objs {
		f.add(tb, o)
	}
	if upstreams == nil {
		upstreams = []string{downUpstream(tb)}
	}
	srv, err := New(Config{
		Addr:           "127.0.0.1:0",
		Services:       corelisters.NewServiceLister(f.services),
		EndpointSlices: discoverylisters.NewEndpointSliceLister(f.slices),
		Upstreams:      upstreams,
		ForwardTimeout: time.Second,
	})
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	_, ctx := ktesting.NewTestContext(tb)
	ctx, cancel := context.WithCancel(ctx)
	var runErr error
	done := make(chan struct{}) // closed when Run has returned runErr
	go func() {
		runErr = srv.Run(ctx)
		close(done)
	}()
	tb.Cleanup(func() {
		cancel()
		<-done
		if runErr != nil {
			tb.Errorf("Run: %v", runErr)
		}
	})
	select {
	case <-srv.Ready():
	case <-done:
		tb.Fatalf("Run returned before serving")
	}
	f.addr = srv.Addr().String()
	return f
}

func (f *fixture) add(tb testing.TB, o any) {
	tb.Helper()
	var err error
	switch o := o.(type) {
	case *corev1.Service:
		err = f.services.Add(o)
	case *discoveryv1.EndpointSlice:
		err = f.slices.Add(o)
	default:
		tb.Fatalf("unexpected object %T", o)
	}
	if err != nil {
		tb.Fatal(err)
	}
}

// query asks the server over network ("udp" or "tcp").
func query(tb testing.TB, addr, network, name string, qtype uint16) *mdns.Msg {
	tb.Helper()
	m := new(mdns.Msg)
	m.SetQuestion(name, qtype)
	c := &mdns.Client{Net: network, Timeout: 5 * time.Second}
	resp, _, err := c.Exchange(m, addr)
	if err != nil {
		tb.Fatalf("query %s %s over %s: %v", name, mdns.TypeToString[qtype], network, err)
	}
	return resp
}

// rrStrings formats records as "name ttl class type data", sorted.
func rrStrings(rrs []mdns.RR) []string {
	out := []string{}
	for _, rr := range rrs {
		out = append(out, strings.Join(strings.Fields(rr.String()), " "))
	}
	slices.Sort(out)
	return out
}

// downUpstream returns a UDP address where nothing listens, so that a
// query there fails at once with "connection refused".
func downUpstream(tb testing.TB) string {
	tb.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	addr := pc.LocalAddr().String()
	pc.Close()
	return addr
}

// upstream runs a tiny resolver on 127.0.0.1 that knows example.org. A,
// www.example.com. A and big.example.org. (100 A records, truncated over
// UDP) and answers NXDOMAIN for the rest.
func upstream(tb testing.TB) string {
	tb.Helper()
	pc, l, err := listen("127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	handler := mdns.HandlerFunc(func(w mdns.ResponseWriter, r *mdns.Msg) {
		m := new(mdns.Msg)
		m.SetReply(r)
		q := r.Question[0]
		rr := func(s string) mdns.RR {
			x, err := mdns.NewRR(s)
			if err != nil {
				panic(err)
			}
			return x
		}
		switch {
		case q.Name == "example.org." && q.Qtype == mdns.TypeA:
			m.Answer = append(m.Answer, rr("example.org. 300 IN A 192.0.2.10"))
		case q.Name == "www.example.com." && q.Qtype == mdns.TypeA:
			m.Answer = append(m.Answer, rr("www.example.com. 300 IN A 192.0.2.53"))
		case q.Name == "big.example.org." && q.Qtype == mdns.TypeA:
			for i := range 100 {
				m.Answer = append(m.Answer, rr(fmt.Sprintf("big.example.org. 300 IN A 192.0.2.%d", i)))
			}
		case q.Name == "big.example.org." || q.Name == "example.org." || q.Name == "www.example.com.":
		default:
			m.Rcode = mdns.RcodeNameError
		}
		if _, udp := w.RemoteAddr().(*net.UDPAddr); udp {
			m.Truncate(mdns.MinMsgSize)
		}
		_ = w.WriteMsg(m)
	})
	for _, srv := range []*mdns.Server{{PacketConn: pc, Handler: handler}, {Listener: l, Handler: handler}} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		go func() { _ = srv.ActivateAndServe() }()
		<-started
		tb.Cleanup(func() { _ = srv.Shutdown() })
	}
	return pc.LocalAddr().String()
}

func service(ns, name string, mutate func(*corev1.Service)) *corev1.Service {
	s := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: corev1.ServiceSpec{
			Type:  corev1.ServiceTypeClusterIP,
			Ports: []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP}},
		},
	}
	mutate(s)
	return s
}

func clusterIP(ips ...string) func(*corev1.Service) {
	return func(s *corev1.Service) {
		s.Spec.ClusterIP = ips[0]
		s.Spec.ClusterIPs = ips
	}
}

type ep struct {
	ip       string
	hostname string
	ready    *bool
}

func endpointSlice(ns, name, svc string, addrType discoveryv1.AddressType, ports []discoveryv1.EndpointPort, eps ...ep) *discoveryv1.EndpointSlice {
	s := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name,
			Labels: map[string]string{discoveryv1.LabelServiceName: svc}},
		AddressType: addrType,
		Ports:       ports,
	}
	for _, e := range eps {
		d := discoveryv1.Endpoint{Addresses: []string{e.ip}, Conditions: discoveryv1.EndpointConditions{Ready: e.ready}}
		if e.hostname != "" {
			d.Hostname = ptr.To(e.hostname)
		}
		s.Endpoints = append(s.Endpoints, d)
	}
	return s
}

func port(name string, num int32, proto corev1.Protocol) discoveryv1.EndpointPort {
	return discoveryv1.EndpointPort{Name: ptr.To(name), Port: ptr.To(num), Protocol: ptr.To(proto)}
}

// clusterObjects is a small cluster: a ClusterIP Service, a dual-stack one,
// headless ones with and without ready endpoints, an ExternalName Service
// and kube-dns itself.
func clusterObjects() []any {
	webPorts := []discoveryv1.EndpointPort{port("http", 8080, corev1.ProtocolTCP), port("", 9090, corev1.ProtocolTCP)}
	return []any{
		service("default", "kubernetes", func(s *corev1.Service) {
			clusterIP("10.96.0.1")(s)
			s.Spec.Ports = []corev1.ServicePort{{Name: "https", Port: 443, Protocol: corev1.ProtocolTCP}}
		}),
		service("kube-system", "kube-dns", func(s *corev1.Service) {
			clusterIP("10.96.0.10")(s)
			s.Spec.Ports = []corev1.ServicePort{
				{Name: "dns", Port: 53, Protocol: corev1.ProtocolUDP},
				{Name: "dns-tcp", Port: 53, Protocol: corev1.ProtocolTCP},
			}
		}),
		service("default", "dual", clusterIP("10.96.0.20", "fd00:10:96::20")),
		service("default", "web", clusterIP(corev1.ClusterIPNone)),
		endpointSlice("default", "web-abc", "web", discoveryv1.AddressTypeIPv4, webPorts,
			ep{ip: "10.244.0.5", hostname: "web-0"},
			ep{ip: "10.244.0.6", ready: ptr.To(true)},
			ep{ip: "10.244.0.7", hostname: "web-2", ready: ptr.To(false)}),
		endpointSlice("default", "web-v6", "web", discoveryv1.AddressTypeIPv6, webPorts,
			ep{ip: "fd00:10:244::5", hostname: "web-0"}),
		// The same address in a second slice, as while the controller
		// moves endpoints between slices.
		endpointSlice("default", "web-dup", "web", discoveryv1.AddressTypeIPv4, webPorts,
			ep{ip: "10.244.0.5", hostname: "web-0"}),
		service("default", "unready", func(s *corev1.Service) {
			clusterIP(corev1.ClusterIPNone)(s)
			s.Spec.PublishNotReadyAddresses = true
		}),
		endpointSlice("default", "unready-abc", "unready", discoveryv1.AddressTypeIPv4, nil,
			ep{ip: "10.244.0.8", hostname: "db-0", ready: ptr.To(false)}),
		service("default", "empty", clusterIP(corev1.ClusterIPNone)),
		endpointSlice("default", "empty-abc", "empty", discoveryv1.AddressTypeIPv4, webPorts,
			ep{ip: "10.244.0.9", ready: ptr.To(false)}),
		service("default", "ext", func(s *corev1.Service) {
			s.Spec.Type = corev1.ServiceTypeExternalName
			s.Spec.ExternalName = "www.example.com"
			s.Spec.Ports = nil
		}),
		service("default", "ext-local", func(s *corev1.Service) {
			s.Spec.Type = corev1.ServiceTypeExternalName
			s.Spec.ExternalName = "kubernetes.default.svc.cluster.local"
			s.Spec.Ports = nil
		}),
	}
}

func TestRecords(t *testing.T) {
	f := newFixture(t, []string{upstream(t)}, clusterObjects()...)
	const soa = "cluster.local. 5 IN SOA ns.dns.cluster.local. hostmaster.cluster.local."
	tests := []struct {
		name   string
		qname  string
		qtype  uint16
		rcode  int
		answer []string
		extra  []string
		// soa: the zone's SOA must be in the authority section
		// (NXDOMAIN and NODATA).
		soa bool
	}{
		{
			name: "ClusterIP Service A", qname: "kubernetes.default.svc.cluster.local.", qtype: mdns.TypeA,
			answer: []string{"kubernetes.default.svc.cluster.local. 5 IN A 10.96.0.1"},
		},
		{
			name: "case-insensitive, answer keeps the question's case", qname: "KUBERNETES.default.svc.Cluster.Local.", qtype: mdns.TypeA,
			answer: []string{"KUBERNETES.default.svc.Cluster.Local. 5 IN A 10.96.0.1"},
		},
		{
			name: "AAAA of an IPv4-only Service is NODATA", qname: "kubernetes.default.svc.cluster.local.", qtype: mdns.TypeAAAA,
			soa: true,
		},
		{
			name: "TXT of a Service is NODATA", qname: "kubernetes.default.svc.cluster.local.", qtype: mdns.TypeTXT,
			soa: true,
		},
		{
			name: "dual-stack Service A", qname: "dual.default.svc.cluster.local.", qtype: mdns.TypeA,
			answer: []string{"dual.default.svc.cluster.local. 5 IN A 10.96.0.20"},
		},
		{
			name: "dual-stack Service AAAA", qname: "dual.default.svc.cluster.local.", qtype: mdns.TypeAAAA,
			answer: []string{"dual.default.svc.cluster.local. 5 IN AAAA fd00:10:96::20"},
		},
		{
			name: "missing Service is NXDOMAIN", qname: "nope.default.svc.cluster.local.", qtype: mdns.TypeA,
			rcode: mdns.RcodeNameError, soa: true,
		},
		{
			name: "missing namespace is NXDOMAIN", qname: "kubernetes.nope.svc.cluster.local.", qtype: mdns.TypeA,
			rcode: mdns.RcodeNameError, soa: true,
		},
		{
			name: "namespace with Services is NODATA", qname: "default.svc.cluster.local.", qtype: mdns.TypeA,
			soa: true,
		},
		{
			name: "namespace without Services is NXDOMAIN", qname: "nope.svc.cluster.local.", qtype: mdns.TypeA,
			rcode: mdns.RcodeNameError, soa: true,
		},
		{
			name: "unknown name in the zone is NXDOMAIN", qname: "foo.cluster.local.", qtype: mdns.TypeA,
			rcode: mdns.RcodeNameError, soa: true,
		},
		{
			name: "search-path expansion of an external name is NXDOMAIN", qname: "example.org.default.svc.cluster.local.", qtype: mdns.TypeA,
			rcode: mdns.RcodeNameError, soa: true,
		},
		{
			name: "headless Service A: ready endpoints once each", qname: "web.default.svc.cluster.local.", qtype: mdns.TypeA,
			answer: []string{
				"web.default.svc.cluster.local. 5 IN A 10.244.0.5",
				"web.default.svc.cluster.local. 5 IN A 10.244.0.6",
			},
		},
		{
			name: "headless Service AAAA", qname: "web.default.svc.cluster.local.", qtype: mdns.TypeAAAA,
			answer: []string{"web.default.svc.cluster.local. 5 IN AAAA fd00:10:244::5"},
		},
		{
			name: "headless Service publishing not-ready addresses", qname: "unready.default.svc.cluster.local.", qtype: mdns.TypeA,
			answer: []string{"unready.default.svc.cluster.local. 5 IN A 10.244.0.8"},
		},
		{
			name: "headless Service without ready endpoints is NXDOMAIN", qname: "empty.default.svc.cluster.local.", qtype: mdns.TypeA,
			rcode: mdns.RcodeNameError, soa: true,
		},
		{
			name: "endpoint hostname A", qname: "web-0.web.default.svc.cluster.local.", qtype: mdns.TypeA,
			answer: []string{"web-0.web.default.svc.cluster.local. 5 IN A 10.244.0.5"},
		},
		{
			name: "endpoint hostname AAAA", qname: "web-0.web.default.svc.cluster.local.", qtype: mdns.TypeAAAA,
			answer: []string{"web-0.web.default.svc.cluster.local. 5 IN AAAA fd00:10:244::5"},
		},
		{
			name: "endpoint without hostname is named by its address", qname: "10-244-0-6.web.default.svc.cluster.local.", qtype: mdns.TypeA,
			answer: []string{"10-244-0-6.web.default.svc.cluster.local. 5 IN A 10.244.0.6"},
		},
		{
			name: "not-ready endpoint hostname is NXDOMAIN", qname: "web-2.web.default.svc.cluster.local.", qtype: mdns.TypeA,
			rcode: mdns.RcodeNameError, soa: true,
		},
		{
			name: "not-ready endpoint of a publishNotReadyAddresses Service", qname: "db-0.unready.default.svc.cluster.local.", qtype: mdns.TypeA,
			answer: []string{"db-0.unready.default.svc.cluster.local. 5 IN A 10.244.0.8"},
		},
		{
			name: "SRV for a named port of a ClusterIP Service", qname: "_https._tcp.kubernetes.default.svc.cluster.local.", qtype: mdns.TypeSRV,
			answer: []string{"_https._tcp.kubernetes.default.svc.cluster.local. 5 IN SRV 0 100 443 kubernetes.default.svc.cluster.local."},
			extra:  []string{"kubernetes.default.svc.cluster.local. 5 IN A 10.96.0.1"},
		},
		{
			name: "SRV for a UDP port", qname: "_dns._udp.kube-dns.kube-system.svc.cluster.local.", qtype: mdns.TypeSRV,
			answer: []string{"_dns._udp.kube-dns.kube-system.svc.cluster.local. 5 IN SRV 0 100 53 kube-dns.kube-system.svc.cluster.local."},
			extra:  []string{"kube-dns.kube-system.svc.cluster.local. 5 IN A 10.96.0.10"},
		},
		{
			name: "SRV with the wrong protocol is NXDOMAIN", qname: "_https._udp.kubernetes.default.svc.cluster.local.", qtype: mdns.TypeSRV,
			rcode: mdns.RcodeNameError, soa: true,
		},
		{
			name: "A at an SRV name is NODATA", qname: "_https._tcp.kubernetes.default.svc.cluster.local.", qtype: mdns.TypeA,
			soa: true,
		},
		{
			name: "SRV for a headless Service: one per ready endpoint", qname: "_http._tcp.web.default.svc.cluster.local.", qtype: mdns.TypeSRV,
			answer: []string{
				"_http._tcp.web.default.svc.cluster.local. 5 IN SRV 0 50 8080 10-244-0-6.web.default.svc.cluster.local.",
				"_http._tcp.web.default.svc.cluster.local. 5 IN SRV 0 50 8080 web-0.web.default.svc.cluster.local.",
			},
			extra: []string{
				"10-244-0-6.web.default.svc.cluster.local. 5 IN A 10.244.0.6",
				"web-0.web.default.svc.cluster.local. 5 IN A 10.244.0.5",
				"web-0.web.default.svc.cluster.local. 5 IN AAAA fd00:10:244::5",
			},
		},
		{
			name: "SRV on a Service name lists every port", qname: "dual.default.svc.cluster.local.", qtype: mdns.TypeSRV,
			answer: []string{"dual.default.svc.cluster.local. 5 IN SRV 0 100 80 dual.default.svc.cluster.local."},
			extra: []string{
				"dual.default.svc.cluster.local. 5 IN A 10.96.0.20",
				"dual.default.svc.cluster.local. 5 IN AAAA fd00:10:96::20",
			},
		},
		{
			name: "ExternalName A is a CNAME followed upstream", qname: "ext.default.svc.cluster.local.", qtype: mdns.TypeA,
			answer: []string{
				"ext.default.svc.cluster.local. 5 IN CNAME www.example.com.",
				"www.example.com. 300 IN A 192.0.2.53",
			},
		},
		{
			name: "ExternalName CNAME query is the CNAME alone", qname: "ext.default.svc.cluster.local.", qtype: mdns.TypeCNAME,
			answer: []string{"ext.default.svc.cluster.local. 5 IN CNAME www.example.com."},
		},
		{
			name: "ExternalName into the cluster domain is followed locally", qname: "ext-local.default.svc.cluster.local.", qtype: mdns.TypeA,
			answer: []string{
				"ext-local.default.svc.cluster.local. 5 IN CNAME kubernetes.default.svc.cluster.local.",
				"kubernetes.default.svc.cluster.local. 5 IN A 10.96.0.1",
			},
		},
		{
			name: "pod A record", qname: "1-2-3-4.default.pod.cluster.local.", qtype: mdns.TypeA,
			answer: []string{"1-2-3-4.default.pod.cluster.local. 5 IN A 1.2.3.4"},
		},
		{
			name: "pod AAAA record", qname: "fd00-10-244--5.default.pod.cluster.local.", qtype: mdns.TypeAAAA,
			answer: []string{"fd00-10-244--5.default.pod.cluster.local. 5 IN AAAA fd00:10:244::5"},
		},
		{
			name: "AAAA of an IPv4 pod is NODATA", qname: "1-2-3-4.default.pod.cluster.local.", qtype: mdns.TypeAAAA,
			soa: true,
		},
		{
			name: "pod name that is no address is NXDOMAIN", qname: "web-0.default.pod.cluster.local.", qtype: mdns.TypeA,
			rcode: mdns.RcodeNameError, soa: true,
		},
		{
			name: "PTR for a ClusterIP", qname: "1.0.96.10.in-addr.arpa.", qtype: mdns.TypePTR,
			answer: []string{"1.0.96.10.in-addr.arpa. 5 IN PTR kubernetes.default.svc.cluster.local."},
		},
		{
			name: "PTR for an IPv6 ClusterIP", qname: mustReverse(t, "fd00:10:96::20"), qtype: mdns.TypePTR,
			answer: []string{mustReverse(t, "fd00:10:96::20") + " 5 IN PTR dual.default.svc.cluster.local."},
		},
		{
			name: "PTR for an endpoint address", qname: "5.0.244.10.in-addr.arpa.", qtype: mdns.TypePTR,
			answer: []string{"5.0.244.10.in-addr.arpa. 5 IN PTR web-0.web.default.svc.cluster.local."},
		},
		{
			name: "PTR for an unknown address is forwarded", qname: "7.7.7.7.in-addr.arpa.", qtype: mdns.TypePTR,
			rcode: mdns.RcodeNameError,
		},
		{
			name: "dns-version TXT", qname: "dns-version.cluster.local.", qtype: mdns.TypeTXT,
			answer: []string{`dns-version.cluster.local. 5 IN TXT "1.1.0"`},
		},
		{
			name: "apex NS", qname: "cluster.local.", qtype: mdns.TypeNS,
			answer: []string{"cluster.local. 5 IN NS ns.dns.cluster.local."},
			extra:  []string{"ns.dns.cluster.local. 5 IN A 10.96.0.10"},
		},
		{
			name: "apex A is NODATA", qname: "cluster.local.", qtype: mdns.TypeA,
			soa: true,
		},
		{
			name: "forwarded name", qname: "example.org.", qtype: mdns.TypeA,
			answer: []string{"example.org. 300 IN A 192.0.2.10"},
		},
	}
	for _, tc := range tests {
		for _, network := range []string{"udp", "tcp"} {
			t.Run(tc.name+"/"+network, func(t *testing.T) {
				resp := query(t, f.addr, network, tc.qname, tc.qtype)
				if resp.Rcode != tc.rcode {
					t.Errorf("rcode = %s, want %s", mdns.RcodeToString[resp.Rcode], mdns.RcodeToString[tc.rcode])
				}
				if got, want := rrStrings(resp.Answer), rrStrings(nil); tc.answer != nil {
					want = slices.Sorted(slices.Values(tc.answer))
					if !slices.Equal(got, want) {
						t.Errorf("answer:\n got %q\nwant %q", got, want)
					}
				} else if len(got) != 0 {
					t.Errorf("answer = %q, want none", got)
				}
				if tc.extra != nil {
					if got, want := rrStrings(resp.Extra), slices.Sorted(slices.Values(tc.extra)); !slices.Equal(got, want) {
						t.Errorf("additional:\n got %q\nwant %q", got, want)
					}
				}
				inZone := mdns.IsSubDomain("cluster.local.", strings.ToLower(tc.qname)) || tc.qtype == mdns.TypePTR && tc.answer != nil
				if resp.Authoritative != inZone {
					t.Errorf("AA = %v, want %v", resp.Authoritative, inZone)
				}
				if tc.soa {
					ns := rrStrings(resp.Ns)
					if len(ns) != 1 || !strings.HasPrefix(ns[0], soa) || !strings.HasSuffix(ns[0], " 7200 1800 86400 5") {
						t.Errorf("authority = %q, want the zone's SOA with negative TTL 5", ns)
					}
				}
			})
		}
	}
}

func mustReverse(tb testing.TB, ip string) string {
	tb.Helper()
	name, err := mdns.ReverseAddr(ip)
	if err != nil {
		tb.Fatal(err)
	}
	return name
}

// TestFollowsListers checks that answers follow the listers at once: a
// Service added or deleted (as an informer would) changes the next answer.
func TestFollowsListers(t *testing.T) {
	f := newFixture(t, nil)
	const name = "late.default.svc.cluster.local."
	if resp := query(t, f.addr, "udp", name, mdns.TypeA); resp.Rcode != mdns.RcodeNameError {
		t.Fatalf("before add: rcode = %s, want NXDOMAIN", mdns.RcodeToString[resp.Rcode])
	}
	svc := service("default", "late", clusterIP("10.96.0.50"))
	f.add(t, svc)
	resp := query(t, f.addr, "udp", name, mdns.TypeA)
	if got, want := rrStrings(resp.Answer), []string{name + " 5 IN A 10.96.0.50"}; !slices.Equal(got, want) {
		t.Fatalf("after add: answer = %q, want %q", got, want)
	}
	if err := f.services.Delete(svc); err != nil {
		t.Fatal(err)
	}
	resp = query(t, f.addr, "udp", name, mdns.TypeA)
	if resp.Rcode != mdns.RcodeNameError || len(resp.Answer) != 0 {
		t.Fatalf("after delete: rcode = %s, answer = %q, want NXDOMAIN", mdns.RcodeToString[resp.Rcode], rrStrings(resp.Answer))
	}
	if resp := query(t, f.addr, "udp", "10.0.96.10.in-addr.arpa.", mdns.TypePTR); len(resp.Answer) != 0 {
		t.Fatalf("PTR after delete: answer = %q, want none", rrStrings(resp.Answer))
	}
}

func TestForward(t *testing.T) {
	up := upstream(t)
	tests := []struct {
		name      string
		upstreams []string
		network   string
		edns      uint16
		qname     string
		rcode     int
		answers   int
		truncated bool
	}{
		{name: "answered upstream over udp", upstreams: []string{up}, network: "udp", qname: "example.org.", answers: 1},
		{name: "answered upstream over tcp", upstreams: []string{up}, network: "tcp", qname: "example.org.", answers: 1},
		{name: "NXDOMAIN from upstream is passed on", upstreams: []string{up}, network: "udp", qname: "nope.example.org.", rcode: mdns.RcodeNameError},
		{name: "a down upstream is skipped", upstreams: []string{downUpstream(t), up}, network: "udp", qname: "example.org.", answers: 1},
		{name: "SERVFAIL when every upstream is down", upstreams: []string{downUpstream(t), downUpstream(t)}, network: "udp", qname: "example.org.", rcode: mdns.RcodeServerFailure},
		// The upstream truncates big.example.org over UDP: the server asks
		// again over TCP and hands a TCP client all 100 records.
		{name: "truncated upstream reply is asked again over tcp", upstreams: []string{up}, network: "tcp", qname: "big.example.org.", answers: 100},
		// A UDP client without EDNS0 gets what fits in 512 bytes and TC.
		{name: "big reply to a udp client is truncated", upstreams: []string{up}, network: "udp", qname: "big.example.org.", truncated: true},
		// With EDNS0 the client's buffer size counts.
		{name: "big reply fits a udp client's EDNS0 buffer", upstreams: []string{up}, network: "udp", edns: 4096, qname: "big.example.org.", answers: 100},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, tc.upstreams)
			m := new(mdns.Msg)
			m.SetQuestion(tc.qname, mdns.TypeA)
			if tc.edns != 0 {
				m.SetEdns0(tc.edns, false)
			}
			c := &mdns.Client{Net: tc.network, Timeout: 5 * time.Second, UDPSize: tc.edns}
			resp, _, err := c.Exchange(m, f.addr)
			if err != nil {
				t.Fatalf("query: %v", err)
			}
			if (resp.IsEdns0() != nil) != (tc.edns != 0) {
				t.Errorf("OPT in reply = %v, want %v", resp.IsEdns0() != nil, tc.edns != 0)
			}
			if resp.Rcode != tc.rcode {
				t.Errorf("rcode = %s, want %s", mdns.RcodeToString[resp.Rcode], mdns.RcodeToString[tc.rcode])
			}
			if resp.Authoritative {
				t.Errorf("AA set on a forwarded reply")
			}
			if resp.Truncated != tc.truncated {
				t.Errorf("TC = %v, want %v", resp.Truncated, tc.truncated)
			}
			if !tc.truncated && len(resp.Answer) != tc.answers {
				t.Errorf("answers = %d, want %d: %q", len(resp.Answer), tc.answers, rrStrings(resp.Answer))
			}
		})
	}
}

func TestResolvConfUpstreams(t *testing.T) {
	tests := []struct {
		name string
		conf string
		want []string
	}{
		{name: "nameservers in order, loopback kept", conf: "search example.com\nnameserver 127.0.0.53\nnameserver 10.0.0.2\nnameserver fd00::53\noptions edns0\n",
			want: []string{"127.0.0.53:53", "10.0.0.2:53", "[fd00::53]:53"}},
		{name: "no nameserver means localhost", conf: "search example.com\n", want: []string{"127.0.0.1:53", "[::1]:53"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := t.TempDir() + "/resolv.conf"
			if err := os.WriteFile(path, []byte(tc.conf), 0o644); err != nil {
				t.Fatal(err)
			}
			got, err := ResolvConfUpstreams(path)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestNew(t *testing.T) {
	svcs := corelisters.NewServiceLister(newIndexer())
	eps := discoverylisters.NewEndpointSliceLister(newIndexer())
	tests := []struct {
		name    string
		cfg     Config
		wantErr bool
		wantUp  []string
	}{
		{name: "missing Addr", cfg: Config{Services: svcs, EndpointSlices: eps, Upstreams: []string{"10.0.0.2"}}, wantErr: true},
		{name: "missing listers", cfg: Config{Addr: "127.0.0.1:53", Upstreams: []string{"10.0.0.2"}}, wantErr: true},
		{name: "bad upstream", cfg: Config{Addr: "127.0.0.1:53", Services: svcs, EndpointSlices: eps, Upstreams: []string{"resolver"}}, wantErr: true},
		{name: "missing resolv.conf", cfg: Config{Addr: "127.0.0.1:53", Services: svcs, EndpointSlices: eps, ResolvConf: "/nonexistent/resolv.conf"}, wantErr: true},
		{name: "port 53 added, own address dropped", cfg: Config{Addr: "10.244.0.1:53", Services: svcs, EndpointSlices: eps,
			Upstreams: []string{"10.0.0.2", "10.244.0.1:53", "[fd00::53]:5353"}}, wantUp: []string{"10.0.0.2:53", "[fd00::53]:5353"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := New(tc.cfg)
			if (err != nil) != tc.wantErr {
				t.Fatalf("New: err = %v, wantErr %v", err, tc.wantErr)
			}
			if err == nil && !slices.Equal(s.Upstreams(), tc.wantUp) {
				t.Errorf("Upstreams = %q, want %q", s.Upstreams(), tc.wantUp)
			}
		})
	}
}

func BenchmarkQuery(b *testing.B) {
	f := newFixture(b, nil, clusterObjects()...)
	c := &mdns.Client{Net: "udp", Timeout: 5 * time.Second}
	conn, err := c.Dial(f.addr)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	m := new(mdns.Msg)
	m.SetQuestion("kubernetes.default.svc.cluster.local.", mdns.TypeA)
	b.ReportAllocs()
	for b.Loop() {
		resp, _, err := c.ExchangeWithConn(m, conn)
		if err != nil {
			b.Fatal(err)
		}
		if len(resp.Answer) != 1 {
			b.Fatalf("answer = %q", rrStrings(resp.Answer))
		}
	}
}
