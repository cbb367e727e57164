package network

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/go-logr/logr"
	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"k8s.io/klog/v2"
	"k8s.io/klog/v2/ktesting"
)

// requireNode skips tests that need root, the CNI plugins and iptables.
func requireNode(tb testing.TB) {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip("needs root to create network namespaces and run CNI plugins")
	}
	for _, p := range []string{"bridge", "host-local", "portmap"} {
		if _, err := invoke.FindInPath(p, []string{"/usr/lib/cni", "/opt/cni/bin"}); err != nil {
			tb.Skipf("CNI plugin %s not installed (Debian: containernetworking-plugins): %v", p, err)
		}
	}
	for _, bin := range []string{"iptables", "ip"} {
		if _, err := exec.LookPath(bin); err != nil {
			tb.Skipf("%s not installed: the bridge and portmap plugins need it", bin)
		}
	}
}

// newTestManager returns a Manager on its own bridge and CIDR, and removes
// every pod network, the bridge and the state dir when the test ends.
func newTestManager(tb testing.TB, bridge, cidr string) (*Manager, context.Context) {
	tb.Helper()
	requireNode(tb)
	stateDir := tb.TempDir()
	m, err := New(tb.Context(), Config{StateDir: stateDir, PodCIDR: cidr, Bridge: bridge})
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	_, ctx := ktesting.NewTestContext(tb)
	tb.Cleanup(func() { cleanupManager(tb, m, bridge) })
	return m, ctx
}

func cleanupManager(tb testing.TB, m *Manager, bridge string) {
	ctx := context.Background()
	uids, err := m.List(ctx)
	if err != nil {
		tb.Errorf("cleanup: List: %v", err)
	}
	for _, uid := range uids {
		if err := m.Teardown(ctx, uid); err != nil {
			tb.Errorf("cleanup: Teardown %s: %v", uid, err)
			// Never leave a mount behind, even when CNI DEL failed.
			if err := removeNetNS(m.NetNSPath(uid)); err != nil {
				tb.Errorf("cleanup: %v", err)
			}
		}
	}
	if err := m.Close(); err != nil {
		tb.Errorf("cleanup: Close: %v", err)
	}
	if _, err := net.InterfaceByName(bridge); err == nil {
		if out, err := exec.Command("ip", "link", "del", bridge).CombinedOutput(); err != nil {
			tb.Errorf("cleanup: delete bridge %s: %v: %s", bridge, err, out)
		}
	}
}

// inNetNS runs f on a thread inside the network namespace at path.
func inNetNS(t *testing.T, path string, f func() error) {
	t.Helper()
	if err := ns.WithNetNSPath(path, func(ns.NetNS) error { return f() }); err != nil {
		t.Fatal(err)
	}
}

// listenIn starts a TCP echo-once server in the namespace at path, on addr;
// it answers each connection with "hello from <name>".
func listenIn(t *testing.T, path, addr, name string) *net.TCPAddr {
	t.Helper()
	var ln net.Listener
	inNetNS(t, path, func() error {
		var err error
		ln, err = net.Listen("tcp4", addr)
		return err
	})
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			fmt.Fprintf(c, "hello from %s", name)
			c.Close()
		}
	}()
	return ln.Addr().(*net.TCPAddr)
}

func dialRead(addr string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	b, err := io.ReadAll(c)
	return string(b), err
}

func ping(dst net.IP) error {
	c, err := icmp.ListenPacket("ip4:icmp", "0.0.0.0")
	if err != nil {
		return err
	}
	defer c.Close()
	msg := icmp.Message{Type: ipv4.ICMPTypeEcho, Body: &icmp.Echo{ID: os.Getpid() & 0xffff, Seq: 1, Data: []byte("pocketkube")}}
	b, err := msg.Marshal(nil)
	if err != nil {
		return err
	}
	if _, err := c.WriteTo(b, &net.IPAddr{IP: dst}); err != nil {
		return err
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 1500)
	for {
		n, peer, err := c.ReadFrom(buf)
		if err != nil {
			return fmt.Errorf("ping %s: %w", dst, err)
		}
		rm, err := icmp.ParseMessage(1, buf[:n])
		if err == nil && rm.Type == ipv4.ICMPTypeEchoReply && peer.(*net.IPAddr).IP.Equal(dst) {
			return nil
		}
	}
}

