package framework

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
)

// ListenAddress creates an address of this machine that pods can route
// to, unlike 127.0.0.1 (pods reach the API server at its --listen
// address, the kubernetes Service's endpoint), so that clusters need not
// bind 0.0.0.0. It returns the address and how to remove it.
//
// The address sits on one end of a veth pair (not every kernel has the
// dummy driver). The link's name carries this process's pid and the
// address is one that no interface has, so two runs on one machine each
// get their own and never delete each other's.
func ListenAddress() (string, func(), error) {
	pid := os.Getpid()
	link := fmt.Sprintf("pk%d", pid%10000000) // IFNAMSIZ: 15 bytes with "p" below
	addr, err := unusedAddress(pid)
	if err != nil {
		return "", nil, err
	}
	remove := func() { exec.Command("ip", "link", "del", link).Run() }
	for _, args := range [][]string{
		{"link", "add", link, "type", "veth", "peer", "name", link + "p"},
		{"addr", "add", addr + "/32", "dev", link},
		{"link", "set", link + "p", "up"},
		{"link", "set", link, "up"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			remove()
			return "", nil, fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, out)
		}
	}
	return addr, remove, nil
}

// unusedAddress picks an address of 192.168.222.0/24 that no interface of
// the machine has, starting from one derived from seed.
func unusedAddress(seed int) (string, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return "", fmt.Errorf("list interface addresses: %w", err)
	}
	taken := map[string]bool{}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok {
			taken[ipn.IP.String()] = true
		}
	}
	for i := range 254 {
		ip := fmt.Sprintf("192.168.222.%d", 1+(seed+i)%254)
		if !taken[ip] {
			return ip, nil
		}
	}
	return "", fmt.Errorf("no unused address in 192.168.222.0/24")
}
