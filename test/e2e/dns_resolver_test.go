//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/sys/unix"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/pocketkube/pocketkube/test/framework"
)

// TestDNSNotOpenResolver (issue 13): the node's CoreDNS listens on the
// node's address, where anyone on the node's network reaches it. It must
// answer pods and the node itself only, not be an open resolver that also
// tells strangers the cluster's Services. The stranger here lives in a
// network namespace of its own, on another subnet, with its default
// route through this machine; it asks the DNS server's address and the
// kube-dns Service address, over UDP and TCP, and gets REFUSED or
// nothing. The node still gets answers; pods do too (TestDNSRecords).
func TestDNSNotOpenResolver(t *testing.T) {
	ctx := t.Context()
	c := shared.Client(t)
	// The server's address is the kube-dns EndpointSlice's, which
	// pocketkube creates once the cluster is up; CoreDNS then answers
	// the node once its informers have synced.
	const name = "kubernetes.default.svc.cluster.local."
	query := new(dns.Msg).SetQuestion(name, dns.TypeA)
	var server, last string
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, framework.PodTimeout, true, func(ctx context.Context) (bool, error) {
		slices, err := c.DiscoveryV1().EndpointSlices("kube-system").List(ctx, metav1.ListOptions{LabelSelector: "kubernetes.io/service-name=kube-dns"})
		if err != nil || len(slices.Items) == 0 || len(slices.Items[0].Endpoints) == 0 || len(slices.Items[0].Endpoints[0].Addresses) == 0 {
			last = fmt.Sprintf("no kube-dns EndpointSlice (%v)", err)
			return false, nil
		}
		server = slices.Items[0].Endpoints[0].Addresses[0]
		// The node itself.
		for _, network := range []string{"udp", "tcp"} {
			r, err := exchange(network, server, query, nil)
			if err != nil {
				last = fmt.Sprintf("node asks %s over %s: %v", server, network, err)
				return false, nil
			}
			if r.Rcode != dns.RcodeSuccess || len(r.Answer) == 0 {
				last = fmt.Sprintf("node asks %s over %s: %s with %d answers, want an answer", server, network, dns.RcodeToString[r.Rcode], len(r.Answer))
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		t.Fatalf("%s: %v", last, err)
	}

	// A stranger routed through this machine.
	stranger := newStranger(t)
	for _, addr := range []string{server, clusterDNSIP} {
		for _, network := range []string{"udp", "tcp"} {
			for _, q := range []*dns.Msg{query, new(dns.Msg).SetQuestion("example.com.", dns.TypeA)} {
				r, err := exchange(network, addr, q, stranger)
				if err != nil {
					t.Logf("stranger asks %s over %s for %s: no answer (%v)", addr, network, q.Question[0].Name, err)
					continue
				}
				if r.Rcode != dns.RcodeRefused || len(r.Answer) != 0 {
					t.Errorf("stranger asks %s over %s for %s: %s with answers %v, want REFUSED or no answer", addr, network, q.Question[0].Name, dns.RcodeToString[r.Rcode], r.Answer)
				}
			}
		}
	}
}

// exchange sends q to addr:53 over network, from the network namespace
// open as netns (nil: this process's own), and returns the answer.
func exchange(network, addr string, q *dns.Msg, netns *os.File) (*dns.Msg, error) {
	conn, err := dialIn(netns, network, net.JoinHostPort(addr, "53"))
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	co := &dns.Conn{Conn: conn}
	co.SetDeadline(time.Now().Add(3 * time.Second))
	if err := co.WriteMsg(q); err != nil {
		return nil, err
	}
	return co.ReadMsg()
}

// dialIn dials from netns: a socket belongs to the network namespace of
// the thread that created it.
func dialIn(netns *os.File, network, addr string) (net.Conn, error) {
	d := net.Dialer{Timeout: 3 * time.Second}
	if netns == nil {
		return d.Dial(network, addr)
	}
	type result struct {
		conn net.Conn
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		self, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			ch <- result{nil, err}
			return
		}
		defer self.Close()
		if err := unix.Setns(int(netns.Fd()), unix.CLONE_NEWNET); err != nil {
			ch <- result{nil, fmt.Errorf("enter netns: %w", err)}
			return
		}
		conn, err := d.Dial(network, addr)
		ch <- result{conn, err}
		// A thread that cannot go back ends with this goroutine.
		if unix.Setns(int(self.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
	}()
	r := <-ch
	return r.conn, r.err
}

// newStranger makes a network namespace with a veth pair to this
// machine on 198.18.x.0/30 (the benchmarking range, RFC 2544), routed
// through it, and returns it open; the test's end removes both.
func newStranger(t *testing.T) *os.File {
	t.Helper()
	pid := os.Getpid() % 100000
	ns, host, peer := fmt.Sprintf("pkdns%d", pid), fmt.Sprintf("pkdh%d", pid), fmt.Sprintf("pkdn%d", pid)
	subnet := fmt.Sprintf("198.18.%d", 4*(pid%64))
	ip := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	t.Cleanup(func() {
		exec.Command("ip", "link", "del", host).Run()
		exec.Command("ip", "netns", "del", ns).Run()
	})
	ip("netns", "add", ns)
	ip("link", "add", host, "type", "veth", "peer", "name", peer, "netns", ns)
	ip("addr", "add", subnet+".1/30", "dev", host)
	ip("link", "set", host, "up")
	ip("-n", ns, "addr", "add", subnet+".2/30", "dev", peer)
	ip("-n", ns, "link", "set", peer, "up")
	ip("-n", ns, "link", "set", "lo", "up")
	ip("-n", ns, "route", "add", "default", "via", subnet+".1")
	f, err := os.Open("/run/netns/" + ns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	// The stranger's link must be up before it asks.
	deadline := time.Now().Add(5 * time.Second)
	for {
		out, _ := exec.Command("ip", "-n", ns, "-o", "link", "show", peer).Output()
		if strings.Contains(string(out), "LOWER_UP") || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	return f
}