func TestPodToPod(t *testing.T) {
	m, ctx := newTestManager(t, "pktest0", "10.250.0.0/24")
	_, cidr, _ := net.ParseCIDR("10.250.0.0/24")

	a, err := m.Setup(ctx, Pod{Namespace: "default", Name: "a", UID: "uid-a"})
	if err != nil {
		t.Fatalf("Setup a: %v", err)
	}
	b, err := m.Setup(ctx, Pod{Namespace: "default", Name: "b", UID: "uid-b"})
	if err != nil {
		t.Fatalf("Setup b: %v", err)
	}
	for _, sb := range []*Sandbox{a, b} {
		if len(sb.IPs) != 1 || !cidr.Contains(sb.IPs[0]) {
			t.Fatalf("sandbox IPs = %v, want one IP in %s", sb.IPs, cidr)
		}
		if !cidr.Contains(sb.Gateway) {
			t.Errorf("gateway %v not in %s", sb.Gateway, cidr)
		}
		if sb.HostInterface == "" {
			t.Errorf("sandbox %+v has no host interface", sb)
		}
	}
	if a.IPs[0].Equal(b.IPs[0]) {
		t.Fatalf("pods share IP %s", a.IPs[0])
	}

	bAddr := listenIn(t, b.NetNS, net.JoinHostPort(b.IPs[0].String(), "0"), "b")
	loAddr := listenIn(t, a.NetNS, "127.0.0.1:0", "a-lo")
	hostLn, err := net.Listen("tcp4", net.JoinHostPort(a.Gateway.String(), "0"))
	if err != nil {
		t.Fatalf("listen on bridge IP: %v", err)
	}
	defer hostLn.Close()
	go func() {
		for {
			c, err := hostLn.Accept()
			if err != nil {
				return
			}
			io.WriteString(c, "hello from host")
			c.Close()
		}
	}()

	tests := []struct {
		name string
		addr string
		want string
	}{
		{name: "pod B over the bridge", addr: bAddr.String(), want: "hello from b"},
		{name: "host bridge IP", addr: hostLn.Addr().String(), want: "hello from host"},
		{name: "loopback in pod", addr: loAddr.String(), want: "hello from a-lo"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inNetNS(t, a.NetNS, func() error {
				got, err := dialRead(tt.addr)
				if err != nil {
					return err
				}
				if got != tt.want {
					return fmt.Errorf("got %q, want %q", got, tt.want)
				}
				return nil
			})
		})
	}
	for _, dst := range []net.IP{b.IPs[0], a.Gateway, net.IPv4(127, 0, 0, 1)} {
		t.Run("ping "+dst.String(), func(t *testing.T) {
			inNetNS(t, a.NetNS, func() error { return ping(dst) })
		})
	}
}

func TestHostPort(t *testing.T) {
	m, ctx := newTestManager(t, "pktest0", "10.250.0.0/24")
	const hostPort = 38080
	sb, err := m.Setup(ctx, Pod{Namespace: "default", Name: "web", UID: "uid-web",
		Ports: []PortMapping{{HostPort: hostPort, ContainerPort: 8080, Protocol: "TCP"}}})
	if err != nil {
		t.Fatalf("Setup: %v", err)
	}
	listenIn(t, sb.NetNS, ":8080", "web")
	other, err := m.Setup(ctx, Pod{Namespace: "default", Name: "client", UID: "uid-client"})
	if err != nil {
		t.Fatalf("Setup client: %v", err)
	}
	// Locally generated traffic to a local, non-loopback address goes
	// through portmap's OUTPUT DNAT; 127.0.0.1 would need route_localnet.
	addr := net.JoinHostPort(sb.Gateway.String(), fmt.Sprint(hostPort))
	tests := []struct {
		name  string
		netns string // empty: the host
	}{
		{name: "from the host"},
		{name: "from another pod", netns: other.NetNS},
		{name: "from the pod itself (hairpin)", netns: sb.NetNS},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got string
			dial := func() (err error) { got, err = dialRead(addr); return err }
			if tt.netns != "" {
				inNetNS(t, tt.netns, dial)
			} else if err := dial(); err != nil {
				t.Fatalf("connect to hostPort %s: %v", addr, err)
			}
			if got != "hello from web" {
				t.Fatalf("hostPort answered %q", got)
			}
		})
	}

	if err := m.Teardown(ctx, "uid-web"); err != nil {
		t.Fatalf("Teardown: %v", err)
	}
	out, err := exec.Command("iptables-save", "-t", "nat").CombinedOutput()
	if err != nil {
		t.Fatalf("iptables-save: %v: %s", err, out)
	}
	if bytes.Contains(out, []byte(fmt.Sprint(hostPort))) {
		t.Errorf("hostPort %d still in nat table after Teardown:\n%s", hostPort, out)
	}
}

