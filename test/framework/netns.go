package framework

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// NetNS is a network namespace a cluster runs in (ClusterConfig.NetNS),
// joined to the host by a veth pair on a /30 of its own, with a default
// route via the host's end. The host reaches the cluster at Addr; nothing
// routes the namespace's pod addresses from the host.
type NetNS struct {
	// Name is the namespace's name under /run/netns (`ip netns exec NAME`).
	Name string
	// HostLink and HostAddr are the host's end of the veth pair.
	HostLink, HostAddr string
	// Addr is the address of the namespace's end ("eth0").
	Addr string
	// CgroupRoot is the --cgroup-root the cluster is given: its pods'
	// cgroups are under it, apart from any other node's.
	CgroupRoot string
}

var netnsSeq atomic.Int32

// newNetNS creates a namespace, its veth pair and its addresses. Names
// carry this process's pid and a counter, so runs and clusters never
// share one.
func newNetNS() (*NetNS, error) {
	pid, n := os.Getpid(), int(netnsSeq.Add(1))
	hostAddr, addr, err := unusedSubnet(pid*7 + n)
	if err != nil {
		return nil, err
	}
	ns := &NetNS{
		Name:     fmt.Sprintf("pk-e2e-%d-%d", pid, n),
		HostLink: fmt.Sprintf("pkn%d.%d", pid%100000, n%1000), // IFNAMSIZ: at most 15 bytes
		HostAddr: hostAddr, Addr: addr,
	}
	ns.CgroupRoot = "/" + ns.Name
	for _, args := range [][]string{
		{"netns", "add", ns.Name},
		{"link", "add", ns.HostLink, "type", "veth", "peer", "name", "eth0", "netns", ns.Name},
		{"addr", "add", ns.HostAddr + "/30", "dev", ns.HostLink},
		{"link", "set", ns.HostLink, "up"},
		{"-n", ns.Name, "link", "set", "lo", "up"},
		{"-n", ns.Name, "addr", "add", ns.Addr + "/30", "dev", "eth0"},
		{"-n", ns.Name, "link", "set", "eth0", "up"},
		{"-n", ns.Name, "route", "add", "default", "via", ns.HostAddr},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			ns.remove()
			return nil, fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, out)
		}
	}
	// Nothing routes the namespace's traffic beyond this machine, so the
	// host's nameservers would time out (a pull of a :latest image then
	// waits about 35 s before it uses the imported copy); unreachable
	// routes make them fail at once, as an offline host's would.
	for _, server := range hostNameservers() {
		if out, err := exec.Command("ip", "-n", ns.Name, "route", "add", "unreachable", server+"/32").CombinedOutput(); err != nil {
			ns.remove()
			return nil, fmt.Errorf("route to nameserver %s: %w: %s", server, err, out)
		}
	}
	return ns, nil
}

// hostNameservers lists the IPv4 nameservers of the host's
// /etc/resolv.conf that are not loopback addresses.
func hostNameservers() []string {
	b, err := os.ReadFile("/etc/resolv.conf")
	if err != nil {
		return nil
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 || f[0] != "nameserver" {
			continue
		}
		if ip := net.ParseIP(f[1]); ip != nil && ip.To4() != nil && !ip.IsLoopback() {
			out = append(out, ip.String())
		}
	}
	return out
}

// unusedSubnet picks a /30 of 192.168.224.0/20 that no interface address
// of the machine falls in and returns its two usable addresses, starting
// from one derived from seed.
func unusedSubnet(seed int) (hostAddr, addr string, err error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return "", "", fmt.Errorf("list interface addresses: %w", err)
	}
	const blocks = 1024 // /30s in a /20
	for i := range blocks {
		b := (seed + i) % blocks
		base := net.IPv4(192, 168, byte(224+b/64), byte(b%64*4)).To4()
		subnet := &net.IPNet{IP: base, Mask: net.CIDRMask(30, 32)}
		taken := false
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && (subnet.Contains(ipn.IP) || ipn.Contains(base)) {
				taken = true
				break
			}
		}
		if !taken {
			return net.IPv4(base[0], base[1], base[2], base[3]+1).String(),
				net.IPv4(base[0], base[1], base[2], base[3]+2).String(), nil
		}
	}
	return "", "", errors.New("no unused /30 in 192.168.224.0/20")
}

// Path is the namespace's bind mount, which nsenter --net takes.
func (ns *NetNS) Path() string { return filepath.Join("/run/netns", ns.Name) }

