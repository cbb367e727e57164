package dns

import (
	"context"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	mdns "github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/klog/v2"
)

// SchemaVersion is the version of the Kubernetes DNS schema the server
// implements, published as dns-version.<zone> TXT.
const SchemaVersion = "1.1.0"

// maxCNAMEChain bounds how many ExternalName Services a reply follows inside
// the cluster domain, so that two Services naming each other cannot loop.
const maxCNAMEChain = 8

// answer is the outcome of a lookup in the cluster domain. A nil answer list
// with exists set is NODATA.
type answer struct {
	exists bool // false: NXDOMAIN
	rrs    []mdns.RR
	extra  []mdns.RR
	// cname is the target of an ExternalName Service; rrs then holds the
	// CNAME record and the reply continues at the target.
	cname string
}

// zoneReply answers q, a question in the cluster domain; name is q.Name in
// lower case.
func (s *Server) zoneReply(ctx context.Context, r *mdns.Msg, q mdns.Question, name string) *mdns.Msg {
	m := new(mdns.Msg)
	m.SetReply(r)
	m.Authoritative = true
	m.RecursionAvailable = true
	addEdns(m, r)

	a := s.lookup(name, q.Name, q.Qtype)
	if !a.exists {
		m.Rcode = mdns.RcodeNameError
		m.Ns = []mdns.RR{s.soa()}
		return m
	}
	m.Answer = append(m.Answer, a.rrs...)
	m.Extra = append(m.Extra, a.extra...)
	if a.cname != "" && q.Qtype != mdns.TypeCNAME {
		s.chase(ctx, m, r, a.cname, q.Qtype)
	}
	if len(m.Answer) == 0 {
		m.Ns = []mdns.RR{s.soa()}
	}
	return m
}

// chase appends the records of target, the CNAME of an ExternalName
// Service, to m. A target outside the cluster domain is asked upstream, as
// CoreDNS does; any failure leaves the CNAME alone in the answer, which
// clients then resolve themselves.
func (s *Server) chase(ctx context.Context, m, r *mdns.Msg, target string, qtype uint16) {
	for range maxCNAMEChain {
		lower := strings.ToLower(target)
		if !mdns.IsSubDomain(s.zone, lower) {
			break
		}
		a := s.lookup(lower, target, qtype)
		m.Answer = append(m.Answer, a.rrs...)
		m.Extra = append(m.Extra, a.extra...)
		if a.cname == "" {
			return
		}
		target = a.cname
	}
	if mdns.IsSubDomain(s.zone, strings.ToLower(target)) {
		return // chain too long
	}
	q := new(mdns.Msg)
	q.SetQuestion(target, qtype)
	q.RecursionDesired = r.RecursionDesired
	if opt := r.IsEdns0(); opt != nil {
		q.SetEdns0(opt.UDPSize(), opt.Do())
	}
	resp, err := s.forward(ctx, q)
	if err != nil {
		klog.FromContext(ctx).V(2).Info("Resolve ExternalName target failed", "target", target, "err", err)
		return
	}
	if resp.Rcode == mdns.RcodeSuccess {
		m.Answer = append(m.Answer, resp.Answer...)
	}
}

// lookup finds the records of name (lower case, in the zone) of type qtype;
// owner is the name as the client spelled it.
func (s *Server) lookup(name, owner string, qtype uint16) answer {
	base := strings.TrimSuffix(strings.TrimSuffix(name, s.zone), ".")
	var parts []string
	if base != "" {
		parts = mdns.SplitDomainName(base)
	}
	n := len(parts)
	switch {
	case n == 0:
		return s.apex(owner, qtype)
	case n == 1 && parts[0] == "dns-version":
		if qtype == mdns.TypeTXT || qtype == mdns.TypeANY {
			return answer{exists: true, rrs: []mdns.RR{&mdns.TXT{Hdr: s.hdr(owner, mdns.TypeTXT), Txt: []string{SchemaVersion}}}}
		}
		return answer{exists: true}
	case n == 1 && parts[0] == "dns":
		return answer{exists: true}
	case n == 2 && parts[1] == "dns" && parts[0] == "ns":
		return s.nameserver(owner, qtype)
	case parts[n-1] == "svc":
		return s.lookupSvc(parts[:n-1], owner, qtype)
	case parts[n-1] == "pod":
		return s.lookupPod(parts[:n-1], owner, qtype)
	}
	return answer{}
}