func TestIdempotence(t *testing.T) {
	m, ctx := newTestManager(t, "pktest0", "10.250.0.0/24")
	pod := Pod{Namespace: "default", Name: "idem", UID: "uid-idem",
		Ports: []PortMapping{{HostPort: 38081, ContainerPort: 80, Protocol: "UDP"}}}
	first, err := m.Setup(ctx, pod)
	if err != nil {
		t.Fatalf("Setup: %v", err)
	}
	second, err := m.Setup(ctx, pod)
	if err != nil {
		t.Fatalf("second Setup: %v", err)
	}
	if !first.IPs[0].Equal(second.IPs[0]) || first.NetNS != second.NetNS {
		t.Fatalf("second Setup = %+v, want %+v", second, first)
	}
	st, err := m.Status(ctx, pod.UID)
	if err != nil || !st.IPs[0].Equal(first.IPs[0]) {
		t.Fatalf("Status = %+v, %v; want IP %s", st, err, first.IPs[0])
	}
	ipFile := filepath.Join(m.cfg.StateDir, "cni", "ipam", networkName, first.IPs[0].String())
	if _, err := os.Stat(ipFile); err != nil {
		t.Fatalf("host-local reservation: %v", err)
	}

	for i := range 2 {
		if err := m.Teardown(ctx, pod.UID); err != nil {
			t.Fatalf("Teardown #%d: %v", i+1, err)
		}
	}
	if _, err := os.Stat(ipFile); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("IP reservation %s still there after Teardown: %v", ipFile, err)
	}
	if _, err := os.Stat(first.NetNS); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("netns %s still there after Teardown: %v", first.NetNS, err)
	}
	if _, err := net.InterfaceByName(first.HostInterface); err == nil {
		t.Errorf("host veth %s still there after Teardown", first.HostInterface)
	}
	assertNoMasq(t, pod.UID)
	if _, err := m.Status(ctx, pod.UID); !errors.Is(err, ErrNotFound) {
		t.Errorf("Status after Teardown: %v, want ErrNotFound", err)
	}
	if uids, err := m.List(ctx); err != nil || len(uids) != 0 {
		t.Errorf("List after Teardown = %v, %v; want none", uids, err)
	}
}

// assertNoMasq fails if the pod's masquerade chain is still in the nat table.
func assertNoMasq(t *testing.T, uid string) {
	t.Helper()
	out, err := exec.Command("iptables-save", "-t", "nat").CombinedOutput()
	if err != nil {
		t.Fatalf("iptables-save: %v: %s", err, out)
	}
	if chain := ipMasqChain(networkName, uid); bytes.Contains(out, []byte(chain)) {
		t.Errorf("masquerade chain %s left after Teardown:\n%s", chain, out)
	}
}