// Exec runs a command in the namespace (`ip netns exec`) and returns its
// combined output.
func (ns *NetNS) Exec(args ...string) (string, error) {
	out, err := exec.Command("ip", append([]string{"netns", "exec", ns.Name}, args...)...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("ip netns exec %s %s: %w: %s", ns.Name, strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// Pids lists the processes in the namespace.
func (ns *NetNS) Pids() []string {
	out, _ := exec.Command("ip", "netns", "pids", ns.Name).Output()
	return strings.Fields(string(out))
}

// CgroupDirs lists the directories of CgroupRoot in every cgroup
// hierarchy (v1 controllers, or the unified v2 root).
func (ns *NetNS) CgroupDirs() []string {
	dirs, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup/*", ns.CgroupRoot))
	if _, err := os.Stat(filepath.Join("/sys/fs/cgroup", ns.CgroupRoot)); err == nil {
		dirs = append(dirs, filepath.Join("/sys/fs/cgroup", ns.CgroupRoot))
	}
	return dirs
}

// Leftovers lists what exists of the namespace on the host: the
// namespace, the host's link, processes in the namespace and the cgroup
// root's directories.
func (ns *NetNS) Leftovers() []string {
	var out []string
	if _, err := os.Stat(ns.Path()); err == nil {
		out = append(out, "network namespace left: "+ns.Name)
	}
	if _, err := net.InterfaceByName(ns.HostLink); err == nil {
		out = append(out, "link left: "+ns.HostLink)
	}
	for _, pid := range ns.Pids() {
		cmdline, _ := os.ReadFile(filepath.Join("/proc", pid, "cmdline"))
		out = append(out, fmt.Sprintf("process left in %s: %s %s", ns.Name, pid, strings.ReplaceAll(string(cmdline), "\x00", " ")))
	}
	for _, d := range ns.CgroupDirs() {
		out = append(out, "cgroup left: "+d)
	}
	return out
}

// remove kills what runs in the namespace or in the cgroup root, deletes
// the namespace (and with it both ends of the veth pair) and removes the
// cgroup root. It returns the processes it had to kill, and what it could
// not remove.
func (ns *NetNS) remove() (killed []string, err error) {
	var errs []error
	kill := func(pid string) {
		p, perr := strconv.Atoi(pid)
		if perr != nil || p == os.Getpid() {
			return
		}
		cmdline, _ := os.ReadFile(filepath.Join("/proc", pid, "cmdline"))
		if syscall.Kill(p, syscall.SIGKILL) == nil {
			killed = append(killed, pid+" "+strings.TrimSpace(strings.ReplaceAll(string(cmdline), "\x00", " ")))
		}
	}
	for _, pid := range ns.Pids() {
		kill(pid)
	}
	dirs := ns.CgroupDirs()
	for _, d := range dirs {
		filepath.WalkDir(d, func(path string, e os.DirEntry, err error) error {
			if err == nil && e.IsDir() {
				procs, _ := os.ReadFile(filepath.Join(path, "cgroup.procs"))
				for _, pid := range strings.Fields(string(procs)) {
					kill(pid)
				}
			}
			return nil
		})
	}
	if out, err := exec.Command("ip", "netns", "del", ns.Name).CombinedOutput(); err != nil && !strings.Contains(string(out), "No such file") {
		errs = append(errs, fmt.Errorf("ip netns del %s: %w: %s", ns.Name, err, out))
	}
	// The veth pair goes with the namespace once its last process has
	// exited; a link of an earlier run with the same name would stay.
	exec.Command("ip", "link", "del", ns.HostLink).Run()
	for _, d := range dirs {
		if err := removeCgroupDir(d); err != nil {
			errs = append(errs, err)
		}
	}
	return killed, errors.Join(errs...)
}

// removeCgroupDir removes a cgroup directory and the ones below it,
// deepest first, waiting a little for killed processes to leave.
func removeCgroupDir(dir string) error {
	var subdirs []string
	filepath.WalkDir(dir, func(path string, e os.DirEntry, err error) error {
		if err == nil && e.IsDir() {
			subdirs = append(subdirs, path)
		}
		return nil
	})
	sort.Sort(sort.Reverse(sort.StringSlice(subdirs)))
	for _, d := range subdirs {
		var err error
		for range 100 {
			if err = syscall.Rmdir(d); err == nil || errors.Is(err, syscall.ENOENT) {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if err != nil && !errors.Is(err, syscall.ENOENT) {
			return fmt.Errorf("remove cgroup %s: %w", d, err)
		}
	}
	return nil
}