func (s *Server) apex(owner string, qtype uint16) answer {
	var a answer
	a.exists = true
	if qtype == mdns.TypeSOA || qtype == mdns.TypeANY {
		soa := s.soa()
		soa.Hdr.Name = owner
		a.rrs = append(a.rrs, soa)
	}
	if qtype == mdns.TypeNS || qtype == mdns.TypeANY {
		a.rrs = append(a.rrs, &mdns.NS{Hdr: s.hdr(owner, mdns.TypeNS), Ns: s.nsName()})
		a.extra = s.nameserver(s.nsName(), mdns.TypeANY).rrs
	}
	return a
}

func (s *Server) nsName() string { return "ns.dns." + s.zone }

// nameserver answers ns.dns.<zone> with the ClusterIPs of kube-dns, the
// address pods use for this server.
func (s *Server) nameserver(owner string, qtype uint16) answer {
	svc, err := s.services.Services(metaSystemNamespace).Get(kubeDNSName)
	if err != nil || !hasClusterIP(svc) {
		return answer{}
	}
	return answer{exists: true, rrs: s.addrRecords(owner, qtype, clusterIPs(svc))}
}

// lookupSvc answers names under svc.<zone>; labels are the labels before
// "svc", the namespace last.
func (s *Server) lookupSvc(parts []string, owner string, qtype uint16) answer {
	switch len(parts) {
	case 0: // svc.<zone>: an empty non-terminal
		return answer{exists: true}
	case 1: // <ns>.svc.<zone>
		svcs, err := s.services.Services(parts[0]).List(labels.Everything())
		return answer{exists: err == nil && len(svcs) > 0}
	}
	ns, name := parts[len(parts)-1], parts[len(parts)-2]
	svc, err := s.services.Services(ns).Get(name)
	if err != nil {
		return answer{}
	}
	svcName := name + "." + ns + ".svc." + s.zone
	switch len(parts) {
	case 2:
		return s.serviceRecords(svc, svcName, owner, qtype)
	case 3:
		if svc.Spec.Type == corev1.ServiceTypeExternalName {
			return answer{}
		}
		host := parts[0]
		var ips []netip.Addr
		for _, ep := range s.endpoints(svc) {
			if ep.hostname == host {
				ips = append(ips, ep.ip)
			}
		}
		if len(ips) == 0 {
			return answer{}
		}
		return answer{exists: true, rrs: s.addrRecords(owner, qtype, ips)}
	case 4:
		port, proto, ok := srvLabels(parts[0], parts[1])
		if !ok || svc.Spec.Type == corev1.ServiceTypeExternalName {
			return answer{}
		}
		return s.srvRecords(svc, svcName, owner, qtype, port, proto)
	}
	return answer{}
}

// srvLabels parses the "_<port>._<proto>" labels of an SRV name.
func srvLabels(port, proto string) (string, string, bool) {
	if len(port) < 2 || len(proto) < 2 || port[0] != '_' || proto[0] != '_' {
		return "", "", false
	}
	return port[1:], proto[1:], true
}

// serviceRecords answers <svc>.<ns>.svc.<zone>.
func (s *Server) serviceRecords(svc *corev1.Service, svcName, owner string, qtype uint16) answer {
	switch {
	case svc.Spec.Type == corev1.ServiceTypeExternalName:
		if svc.Spec.ExternalName == "" {
			return answer{}
		}
		target := mdns.Fqdn(svc.Spec.ExternalName)
		return answer{exists: true, cname: target,
			rrs: []mdns.RR{&mdns.CNAME{Hdr: s.hdr(owner, mdns.TypeCNAME), Target: target}}}
	case hasClusterIP(svc):
		a := answer{exists: true, rrs: s.addrRecords(owner, qtype, clusterIPs(svc))}
		if qtype == mdns.TypeSRV || qtype == mdns.TypeANY {
			a.rrs = append(a.rrs, s.srvForClusterIP(svc, svcName, owner, "", "")...)
			if len(a.rrs) > 0 {
				a.extra = s.addrRecords(svcName, mdns.TypeANY, clusterIPs(svc))
			}
		}
		return a
	default: // headless: the ready endpoints, NXDOMAIN without any
		eps := s.endpoints(svc)
		if len(eps) == 0 {
			return answer{}
		}
		ips := make([]netip.Addr, 0, len(eps))
		for _, ep := range eps {
			ips = append(ips, ep.ip)
		}
		a := answer{exists: true, rrs: s.addrRecords(owner, qtype, uniqueAddrs(ips))}
		if qtype == mdns.TypeSRV || qtype == mdns.TypeANY {
			srv, extra := s.srvForEndpoints(eps, svcName, owner, "", "")
			a.rrs = append(a.rrs, srv...)
			a.extra = extra
		}
		return a
	}
}

