package apilb

import (
	"bufio"
	"context"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/ptr"
)

// server is a TCP server on loopback that answers each line with its name
// and the line, until stopped; stop also closes its connections, as a
// killed process's are.
type server struct {
	name  string
	ln    net.Listener
	conns chan net.Conn
}

func newServer(t testing.TB, name string) *server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &server{name: name, ln: ln, conns: make(chan net.Conn, 2*MaxConns)}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.conns <- c
			go func() {
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					if _, err := c.Write([]byte(name + " " + line)); err != nil {
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(s.stop)
	return s
}

func (s *server) addr() string { return s.ln.Addr().String() }

func (s *server) stop() {
	s.ln.Close()
	for {
		select {
		case c := <-s.conns:
			c.Close()
		default:
			return
		}
	}
}

// client is a connection through the balancer.
type client struct {
	c net.Conn
	r *bufio.Reader
}

func dialLB(t *testing.T, lb *LB) *client {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(lb.URL(), "https://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &client{c: c, r: bufio.NewReader(c)}
}

// ask sends a line and returns the answer, or the error.
func (c *client) ask(line string) (string, error) {
	c.c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.c.Write([]byte(line + "\n")); err != nil {
		return "", err
	}
	answer, err := c.r.ReadString('\n')
	return strings.TrimSuffix(answer, "\n"), err
}

// A connection goes to the server the last one reached; when it stops,
// to the next, the endpoints before the fallback; connections to a
// server that leaves the endpoints are closed.
func TestLB(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a, b, c := newServer(t, "a"), newServer(t, "b"), newServer(t, "c")
	// A port nothing listens on: a server that is down.
	down := newServer(t, "down")
	down.stop()

	lb, err := New("127.0.0.1:0", a.addr(), []string{down.addr(), b.addr()})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(lb.URL(), "https://127.0.0.1:") {
		t.Errorf("URL %q, want https://127.0.0.1:PORT", lb.URL())
	}
	done := make(chan struct{})
	go func() { lb.Serve(ctx); close(done) }()

	// The fallback is where the agent joined: first.
	c1 := dialLB(t, lb)
	if got, err := c1.ask("one"); got != "a one" {
		t.Fatalf("first connection: %q %v, want a's answer", got, err)
	}
	// a stops: its connection ends, the next goes past the one that is
	// down to b, and stays there.
	a.stop()
	if got, err := c1.ask("again"); err == nil {
		t.Errorf("a connection to a stopped server answered %q", got)
	}
	c2 := dialLB(t, lb)
	if got, err := c2.ask("two"); got != "b two" {
		t.Fatalf("with a stopped: %q %v, want b's answer", got, err)
	}
	if got := lb.Servers(); got[0] != b.addr() {
		t.Errorf("servers in order %q, want b first", got)
	}
	// b leaves the endpoints (its lease expired) and c joins them: the
	// connection to b is closed, the next goes to c.
	lb.SetServers([]string{c.addr()})
	if got, err := c2.ask("after"); err == nil {
		t.Errorf("a connection to a server that left the endpoints answered %q", got)
	}
	c3 := dialLB(t, lb)
	if got, err := c3.ask("three"); got != "c three" {
		t.Fatalf("after b left: %q %v, want c's answer", got, err)
	}
	if want := []string{c.addr(), a.addr()}; !slices.Equal(lb.Servers(), want) {
		t.Errorf("servers %q, want %q (c, then the fallback)", lb.Servers(), want)
	}
	// No server answers: the connection is closed.
	c.stop()
	c4 := dialLB(t, lb)
	if got, err := c4.ask("none"); err == nil {
		t.Errorf("with every server down, a connection answered %q", got)
	}

	// The end closes the listener.
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return")
	}
	if _, err := net.Dial("tcp", strings.TrimPrefix(lb.URL(), "https://")); err == nil {
		t.Error("the listener still accepts after Serve returned")
	}
}

// MaxConns connections at once; the next is closed, and once one ends a
// new one is passed on again.
func TestLBMaxConns(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a := newServer(t, "a")
	lb, err := New("127.0.0.1:0", a.addr(), nil)
	if err != nil {
		t.Fatal(err)
	}
	go lb.Serve(ctx)
	var open []*client
	for i := range MaxConns {
		c := dialLB(t, lb)
		if _, err := c.ask("x"); err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		open = append(open, c)
	}
	extra := dialLB(t, lb)
	if got, err := extra.ask("x"); err == nil {
		t.Fatalf("connection %d of at most %d answered %q", MaxConns+1, MaxConns, got)
	}
	open[0].c.Close()
	var got string
	for range 50 { // the end of the first reaches the balancer soon
		if got, err = dialLB(t, lb).ask("y"); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got != "a y" {
		t.Errorf("after one of %d ended, a new connection: %q %v", MaxConns, got, err)
	}
}

// Keep takes the ready https endpoints of the `kubernetes` slices, saves
// them, and keeps the servers it had when none is ready.
func TestKeep(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	slice := func(name string, port int32, eps ...discoveryv1.Endpoint) *discoveryv1.EndpointSlice {
		return &discoveryv1.EndpointSlice{
			ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name,
				Labels: map[string]string{discoveryv1.LabelServiceName: "kubernetes"}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("https"), Port: ptr.To(port)}},
			Endpoints:   eps,
		}
	}
	ep := func(addr string, ready bool) discoveryv1.Endpoint {
		return discoveryv1.Endpoint{Addresses: []string{addr}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(ready)}}
	}
	other := slice("other", 443, ep("192.0.2.9", true))
	other.Labels[discoveryv1.LabelServiceName] = "other"
	client := fake.NewClientset(slice("kubernetes", 6443, ep("192.0.2.2", true), ep("192.0.2.1", true), ep("192.0.2.3", false)), other)

	file := filepath.Join(t.TempDir(), "apiservers")
	lb, err := New("127.0.0.1:0", "192.0.2.1:6443", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer lb.ln.Close()
	done := make(chan error, 1)
	go func() { done <- Keep(ctx, client, lb, file) }()

	wait := func(want []string) {
		t.Helper()
		for ctx.Err() == nil {
			if slices.Equal(Saved(file), want) && slices.Equal(lb.Servers(), append([]string{"192.0.2.1:6443"}, slices.DeleteFunc(slices.Clone(want), func(s string) bool { return s == "192.0.2.1:6443" })...)) {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Fatalf("saved %q, balancer %q; want %q", Saved(file), lb.Servers(), want)
	}
	wait([]string{"192.0.2.1:6443", "192.0.2.2:6443"})

	// A server stops: its endpoint goes.
	if _, err := client.DiscoveryV1().EndpointSlices("default").Update(ctx, slice("kubernetes", 6443, ep("192.0.2.1", true)), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	wait([]string{"192.0.2.1:6443"})
	// None ready: the balancer keeps what it had.
	if _, err := client.DiscoveryV1().EndpointSlices("default").Update(ctx, slice("kubernetes", 6443), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	wait([]string{"192.0.2.1:6443"})

	cancel()
	if err := <-done; err != nil {
		t.Errorf("Keep: %v", err)
	}
}

func TestSaved(t *testing.T) {
	file := filepath.Join(t.TempDir(), "apiservers")
	if got := Saved(file); got != nil {
		t.Errorf("no file: %q", got)
	}
	if err := os.WriteFile(file, []byte("192.0.2.1:6443\nnot a server\n[2001:db8::1]:6443\n\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, want := Saved(file), []string{"192.0.2.1:6443", "[2001:db8::1]:6443"}; !slices.Equal(got, want) {
		t.Errorf("Saved: %q, want %q", got, want)
	}
}

// BenchmarkRoundTrip is one line's round trip on a kept connection to a
// loopback server, directly and through the balancer: what the balancer
// adds to each request of the node's clients (HTTP/2 keeps their
// connections).
func BenchmarkRoundTrip(b *testing.B) {
	srv := newServer(b, "a")
	lb, err := New("127.0.0.1:0", srv.addr(), nil)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go lb.Serve(ctx)
	for _, tc := range []struct{ name, addr string }{
		{"direct", srv.addr()},
		{"balancer", strings.TrimPrefix(lb.URL(), "https://")},
	} {
		b.Run(tc.name, func(b *testing.B) {
			c, err := net.Dial("tcp", tc.addr)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			cl := &client{c: c, r: bufio.NewReader(c)}
			for b.Loop() {
				if _, err := cl.ask("ping"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