func TestSetupUnhealthy(t *testing.T) {
	m, ctx := newTestManager(t, "pktest0", "10.250.0.0/24")
	pod := Pod{Namespace: "default", Name: "sick", UID: "uid-sick"}
	sb, err := m.Setup(ctx, pod)
	if err != nil {
		t.Fatalf("Setup: %v", err)
	}
	// Deleting the host end of the veth pair removes the pod's eth0 too.
	if out, err := exec.Command("ip", "link", "del", sb.HostInterface).CombinedOutput(); err != nil {
		t.Fatalf("delete veth: %v: %s", err, out)
	}
	if _, err := m.Setup(ctx, pod); !errors.Is(err, ErrUnhealthy) {
		t.Fatalf("Setup of a broken pod network: %v, want ErrUnhealthy", err)
	}
	if err := m.Teardown(ctx, pod.UID); err != nil {
		t.Fatalf("Teardown: %v", err)
	}
	assertNoMasq(t, pod.UID)
	again, err := m.Setup(ctx, pod)
	if err != nil {
		t.Fatalf("Setup after Teardown: %v", err)
	}
	inNetNS(t, again.NetNS, func() error { return ping(again.Gateway) })
}

func TestSetupFailureCleansUp(t *testing.T) {
	m, ctx := newTestManager(t, "pktest0", "10.250.0.0/24")
	// The bridge plugin succeeds, then portmap rejects container port 0.
	pod := Pod{Namespace: "default", Name: "bad", UID: "uid-bad",
		Ports: []PortMapping{{HostPort: 38082, ContainerPort: 0}}}
	if _, err := m.Setup(ctx, pod); err == nil {
		t.Fatal("Setup with container port 0 succeeded")
	}
	if uids, err := m.List(ctx); err != nil || len(uids) != 0 {
		t.Errorf("List after failed Setup = %v, %v; want none", uids, err)
	}
	reserved, _ := filepath.Glob(filepath.Join(m.cfg.StateDir, "cni", "ipam", networkName, "10.*"))
	if len(reserved) != 0 {
		t.Errorf("IPs still reserved after failed Setup: %v", reserved)
	}
	assertNoMasq(t, pod.UID)
	if out, err := exec.Command("ip", "-o", "link", "show", "master", "pktest0").CombinedOutput(); err != nil || len(bytes.TrimSpace(out)) != 0 {
		t.Errorf("veths left on the bridge after failed Setup: %s %v", out, err)
	}
}