// srvRecords answers _<port>._<proto>.<svc>.<ns>.svc.<zone>.
func (s *Server) srvRecords(svc *corev1.Service, svcName, owner string, qtype uint16, port, proto string) answer {
	if hasClusterIP(svc) {
		srv := s.srvForClusterIP(svc, svcName, owner, port, proto)
		if len(srv) == 0 {
			return answer{}
		}
		if qtype != mdns.TypeSRV && qtype != mdns.TypeANY {
			return answer{exists: true}
		}
		return answer{exists: true, rrs: srv, extra: s.addrRecords(svcName, mdns.TypeANY, clusterIPs(svc))}
	}
	srv, extra := s.srvForEndpoints(s.endpoints(svc), svcName, owner, port, proto)
	if len(srv) == 0 {
		return answer{}
	}
	if qtype != mdns.TypeSRV && qtype != mdns.TypeANY {
		return answer{exists: true}
	}
	return answer{exists: true, rrs: srv, extra: extra}
}

// srvForClusterIP returns one SRV per Service port matching port and proto
// (empty matches all), pointing at the Service name.
func (s *Server) srvForClusterIP(svc *corev1.Service, svcName, owner, port, proto string) []mdns.RR {
	var out []*mdns.SRV
	for _, p := range svc.Spec.Ports {
		if !portMatches(port, proto, p.Name, p.Protocol) {
			continue
		}
		out = append(out, &mdns.SRV{Hdr: s.hdr(owner, mdns.TypeSRV), Port: uint16(p.Port), Target: svcName})
	}
	return weigh(out)
}

// srvForEndpoints returns one SRV per endpoint and endpoint port matching
// port and proto (empty matches all), pointing at the endpoint's name, and
// the address records of those names for the additional section. Endpoint
// ports are the ones the pods listen on: a headless Service has no port
// translation.
func (s *Server) srvForEndpoints(eps []endpoint, svcName, owner, port, proto string) (rrs, extra []mdns.RR) {
	var out []*mdns.SRV
	seen := map[string]bool{}    // target/port: one SRV per hostname and port
	targets := map[string]bool{} // hostnames with an SRV record
	for _, ep := range eps {
		target := ep.hostname + "." + svcName
		for _, p := range ep.ports {
			name, num, protocol := "", int32(0), corev1.ProtocolTCP
			if p.Name != nil {
				name = *p.Name
			}
			if p.Port != nil {
				num = *p.Port
			}
			if p.Protocol != nil {
				protocol = *p.Protocol
			}
			if num == 0 || !portMatches(port, proto, name, protocol) {
				continue
			}
			key := target + "/" + strconv.Itoa(int(num))
			if seen[key] {
				continue // the other address family of the same endpoint
			}
			seen[key] = true
			targets[target] = true
			out = append(out, &mdns.SRV{Hdr: s.hdr(owner, mdns.TypeSRV), Port: uint16(num), Target: target})
		}
	}
	for _, ep := range eps {
		if target := ep.hostname + "." + svcName; targets[target] {
			extra = append(extra, s.addrRecords(target, mdns.TypeANY, []netip.Addr{ep.ip})...)
		}
	}
	return weigh(out), extra
}

// weigh gives SRV records priority 0 and equal weights summing to about
// 100, as CoreDNS does for records of one priority.
func weigh(srv []*mdns.SRV) []mdns.RR {
	out := make([]mdns.RR, 0, len(srv))
	for _, r := range srv {
		r.Priority = 0
		r.Weight = uint16(max(1, 100/len(srv)))
		out = append(out, r)
	}
	return out
}

// portMatches reports whether a port named name with protocol protocol
// answers the SRV labels port and proto; empty labels match any port.
func portMatches(port, proto, name string, protocol corev1.Protocol) bool {
	if port == "" && proto == "" {
		return true
	}
	return name != "" && strings.EqualFold(port, name) && strings.EqualFold(proto, string(protocol))
}

// lookupPod answers <a-b-c-d>.<ns>.pod.<zone> with the address the name
// spells, without checking that such a pod exists (CoreDNS "pods insecure").
func (s *Server) lookupPod(parts []string, owner string, qtype uint16) answer {
	switch len(parts) {
	case 0, 1: // pod.<zone> and <ns>.pod.<zone> are empty non-terminals
		return answer{exists: true}
	case 2:
		ip, ok := podIP(parts[0])
		if !ok {
			return answer{}
		}
		return answer{exists: true, rrs: s.addrRecords(owner, qtype, []netip.Addr{ip})}
	}
	return answer{}
}

