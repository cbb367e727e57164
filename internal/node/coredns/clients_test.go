package coredns

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/coredns/coredns/plugin/pkg/dnstest"
	"github.com/coredns/coredns/plugin/test"
	"github.com/miekg/dns"
)

// answer is a next plugin that answers every query NOERROR.
func answer(_ context.Context, w dns.ResponseWriter, r *dns.Msg) (int, error) {
	m := new(dns.Msg).SetReply(r)
	_ = w.WriteMsg(m)
	return dns.RcodeSuccess, nil
}

func TestClients(t *testing.T) {
	host := []net.Addr{
		&net.IPNet{IP: net.ParseIP("127.0.0.1"), Mask: net.CIDRMask(8, 32)},
		&net.IPNet{IP: net.ParseIP("192.168.1.10").To4(), Mask: net.CIDRMask(24, 32)},
		&net.IPNet{IP: net.ParseIP("2001:db8::10"), Mask: net.CIDRMask(64, 128)},
	}
	tests := []struct {
		name    string
		source  string
		edns    bool
		want    int
		wantEDE bool
	}{
		{name: "pod", source: "10.244.0.7", want: dns.RcodeSuccess},
		{name: "node address", source: "192.168.1.10", want: dns.RcodeSuccess},
		{name: "node IPv6 address", source: "2001:db8::10", want: dns.RcodeSuccess},
		{name: "loopback", source: "127.0.0.53", want: dns.RcodeSuccess},
		{name: "IPv4-mapped pod", source: "::ffff:10.244.1.2", want: dns.RcodeSuccess},
		{name: "neighbour on the node's network", source: "192.168.1.11", want: dns.RcodeRefused},
		{name: "neighbour with EDNS", source: "192.168.1.11", edns: true, want: dns.RcodeRefused, wantEDE: true},
		{name: "routed from afar", source: "198.51.100.7", want: dns.RcodeRefused},
		{name: "next to the pod network", source: "10.245.0.1", want: dns.RcodeRefused},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			self := newLocalAddrs()
			self.list = func() ([]net.Addr, error) { return host, nil }
			c := clients{Next: test.HandlerFunc(answer), nets: []netip.Prefix{netip.MustParsePrefix("10.244.0.0/16")}, self: self}
			r := new(dns.Msg).SetQuestion("example.com.", dns.TypeA)
			if tt.edns {
				r.SetEdns0(1232, false)
			}
			w := dnstest.NewRecorder(&test.ResponseWriter{RemoteIP: tt.source})
			if _, err := c.ServeDNS(context.Background(), w, r); err != nil {
				t.Fatal(err)
			}
			if w.Msg == nil {
				t.Fatal("no answer")
			}
			if w.Msg.Rcode != tt.want {
				t.Errorf("rcode %s, want %s", dns.RcodeToString[w.Msg.Rcode], dns.RcodeToString[tt.want])
			}
			var ede bool
			if o := w.Msg.IsEdns0(); o != nil {
				for _, opt := range o.Option {
					if e, ok := opt.(*dns.EDNS0_EDE); ok && e.InfoCode == dns.ExtendedErrorCodeProhibited {
						ede = true
					}
				}
			}
			if ede != tt.wantEDE {
				t.Errorf("EDE Prohibited %v, want %v", ede, tt.wantEDE)
			}
		})
	}
}

// TestLocalAddrsReread checks that a new address of the machine counts
// once it exists, and that foreign sources reread the addresses at most
// once a second.
func TestLocalAddrsReread(t *testing.T) {
	now := time.Unix(1000, 0)
	var reads int
	addrs := []net.Addr{&net.IPNet{IP: net.ParseIP("192.168.1.10").To4(), Mask: net.CIDRMask(24, 32)}}
	l := &localAddrs{
		now: func() time.Time { return now },
		list: func() ([]net.Addr, error) {
			reads++
			return addrs, nil
		},
	}
	newAddr, foreign := netip.MustParseAddr("192.168.2.20"), netip.MustParseAddr("198.51.100.7")
	if !l.has(netip.MustParseAddr("192.168.1.10")) {
		t.Error("node address not local")
	}
	for range 100 {
		if l.has(foreign) {
			t.Fatal("foreign address counted as local")
		}
	}
	if reads != 1 {
		t.Errorf("%d reads of the addresses within a second, want 1", reads)
	}
	addrs = append(addrs, &net.IPNet{IP: net.ParseIP("192.168.2.20").To4(), Mask: net.CIDRMask(24, 32)})
	now = now.Add(time.Second)
	if !l.has(newAddr) {
		t.Error("new address not local a second later")
	}
	l.list = func() ([]net.Addr, error) { return nil, errors.New("netlink") }
	now = now.Add(time.Second)
	if l.has(foreign) {
		t.Error("foreign address local after a failed read")
	}
}
