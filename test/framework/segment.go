package framework

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
)

// Segment is one L2 segment on the host, as machines on one LAN: a bridge
// with an address of a /24 of its own (the test owns 192.168.240.0/20),
// to which namespaces attach with a second interface, "seg0". Nodes whose
// InternalIPs are on one segment reach each other without a gateway, as
// host-gw pod routes need.
type Segment struct {
	// Bridge is the host's bridge; HostAddr its address.
	Bridge, HostAddr string

	mu   sync.Mutex
	base net.IP // the /24's network address
	next int    // the last host number given out
}

var segmentMu sync.Mutex

// NewSegment creates a bridge on an unused /24 of 192.168.240.0/20.
// Remove deletes it.
func NewSegment() (*Segment, error) {
	segmentMu.Lock()
	defer segmentMu.Unlock()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, fmt.Errorf("list interface addresses: %w", err)
	}
	pid := os.Getpid()
	for i := range 16 {
		b := (pid + i) % 16
		base := net.IPv4(192, 168, byte(240+b), 0).To4()
		subnet := &net.IPNet{IP: base, Mask: net.CIDRMask(24, 32)}
		taken := false
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && (subnet.Contains(ipn.IP) || ipn.Contains(base)) {
				taken = true
				break
			}
		}
		if taken {
			continue
		}
		s := &Segment{Bridge: fmt.Sprintf("pkseg%d.%d", pid%100000, b), base: base, next: 1}
		s.HostAddr = s.addr(1)
		for _, args := range [][]string{
			{"link", "add", s.Bridge, "type", "bridge"},
			{"addr", "add", s.HostAddr + "/24", "dev", s.Bridge},
			{"link", "set", s.Bridge, "up"},
		} {
			if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
				s.Remove()
				return nil, fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, out)
			}
		}
		// A segment is a switch: what it carries between namespaces is
		// never NATed on the way. With br_netfilter on (the host's
		// bridge-nf-call-iptables), bridged frames go through the host's
		// nat POSTROUTING, where a node running in the host's namespace
		// masquerades its pod range (10.244.0.0/24 ! -o pk0): a pod of a
		// test node in that same range then reached another node's
		// address as the bridge's.
		if out, err := exec.Command("iptables", append([]string{"-t", "nat", "-I", "POSTROUTING", "1"}, s.noNATRule()...)...).CombinedOutput(); err != nil {
			s.Remove()
			return nil, fmt.Errorf("iptables: exempt segment %s from NAT: %w: %s", s.Bridge, err, out)
		}
		return s, nil
	}
	return nil, errors.New("no unused /24 in 192.168.240.0/20")
}

func (s *Segment) addr(host int) string {
	return net.IPv4(s.base[0], s.base[1], s.base[2], byte(host)).String()
}

// Attach joins ns to the segment with a veth pair: "seg0" in ns, with the
// segment's next address, whose host end is a port of the bridge. It
// returns ns's address on the segment. The pair goes with ns.
func (s *Segment) Attach(ns *NetNS) (string, error) {
	s.mu.Lock()
	s.next++
	n := s.next
	s.mu.Unlock()
	if n > 254 {
		return "", errors.New("segment full")
	}
	addr := s.addr(n)
	hostLink := fmt.Sprintf("pks%d.%d", os.Getpid()%100000, netnsSeq.Add(1)%1000)
	for _, args := range [][]string{
		{"link", "add", hostLink, "type", "veth", "peer", "name", "seg0", "netns", ns.Name},
		{"link", "set", hostLink, "master", s.Bridge},
		{"link", "set", hostLink, "up"},
		{"-n", ns.Name, "addr", "add", addr + "/24", "dev", "seg0"},
		{"-n", ns.Name, "link", "set", "seg0", "up"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			exec.Command("ip", "link", "del", hostLink).Run()
			return "", fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, out)
		}
	}
	return addr, nil
}

// noNATRule is the host's nat POSTROUTING rule that keeps the segment's
// frames as they are.
func (s *Segment) noNATRule() []string {
	return []string{"-o", s.Bridge, "-m", "comment", "--comment", "pocketkube test segment: a switch, no NAT", "-j", "ACCEPT"}
}

// Remove deletes the bridge and its NAT exemption.
func (s *Segment) Remove() error {
	exec.Command("iptables", append([]string{"-t", "nat", "-D", "POSTROUTING"}, s.noNATRule()...)...).Run()
	if out, err := exec.Command("ip", "link", "del", s.Bridge).CombinedOutput(); err != nil && !strings.Contains(string(out), "Cannot find") {
		return fmt.Errorf("ip link del %s: %w: %s", s.Bridge, err, out)
	}
	return nil
}
