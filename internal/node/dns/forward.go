package dns

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"

	mdns "github.com/miekg/dns"
)

// ResolvConfUpstreams returns the nameservers of a resolv.conf file as
// "ip:53" addresses, or 127.0.0.1:53 and [::1]:53 when it lists none (the
// C library's and Go's default). Loopback nameservers are kept: see the
// package documentation.
func ResolvConfUpstreams(path string) ([]string, error) {
	cc, err := mdns.ClientConfigFromFile(path)
	if err != nil {
		return nil, fmt.Errorf("read resolv.conf %s: %w", path, err)
	}
	if len(cc.Servers) == 0 {
		return []string{"127.0.0.1:53", "[::1]:53"}, nil
	}
	out := make([]string, 0, len(cc.Servers))
	for _, s := range cc.Servers {
		out = append(out, net.JoinHostPort(s, cc.Port))
	}
	return out, nil
}

// normalizeUpstreams checks the upstream addresses, adds port 53 where it is
// missing and drops self, the server's own address, which would loop.
func normalizeUpstreams(ups []string, self string) ([]string, error) {
	selfAP, _ := netip.ParseAddrPort(self)
	var out []string
	for _, u := range ups {
		ap, err := netip.ParseAddrPort(u)
		if err != nil {
			ip, err2 := netip.ParseAddr(u)
			if err2 != nil {
				return nil, fmt.Errorf("parse upstream %q: %w", u, err)
			}
			ap = netip.AddrPortFrom(ip, 53)
		}
		if ap == selfAP {
			continue
		}
		out = append(out, ap.String())
	}
	return out, nil
}

// errNoUpstream is returned by forward when there is nothing to ask.
var errNoUpstream = errors.New("no upstream resolvers")

// forward asks the upstreams in order and returns the first useful reply,
// with r's ID. It asks over UDP and again over TCP when the reply is
// truncated. A SERVFAIL or REFUSED reply moves on to the next upstream and is
// returned only when no upstream does better.
func (s *Server) forward(ctx context.Context, r *mdns.Msg) (*mdns.Msg, error) {
	if len(s.upstreams) == 0 {
		return nil, errNoUpstream
	}
	q := r.Copy()
	// A fresh random ID per upstream query, so that a client's predictable
	// IDs do not make the upstream replies easier to spoof.
	q.Id = mdns.Id()
	bufSize := uint16(mdns.MinMsgSize)
	if opt := q.IsEdns0(); opt != nil && opt.UDPSize() > bufSize {
		bufSize = opt.UDPSize()
	}
	udp := &mdns.Client{Net: "udp", Timeout: s.timeout, UDPSize: bufSize}
	tcp := &mdns.Client{Net: "tcp", Timeout: s.timeout}

	var (
		errs     []error
		fallback *mdns.Msg
	)
	for _, up := range s.upstreams {
		resp, err := exchange(ctx, udp, q, up)
		if err == nil && resp.Truncated {
			resp, err = exchange(ctx, tcp, q, up)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("ask %s: %w", up, err))
			continue
		}
		resp.Id = r.Id
		if resp.Rcode == mdns.RcodeServerFailure || resp.Rcode == mdns.RcodeRefused {
			if fallback == nil {
				fallback = resp
			}
			continue
		}
		return resp, nil
	}
	if fallback != nil {
		return fallback, nil
	}
	return nil, errors.Join(errs...)
}

func exchange(ctx context.Context, c *mdns.Client, q *mdns.Msg, addr string) (*mdns.Msg, error) {
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	resp, _, err := c.ExchangeContext(ctx, q, addr)
	if err != nil {
		return nil, err
	}
	if resp.Id != q.Id {
		return nil, mdns.ErrId
	}
	return resp, nil
}