func TestRecoverAfterCrash(t *testing.T) {
	m, ctx := newTestManager(t, "pktest0", "10.250.0.0/24")
	tests := []struct {
		name  string
		crash func(t *testing.T, sb *Sandbox)
	}{
		{name: "process died", crash: func(t *testing.T, sb *Sandbox) {}},
		{name: "netns unmounted", crash: func(t *testing.T, sb *Sandbox) {
			if out, err := exec.Command("umount", sb.NetNS).CombinedOutput(); err != nil {
				t.Fatalf("umount: %v: %s", err, out)
			}
		}},
		{name: "ADD never finished", crash: func(t *testing.T, sb *Sandbox) {
			// Keep the IP reservation and the veth, lose the CNI result.
			uid := filepath.Base(sb.NetNS)
			if err := os.Remove(filepath.Join(m.cfg.StateDir, "cni", "cache", "results", networkName+"-"+uid+"-eth0")); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "netns gone", crash: func(t *testing.T, sb *Sandbox) {
			if err := removeNetNS(sb.NetNS); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			uid := "uid-" + strings.ReplaceAll(tt.name, " ", "-")
			sb, err := m.Setup(ctx, Pod{Namespace: "default", Name: "crash", UID: uid})
			if err != nil {
				t.Fatalf("Setup: %v", err)
			}
			tt.crash(t, sb)

			m2, err := New(t.Context(), m.cfg)
			if err != nil {
				t.Fatalf("New after crash: %v", err)
			}
			uids, err := m2.List(ctx)
			if err != nil || len(uids) != 1 || uids[0] != uid {
				t.Fatalf("List after crash = %v, %v; want [%s]", uids, err, uid)
			}
			again, err := m2.Setup(ctx, Pod{Namespace: "default", Name: "crash", UID: uid})
			if err != nil {
				t.Fatalf("Setup after crash: %v", err)
			}
			if !isNetNS(again.NetNS) {
				t.Errorf("Setup after crash left no netns at %s", again.NetNS)
			}
			if err := m2.Teardown(ctx, uid); err != nil {
				t.Fatalf("Teardown after crash: %v", err)
			}
			assertNoMasq(t, uid)
			reserved, _ := filepath.Glob(filepath.Join(m.cfg.StateDir, "cni", "ipam", networkName, "10.*"))
			if len(reserved) != 0 {
				t.Errorf("IPs still reserved after Teardown: %v", reserved)
			}
		})
	}
}

func TestConcurrentSetup(t *testing.T) {
	m, ctx := newTestManager(t, "pktest0", "10.250.0.0/24")
	const n = 6
	ips := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			sb, err := m.Setup(ctx, Pod{Namespace: "default", Name: fmt.Sprint("p", i), UID: fmt.Sprint("uid-conc-", i)})
			if err != nil {
				t.Errorf("Setup %d: %v", i, err)
				return
			}
			ips[i] = sb.IPs[0].String()
		})
	}
	wg.Wait()
	seen := map[string]bool{}
	for _, ip := range ips {
		if ip != "" && seen[ip] {
			t.Errorf("IP %s given twice: %v", ip, ips)
		}
		seen[ip] = true
	}
	for i := range n {
		wg.Go(func() {
			if err := m.Teardown(ctx, fmt.Sprint("uid-conc-", i)); err != nil {
				t.Errorf("Teardown %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	if uids, err := m.List(ctx); err != nil || len(uids) != 0 {
		t.Errorf("List after Teardown = %v, %v", uids, err)
	}
}

func BenchmarkSetupTeardown(b *testing.B) {
	m, _ := newTestManager(b, "pktest1", "10.250.1.0/24")
	ctx := klog.NewContext(context.Background(), logr.Discard())
	pod := Pod{Namespace: "default", Name: "bench", UID: "uid-bench"}
	for b.Loop() {
		if _, err := m.Setup(ctx, pod); err != nil {
			b.Fatal(err)
		}
		if err := m.Teardown(ctx, pod.UID); err != nil {
			b.Fatal(err)
		}
	}
}

// A node registered again gets a new pod CIDR; the bridge still has the
// old gateway address, which the bridge plugin would refuse to keep beside
// the new one. New removes it, and a pod gets an address of the new CIDR.
func TestNewPodCIDRChanged(t *testing.T) {
	old, ctx := newTestManager(t, "pktest9", "10.250.9.0/24")
	if _, err := old.Setup(ctx, Pod{Namespace: "default", Name: "a", UID: "uid-old"}); err != nil {
		t.Fatalf("Setup on the old CIDR: %v", err)
	}
	if err := old.Teardown(ctx, "uid-old"); err != nil {
		t.Fatal(err)
	}
	m, err := New(ctx, Config{StateDir: t.TempDir(), PodCIDR: "10.250.10.0/24", Bridge: "pktest9"})
	if err != nil {
		t.Fatalf("New on a new CIDR: %v", err)
	}
	t.Cleanup(func() {
		for _, src := range []string{"10.250.9.0/24", "10.250.10.0/24"} {
			exec.Command("iptables", "-t", "nat", "-D", "POSTROUTING", "-s", src, "!", "-o", "pktest9", "-m", "comment", "--comment", "pocketkube: masquerade pod traffic", "-j", "MASQUERADE").Run()
		}
	})
	sb, err := m.Setup(ctx, Pod{Namespace: "default", Name: "b", UID: "uid-new"})
	if err != nil {
		t.Fatalf("Setup on the new CIDR: %v", err)
	}
	defer m.Teardown(ctx, "uid-new")
	if _, cidr, _ := net.ParseCIDR("10.250.10.0/24"); len(sb.IPs) != 1 || !cidr.Contains(sb.IPs[0]) {
		t.Errorf("pod IPs %v, want one in 10.250.10.0/24", sb.IPs)
	}
	out, err := exec.Command("ip", "-4", "-o", "addr", "show", "dev", "pktest9").CombinedOutput()
	if err != nil || strings.Contains(string(out), "10.250.9.") || !strings.Contains(string(out), "10.250.10.1/24") {
		t.Errorf("bridge addresses (%v):\n%s\nwant only the new gateway 10.250.10.1/24", err, out)
	}
	out, err = exec.Command("iptables", "-t", "nat", "-S", "POSTROUTING").CombinedOutput()
	if err != nil || strings.Contains(string(out), "-s 10.250.9.0/24 ! -o pktest9") || !strings.Contains(string(out), "-s 10.250.10.0/24 ! -o pktest9") {
		t.Errorf("nat POSTROUTING (%v):\n%s\nwant the masquerade rule of the new pod CIDR only", err, out)
	}
}

func TestStart(t *testing.T) {
	m, ctx := newTestManager(t, "pktest0", "10.250.0.0/24")
	t.Run("the namespace first, the interface at wait", func(t *testing.T) {
		pod := Pod{Namespace: "default", Name: "early", UID: "uid-early"}
		netns, wait, err := m.Start(ctx, pod)
		if err != nil {
			t.Fatalf("Start: %v", err)
		}
		// What runc does at create: join the namespace before the ADD is
		// known to be done. A container in it sees its interface appear.
		if !isNetNS(netns) {
			t.Fatalf("Start returned before %s was a network namespace", netns)
		}
		held, err := os.Open(netns)
		if err != nil {
			t.Fatal(err)
		}
		defer held.Close()
		sb, err := wait()
		if err != nil {
			t.Fatalf("wait: %v", err)
		}
		if sb.NetNS != netns || len(sb.IPs) != 1 {
			t.Errorf("sandbox %+v, want NetNS %s and one IP", sb, netns)
		}
		inNetNS(t, netns, func() error { return ping(sb.Gateway) })
		if again, err := wait(); err != nil || again != sb {
			t.Errorf("second wait = %v, %v; want the same sandbox", again, err)
		}
		// A pod set up already: CHECK in Start, wait returns at once.
		if ns2, wait2, err := m.Start(ctx, pod); err != nil || ns2 != netns {
			t.Fatalf("Start again = %s, %v", ns2, err)
		} else if sb2, err := wait2(); err != nil || !sb2.IPs[0].Equal(sb.IPs[0]) {
			t.Errorf("wait again = %+v, %v; want IP %s", sb2, err, sb.IPs[0])
		}
	})
	t.Run("a failed ADD leaves nothing", func(t *testing.T) {
		// The bridge plugin succeeds, then portmap rejects container port 0.
		pod := Pod{Namespace: "default", Name: "bad", UID: "uid-bad-start",
			Ports: []PortMapping{{HostPort: 38083, ContainerPort: 0}}}
		netns, wait, err := m.Start(ctx, pod)
		if err != nil {
			t.Fatalf("Start: %v", err)
		}
		// A created container holds the namespace: the cleanup must not
		// wait for it.
		held, err := os.Open(netns)
		if err != nil {
			t.Fatal(err)
		}
		defer held.Close()
		if _, err := wait(); err == nil {
			t.Fatal("wait of an ADD with container port 0 succeeded")
		}
		if isNetNS(netns) {
			t.Errorf("%s still mounted after the failed ADD", netns)
		}
		if uids, err := m.List(ctx); err != nil || slices.Contains(uids, pod.UID) {
			t.Errorf("List after failed ADD = %v, %v; want no %s", uids, err, pod.UID)
		}
		assertNoMasq(t, pod.UID)
	})
	t.Run("Teardown waits for the ADD", func(t *testing.T) {
		pod := Pod{Namespace: "default", Name: "short", UID: "uid-short"}
		_, wait, err := m.Start(ctx, pod)
		if err != nil {
			t.Fatalf("Start: %v", err)
		}
		if err := m.Teardown(ctx, pod.UID); err != nil {
			t.Fatalf("Teardown during the ADD: %v", err)
		}
		if _, err := wait(); err != nil {
			t.Fatalf("wait: %v", err)
		}
		if uids, err := m.List(ctx); err != nil || slices.Contains(uids, pod.UID) {
			t.Errorf("List after Teardown = %v, %v; want no %s", uids, err, pod.UID)
		}
		reserved, _ := filepath.Glob(filepath.Join(m.cfg.StateDir, "cni", "ipam", networkName, "10.*"))
		for _, r := range reserved {
			if b, _ := os.ReadFile(r); strings.HasPrefix(string(b), pod.UID) {
				t.Errorf("IP %s still reserved for %s after Teardown", filepath.Base(r), pod.UID)
			}
		}
	})
}
