package prober

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/klog/v2/ktesting"
)

func TestRunHandler(t *testing.T) {
	s := newStatusServer(t)
	host, port := s.hostPort(t)
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := closed.Addr().String()
	closed.Close()
	_, closedPort := hostPort(t, closedAddr)

	pod := testPod()
	c := &v1.Container{Name: "app", Ports: []v1.ContainerPort{{Name: "web", ContainerPort: port.IntVal}}}
	tcp := &v1.LifecycleHandler{TCPSocket: &v1.TCPSocketAction{Port: intstr.FromInt32(80)}}
	tests := []struct {
		name    string
		h       *v1.LifecycleHandler
		podIP   string
		cancel  bool // run with a cancelled context
		wantMsg string
		wantUA  string
	}{
		{name: "exec success", h: &v1.LifecycleHandler{Exec: &v1.ExecAction{Command: []string{"true"}}}},
		{
			name:    "exec failure",
			h:       &v1.LifecycleHandler{Exec: &v1.ExecAction{Command: []string{"sh", "-c", "echo boom; exit 2"}}},
			wantMsg: `Exec lifecycle hook ([sh -c echo boom; exit 2]) for Container "app" in Pod "web_default(uid-1)" failed - error: command 'sh -c echo boom; exit 2' exited with 2: boom` + "\n" + `, message: "boom\n"`,
		},
		{
			name:   "httpGet to a named port",
			h:      &v1.LifecycleHandler{HTTPGet: &v1.HTTPGetAction{Path: "/hook", Port: intstr.FromString("web")}},
			podIP:  host,
			wantUA: "kube-lifecycle/1.37",
		},
		{
			name:    "httpGet connection refused",
			h:       &v1.LifecycleHandler{HTTPGet: &v1.HTTPGetAction{Path: "/hook", Host: "127.0.0.1", Port: intstr.FromInt32(int32(closedPort))}},
			wantMsg: fmt.Sprintf(`HTTP lifecycle hook (/hook) for Container "app" in Pod "web_default(uid-1)" failed - error: Get "http://%s/hook": dial tcp %s: connect: connection refused`, closedAddr, closedAddr),
		},
		{name: "sleep", h: &v1.LifecycleHandler{Sleep: &v1.SleepAction{Seconds: 0}}},
		{
			name:    "sleep cut short",
			h:       &v1.LifecycleHandler{Sleep: &v1.SleepAction{Seconds: 30}},
			cancel:  true,
			wantMsg: `Sleep lifecycle hook (30) for Container "app" in Pod "web_default(uid-1)" failed - error: container terminated before sleep hook finished`,
		},
		{
			name:    "tcpSocket is not supported",
			h:       tcp,
			wantMsg: fmt.Sprintf("Cannot run handler: invalid handler: %v", tcp),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, ctx := ktesting.NewTestContext(t)
			if tt.cancel {
				var cancel context.CancelFunc
				ctx, cancel = context.WithCancel(ctx)
				cancel()
			}
			ex := newFakeExec()
			ex.codes["sh -c echo boom; exit 2"] = 2
			ex.out["sh -c echo boom; exit 2"] = "boom\n"
			msg, err := RunHandler(ctx, ex, pod, c, tt.podIP, "cid", tt.h)
			if msg != tt.wantMsg {
				t.Errorf("message:\n got %q\nwant %q", msg, tt.wantMsg)
			}
			if (err != nil) != (tt.wantMsg != "") {
				t.Errorf("err = %v, want an error: %v", err, tt.wantMsg != "")
			}
			if tt.wantUA != "" {
				if ua := s.userAgent.Load(); ua != tt.wantUA {
					t.Errorf("User-Agent = %q, want %q", ua, tt.wantUA)
				}
				if path := s.path.Load(); path != "/hook" {
					t.Errorf("path = %q, want /hook", path)
				}
			}
		})
	}
	if !strings.HasPrefix(fmt.Sprintf("%v", tcp), "&") {
		t.Logf("tcpSocket handler prints as %v", tcp)
	}
}

func BenchmarkHTTPProbe(b *testing.B) {
	srv := http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go func() { _ = srv.Serve(l) }()
	b.Cleanup(func() { srv.Close() })
	host, p, _ := net.SplitHostPort(l.Addr().String())
	var port int
	fmt.Sscan(p, &port)
	pr := newProbers()
	probe := withDefaults(&v1.Probe{ProbeHandler: v1.ProbeHandler{HTTPGet: &v1.HTTPGetAction{Port: intstr.FromInt32(int32(port))}}})
	tg := target{pod: testPod(), container: &v1.Container{Name: "app"}, podIP: host}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		res, out, err := pr.runProbe(ctx, nil, probe, tg)
		if err != nil || res != "success" {
			b.Fatalf("probe: %v %q %v", res, out, err)
		}
	}
}

// As kubelet's insecureContainerLifecycleHTTPClient: an https hook reaches
// a pod whose certificate nothing can verify (upstream's NodeConformance
// spec "should execute prestop https hook properly" serves agnhost's
// self-signed one).
func TestRunHandlerHTTPSNotVerified(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewTLSServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hits.Add(1) }))
	t.Cleanup(srv.Close)
	host, port := hostPort(t, srv.Listener.Addr().String())
	_, ctx := ktesting.NewTestContext(t)
	h := &v1.LifecycleHandler{HTTPGet: &v1.HTTPGetAction{Scheme: v1.URISchemeHTTPS, Path: "/hook", Port: intstr.FromInt32(int32(port))}}
	if msg, err := RunHandler(ctx, newFakeExec(), testPod(), &v1.Container{Name: "app"}, host, "cid", h); err != nil {
		t.Fatalf("https hook: %v: %s", err, msg)
	}
	if hits.Load() != 1 {
		t.Errorf("server got %d requests, want 1", hits.Load())
	}
}