// podIP parses a pod name, the address with dashes for dots (IPv4) or
// colons (IPv6), as CoreDNS does.
func podIP(label string) (netip.Addr, bool) {
	var text string
	if strings.Count(label, "-") == 3 && !strings.Contains(label, "--") {
		text = strings.ReplaceAll(label, "-", ".")
	} else {
		text = strings.ReplaceAll(label, "-", ":")
	}
	ip, err := netip.ParseAddr(text)
	if err != nil || ip.Zone() != "" {
		return netip.Addr{}, false
	}
	return ip.Unmap(), true
}

// addrRecords returns the A (IPv4) and AAAA (IPv6) records among ips that
// answer qtype.
func (s *Server) addrRecords(owner string, qtype uint16, ips []netip.Addr) []mdns.RR {
	var out []mdns.RR
	for _, ip := range ips {
		switch {
		case ip.Is4() && (qtype == mdns.TypeA || qtype == mdns.TypeANY):
			out = append(out, &mdns.A{Hdr: s.hdr(owner, mdns.TypeA), A: ip.AsSlice()})
		case ip.Is6() && (qtype == mdns.TypeAAAA || qtype == mdns.TypeANY):
			out = append(out, &mdns.AAAA{Hdr: s.hdr(owner, mdns.TypeAAAA), AAAA: ip.AsSlice()})
		}
	}
	return out
}

func (s *Server) hdr(owner string, rrtype uint16) mdns.RR_Header {
	return mdns.RR_Header{Name: owner, Rrtype: rrtype, Class: mdns.ClassINET, Ttl: s.ttl}
}

// soa is the zone's SOA record, as CoreDNS writes it.
func (s *Server) soa() *mdns.SOA {
	return &mdns.SOA{
		Hdr:     s.hdr(s.zone, mdns.TypeSOA),
		Ns:      s.nsName(),
		Mbox:    "hostmaster." + s.zone,
		Serial:  s.serial,
		Refresh: 7200,
		Retry:   1800,
		Expire:  86400,
		Minttl:  s.ttl,
	}
}

// endpoint is one address of a Service's EndpointSlices.
type endpoint struct {
	hostname string
	ip       netip.Addr
	ports    []discoveryv1.EndpointPort
}

// endpoints returns the ready endpoint addresses of svc across its
// EndpointSlices, or all of them when the Service publishes not-ready
// addresses. An address listed by two slices (as while the controller moves
// it) counts once.
func (s *Server) endpoints(svc *corev1.Service) []endpoint {
	sel := labels.SelectorFromSet(labels.Set{discoveryv1.LabelServiceName: svc.Name})
	list, err := s.slices.EndpointSlices(svc.Namespace).List(sel)
	if err != nil {
		return nil
	}
	var out []endpoint
	seen := map[string]bool{}
	for _, slice := range list {
		if slice.AddressType != discoveryv1.AddressTypeIPv4 && slice.AddressType != discoveryv1.AddressTypeIPv6 {
			continue
		}
		for _, ep := range slice.Endpoints {
			if !ready(svc, ep) {
				continue
			}
			for _, a := range ep.Addresses {
				ip, err := netip.ParseAddr(a)
				if err != nil {
					continue
				}
				ip = ip.Unmap()
				host := hostname(ep, ip)
				if key := host + "/" + ip.String(); !seen[key] {
					seen[key] = true
					out = append(out, endpoint{hostname: host, ip: ip, ports: slice.Ports})
				}
			}
		}
	}
	slices.SortFunc(out, func(a, b endpoint) int {
		if c := strings.Compare(a.hostname, b.hostname); c != 0 {
			return c
		}
		return a.ip.Compare(b.ip)
	})
	return out
}

// ready applies the specification's "ready": the endpoint's ready condition
// (unknown means ready, as the EndpointSlice API documents) or, for a
// Service with publishNotReadyAddresses, any endpoint.
func ready(svc *corev1.Service, ep discoveryv1.Endpoint) bool {
	return svc.Spec.PublishNotReadyAddresses || ep.Conditions.Ready == nil || *ep.Conditions.Ready
}

