package downward

import "net"

// SortIPs returns at most one IP per family, the node's primary family
// first, as kubelet orders status.podIPs for the Downward API (its
// sortPodIPs, kubernetes#97979) and as GetNodeHostIPs orders the node's
// own. Within a family the first IP wins. IPv4-mapped IPv6 addresses count
// as IPv4 and are printed as such.
func SortIPs(ips []net.IP, primaryIPv6 bool) []string {
	var v4, v6 string
	for _, ip := range ips {
		switch {
		case ip.To4() != nil:
			if v4 == "" {
				v4 = ip.String()
			}
		case ip.To16() != nil:
			if v6 == "" {
				v6 = ip.String()
			}
		}
	}
	first, second := v4, v6
	if primaryIPv6 {
		first, second = v6, v4
	}
	var out []string
	for _, s := range []string{first, second} {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}
