package coredns

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/coredns/caddy"
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/plugin"
	"github.com/miekg/dns"
)

// clientsPlugin is a plugin of ours that answers queries from this
// machine and from the networks named in its arguments (the pod network)
// and refuses all others. CoreDNS listens on the node's address, which
// anyone on the node's network reaches; without it the node would be an
// open resolver for them (forward recurses for any name) and would show
// them the cluster's Services.
const clientsPlugin = "pocketkube_clients"

// clients is clientsPlugin's handler.
type clients struct {
	Next plugin.Handler
	nets []netip.Prefix
	self *localAddrs
}

func (c clients) Name() string { return clientsPlugin }

// ServeDNS passes the query on when its source is allowed, and otherwise
// answers REFUSED with the Extended DNS Error "Prohibited", as a resolver
// does for a client its access control does not allow (RFC 8914 4.19).
func (c clients) ServeDNS(ctx context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
	if c.allowed(remoteAddr(w.RemoteAddr())) {
		return plugin.NextOrFailure(c.Name(), c.Next, ctx, w, r)
	}
	m := new(dns.Msg).SetRcode(r, dns.RcodeRefused)
	if r.IsEdns0() != nil {
		m.SetEdns0(dns.DefaultMsgSize, false)
		m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_EDE{InfoCode: dns.ExtendedErrorCodeProhibited})
	}
	_ = w.WriteMsg(m)
	return dns.RcodeSuccess, nil
}

func (c clients) allowed(a netip.Addr) bool {
	if !a.IsValid() {
		return false
	}
	for _, n := range c.nets {
		if n.Contains(a) {
			return true
		}
	}
	return a.IsLoopback() || c.self.has(a)
}

// remoteAddr is the query's source address; IPv4 as IPv4 even on an
// IPv6 socket.
func remoteAddr(a net.Addr) netip.Addr {
	switch a := a.(type) {
	case *net.UDPAddr:
		return a.AddrPort().Addr().Unmap()
	case *net.TCPAddr:
		return a.AddrPort().Addr().Unmap()
	}
	return netip.Addr{}
}

// localAddrs is the set of this machine's addresses: a query from one of
// them comes from the node itself (a hostNetwork pod, or a process of the
// host asking the kube-dns Service). Addresses come and go (DHCP, new
// links), so an address not in the set rereads the machine's addresses,
// at most once a second so that a flood of foreign queries costs nothing.
type localAddrs struct {
	list func() ([]net.Addr, error) // net.InterfaceAddrs; a field for tests
	now  func() time.Time

	mu   sync.Mutex
	set  map[netip.Addr]bool
	read time.Time // when set was read; zero before the first read
}

func newLocalAddrs() *localAddrs {
	return &localAddrs{list: net.InterfaceAddrs, now: time.Now}
}

func (l *localAddrs) has(a netip.Addr) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.set[a] {
		return true
	}
	if now := l.now(); l.read.IsZero() || now.Sub(l.read) >= time.Second {
		l.read = now
		addrs, err := l.list()
		if err != nil {
			return false
		}
		l.set = map[netip.Addr]bool{}
		for _, addr := range addrs {
			if n, ok := addr.(*net.IPNet); ok {
				if ip, ok := netip.AddrFromSlice(n.IP); ok {
					l.set[ip.Unmap()] = true
				}
			}
		}
	}
	return l.set[a]
}

// setupClients parses "pocketkube_clients [CIDR...]" and adds the handler.
func setupClients(c *caddy.Controller) error {
	var nets []netip.Prefix
	for c.Next() {
		for _, arg := range c.RemainingArgs() {
			p, err := netip.ParsePrefix(arg)
			if err != nil {
				return c.Errf("%s: %v", clientsPlugin, err)
			}
			nets = append(nets, p.Masked())
		}
	}
	self := newLocalAddrs()
	dnsserver.GetConfig(c).AddPlugin(func(next plugin.Handler) plugin.Handler {
		return clients{Next: next, nets: nets, self: self}
	})
	return nil
}

// clientsLine is the Corefile line of clientsPlugin for nets.
func clientsLine(nets []netip.Prefix) string {
	s := clientsPlugin
	for _, n := range nets {
		s += fmt.Sprintf(" %s", n.Masked())
	}
	return s
}
