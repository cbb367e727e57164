package kubeletapi

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/httpstream"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/transport/spdy"
)

// echoServer is a TCP echo server on loopback, standing in for the pod's
// port.
func echoServer(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	return l.Addr().String()
}

// TestPortForward forwards a local port through /portForward with
// client-go's port forwarder over SPDY and over SPDY tunnelled in
// WebSocket (kubectl's default), to a real TCP echo server behind the
// provider.
func TestPortForward(t *testing.T) {
	p := &fakeProvider{pods: []*v1.Pod{testPod()}, echo: echoServer(t)}
	env := newTestEnv(t, p)
	dialers := map[string]func(cfg *rest.Config, u string) (httpstream.Dialer, error){
		"spdy": func(cfg *rest.Config, u string) (httpstream.Dialer, error) {
			rt, upgrader, err := spdy.RoundTripperFor(cfg)
			if err != nil {
				return nil, err
			}
			return spdy.NewDialer(upgrader, &http.Client{Transport: rt}, http.MethodPost, mustURL(t, u)), nil
		},
		"websocket-tunnel": func(cfg *rest.Config, u string) (httpstream.Dialer, error) {
			return portforward.NewSPDYOverWebsocketDialer(mustURL(t, u), cfg)
		},
	}
	for _, name := range []string{"spdy", "websocket-tunnel"} {
		for _, path := range []string{"/portForward/default/web", "/portForward/default/web/uid-1"} {
			t.Run(name+path, func(t *testing.T) {
				d, err := dialers[name](env.apiServer(), env.url+path)
				if err != nil {
					t.Fatal(err)
				}
				stop, ready := make(chan struct{}), make(chan struct{})
				fw, err := portforward.NewOnAddresses(d, []string{"127.0.0.1"}, []string{"0:8080"}, stop, ready, io.Discard, io.Discard)
				if err != nil {
					t.Fatal(err)
				}
				errCh := make(chan error, 1)
				go func() { errCh <- fw.ForwardPorts() }()
				t.Cleanup(func() {
					close(stop)
					if err := <-errCh; err != nil {
						t.Errorf("forward ports: %v", err)
					}
				})
				select {
				case <-ready:
				case err := <-errCh:
					t.Fatalf("forward ports: %v", err)
				}
				ports, err := fw.GetPorts()
				if err != nil {
					t.Fatal(err)
				}
				// Two connections in turn: each is a new stream pair.
				for i := range 2 {
					c, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(int(ports[0].Local))))
					if err != nil {
						t.Fatal(err)
					}
					msg := "ping " + strconv.Itoa(i) + "\n"
					if _, err := io.WriteString(c, msg); err != nil {
						t.Fatal(err)
					}
					got, err := bufio.NewReader(c).ReadString('\n')
					if err != nil {
						t.Fatal(err)
					}
					if got != msg {
						t.Errorf("echo = %q, want %q", got, msg)
					}
					_ = c.Close()
				}
				p.mu.Lock()
				defer p.mu.Unlock()
				if len(p.forwards) == 0 || slices.ContainsFunc(p.forwards, func(port int32) bool { return port != 8080 }) {
					t.Errorf("provider forwarded ports %v, want 8080", p.forwards)
				}
			})
		}
	}
}