// hostname is the endpoint's DNS label: its hostname, or else its address
// with dashes, the system-assigned identifier CoreDNS uses.
func hostname(ep discoveryv1.Endpoint, ip netip.Addr) string {
	if ep.Hostname != nil && *ep.Hostname != "" {
		return strings.ToLower(*ep.Hostname)
	}
	if ip.Is4() {
		return strings.ReplaceAll(ip.String(), ".", "-")
	}
	h := strings.ReplaceAll(ip.String(), ":", "-")
	if strings.HasSuffix(h, "-") {
		h += "0" // a label must not end with a dash
	}
	return h
}

// ptrTargets returns the names whose address name (an in-addr.arpa or
// ip6.arpa name in lower case) reverses: Services with that ClusterIP and
// ready endpoints with that address.
func (s *Server) ptrTargets(name string) []string {
	ip, ok := reverseAddr(name)
	if !ok {
		return nil
	}
	svcs, err := s.services.List(labels.Everything())
	if err != nil {
		return nil
	}
	var out []string
	for _, svc := range svcs {
		if !hasClusterIP(svc) {
			continue
		}
		if slices.Contains(clusterIPs(svc), ip) {
			out = append(out, svc.Name+"."+svc.Namespace+".svc."+s.zone)
		}
	}
	list, err := s.slices.List(labels.Everything())
	if err != nil {
		return out
	}
	for _, slice := range list {
		svcName := slice.Labels[discoveryv1.LabelServiceName]
		if svcName == "" || !sliceHasAddr(slice, ip) {
			continue
		}
		svc, err := s.services.Services(slice.Namespace).Get(svcName)
		if err != nil || svc.Spec.Type == corev1.ServiceTypeExternalName {
			continue
		}
		for _, ep := range s.endpoints(svc) {
			if ep.ip == ip {
				out = append(out, ep.hostname+"."+svcName+"."+svc.Namespace+".svc."+s.zone)
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func sliceHasAddr(slice *discoveryv1.EndpointSlice, ip netip.Addr) bool {
	for _, ep := range slice.Endpoints {
		for _, a := range ep.Addresses {
			if x, err := netip.ParseAddr(a); err == nil && x.Unmap() == ip {
				return true
			}
		}
	}
	return false
}

// reverseAddr parses an in-addr.arpa. or ip6.arpa. name of a full address.
func reverseAddr(name string) (netip.Addr, bool) {
	switch {
	case strings.HasSuffix(name, ".in-addr.arpa."):
		parts := strings.Split(strings.TrimSuffix(name, ".in-addr.arpa."), ".")
		if len(parts) != 4 {
			return netip.Addr{}, false
		}
		var b [4]byte
		for i, l := range parts {
			n, err := strconv.ParseUint(l, 10, 8)
			if err != nil || (len(l) > 1 && l[0] == '0') {
				return netip.Addr{}, false
			}
			b[3-i] = byte(n)
		}
		return netip.AddrFrom4(b), true
	case strings.HasSuffix(name, ".ip6.arpa."):
		parts := strings.Split(strings.TrimSuffix(name, ".ip6.arpa."), ".")
		if len(parts) != 32 {
			return netip.Addr{}, false
		}
		var b [16]byte
		for i, l := range parts {
			if len(l) != 1 {
				return netip.Addr{}, false
			}
			n, err := strconv.ParseUint(l, 16, 8)
			if err != nil {
				return netip.Addr{}, false
			}
			pos := 31 - i // nibble index from the most significant
			if pos%2 == 0 {
				b[pos/2] |= byte(n) << 4
			} else {
				b[pos/2] |= byte(n)
			}
		}
		return netip.AddrFrom16(b).Unmap(), true
	}
	return netip.Addr{}, false
}

// hasClusterIP reports whether svc has a virtual IP (not headless, not
// ExternalName).
func hasClusterIP(svc *corev1.Service) bool {
	return svc.Spec.Type != corev1.ServiceTypeExternalName &&
		svc.Spec.ClusterIP != "" && svc.Spec.ClusterIP != corev1.ClusterIPNone
}

// clusterIPs returns the parsed ClusterIPs of svc (both families of a
// dual-stack Service).
func clusterIPs(svc *corev1.Service) []netip.Addr {
	ips := svc.Spec.ClusterIPs
	if len(ips) == 0 {
		ips = []string{svc.Spec.ClusterIP}
	}
	var out []netip.Addr
	for _, s := range ips {
		if ip, err := netip.ParseAddr(s); err == nil {
			out = append(out, ip.Unmap())
		}
	}
	return out
}

func uniqueAddrs(ips []netip.Addr) []netip.Addr {
	slices.SortFunc(ips, netip.Addr.Compare)
	return slices.Compact(ips)
}
