package prober

import (
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func TestNewValidates(t *testing.T) {
	if _, err := New(Config{OnChange: func(string) {}}); err == nil {
		t.Error("New without Exec: want error")
	}
	if _, err := New(Config{Exec: newFakeExec()}); err == nil {
		t.Error("New without OnChange: want error")
	}
}

// TestReadinessFollowsTarget flips each kind of probe target between
// healthy and unhealthy and checks Ready and OnChange after each period.
func TestReadinessFollowsTarget(t *testing.T) {
	tests := []struct {
		name string
		// setup returns the probe, the pod IP and a function that makes
		// the target healthy or not.
		setup func(t *testing.T, h *harness) (*v1.Probe, string, func(bool))
		check func(t *testing.T)
	}{
		{
			name: "httpGet",
			setup: func(t *testing.T, h *harness) (*v1.Probe, string, func(bool)) {
				s := newStatusServer(t)
				host, port := s.hostPort(t)
				p := &v1.Probe{ProbeHandler: v1.ProbeHandler{HTTPGet: &v1.HTTPGetAction{Path: "/healthz", Port: port}}, FailureThreshold: 1}
				t.Cleanup(func() {
					if ua := s.userAgent.Load(); ua != "kube-probe/1.37" {
						t.Errorf("User-Agent = %q, want kube-probe/1.37", ua)
					}
					if path := s.path.Load(); path != "/healthz" {
						t.Errorf("path = %q, want /healthz", path)
					}
				})
				return p, host, func(ok bool) {
					if ok {
						s.code.Store(http.StatusOK)
					} else {
						s.code.Store(http.StatusInternalServerError)
					}
				}
			},
		},
		{
			name: "tcpSocket",
			setup: func(t *testing.T, h *harness) (*v1.Probe, string, func(bool)) {
				l, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { l.Close() })
				host, port := hostPort(t, l.Addr().String())
				p := &v1.Probe{ProbeHandler: v1.ProbeHandler{TCPSocket: &v1.TCPSocketAction{Port: intstr.FromInt32(int32(port))}}, FailureThreshold: 1}
				return p, host, func(ok bool) {
					if !ok {
						l.Close()
					}
				}
			},
		},
		{
			name: "grpc with service",
			setup: func(t *testing.T, h *harness) (*v1.Probe, string, func(bool)) {
				l, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				srv := grpc.NewServer()
				hs := health.NewServer()
				healthpb.RegisterHealthServer(srv, hs)
				hs.SetServingStatus("db", healthpb.HealthCheckResponse_SERVING)
				hs.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
				go func() { _ = srv.Serve(l) }()
				t.Cleanup(srv.Stop)
				host, port := hostPort(t, l.Addr().String())
				service := "db"
				p := &v1.Probe{ProbeHandler: v1.ProbeHandler{GRPC: &v1.GRPCAction{Port: int32(port), Service: &service}}, FailureThreshold: 1}
				return p, host, func(ok bool) {
					if ok {
						hs.SetServingStatus("db", healthpb.HealthCheckResponse_SERVING)
					} else {
						hs.SetServingStatus("db", healthpb.HealthCheckResponse_NOT_SERVING)
					}
				}
			},
		},
		{
			name: "exec",
			setup: func(t *testing.T, h *harness) (*v1.Probe, string, func(bool)) {
				return execProbe("cat", "/tmp/healthy"), "", func(ok bool) {
					if ok {
						h.exec.set("cat /tmp/healthy", 0)
					} else {
						h.exec.set("cat /tmp/healthy", 1)
					}
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			p, ip, healthy := tt.setup(t, h)
			pod := testPod(v1.Container{Name: "app", ReadinessProbe: p})
			healthy(true)
			release := h.hold()
			h.m.Update(h.ctx, pod, ip, running(h, map[string]string{"app": "c1"}))
			if h.m.Ready("uid-1", "app") {
				t.Fatal("Ready before the first probe")
			}
			release()
			h.wait(1)
			if !h.m.Ready("uid-1", "app") || !h.m.Started("uid-1", "app") {
				t.Fatal("not Ready/Started after a successful probe")
			}
			healthy(false)
			h.step(10*time.Second, 1)
			if h.m.Ready("uid-1", "app") {
				t.Fatal("Ready after a failed probe")
			}
			h.step(10*time.Second, 1) // still failing: no change
			if got := h.changes.Load(); got != 2 {
				t.Errorf("OnChange called %d times, want 2", got)
			}
			if failed, _ := h.m.Liveness("uid-1", "app"); failed {
				t.Error("Liveness failed without a liveness probe")
			}
		})
	}
}

func TestThresholds(t *testing.T) {
	h := newHarness(t)
	p := execProbe("check")
	p.SuccessThreshold, p.FailureThreshold = 2, 3
	h.m.Update(h.ctx, testPod(v1.Container{Name: "app", ReadinessProbe: p}), "", running(h, map[string]string{"app": "c1"}))
	steps := []struct {
		code      int
		wantReady bool
	}{
		{0, false}, // first success: below successThreshold
		{0, true},
		{1, true},
		{1, true},
		{1, false}, // third failure in a row
		{0, false},
		{1, false}, // a failure resets the success run
		{0, false},
		{0, true},
	}
	for i, s := range steps {
		h.exec.set("check", s.code)
		if i == 0 {
			h.wait(1)
		} else {
			h.step(10*time.Second, 1)
		}
		if got := h.m.Ready("uid-1", "app"); got != s.wantReady {
			t.Fatalf("step %d (exit %d): Ready = %v, want %v", i, s.code, got, s.wantReady)
		}
	}
	if got := h.changes.Load(); got != 3 {
		t.Errorf("OnChange called %d times, want 3", got)
	}
}

// TestStartupGates checks that liveness and readiness wait for the startup
// probe, that readiness runs as soon as the container started, and that
// the startup probe stops after its result.
func TestStartupGates(t *testing.T) {
	h := newHarness(t)
	st := execProbe("start")
	st.FailureThreshold = 5
	st.PeriodSeconds = 10
	rd := execProbe("ready")
	rd.PeriodSeconds = 30
	lv := execProbe("live")
	lv.PeriodSeconds = 20
	h.exec.set("start", 1)
	pod := testPod(v1.Container{Name: "app", StartupProbe: st, ReadinessProbe: rd, LivenessProbe: lv})
	h.m.Update(h.ctx, pod, "", running(h, map[string]string{"app": "c1"}))
	h.wait(3)
	if h.exec.count("start") != 1 || h.exec.count("ready") != 0 || h.exec.count("live") != 0 {
		t.Fatalf("calls start/ready/live = %d/%d/%d, want 1/0/0", h.exec.count("start"), h.exec.count("ready"), h.exec.count("live"))
	}
	if h.m.Started("uid-1", "app") || h.m.Ready("uid-1", "app") {
		t.Fatal("Started or Ready before the startup probe passed")
	}
	h.exec.set("start", 0)
	h.step(10*time.Second, 2) // startup passes; readiness is triggered at once
	if !h.m.Started("uid-1", "app") || !h.m.Ready("uid-1", "app") {
		t.Fatal("not Started and Ready after the startup probe passed")
	}
	h.step(10*time.Second, 2) // t=20: startup is on hold, liveness probes
	if got := []int{h.exec.count("start"), h.exec.count("ready"), h.exec.count("live")}; !slices.Equal(got, []int{2, 1, 1}) {
		t.Fatalf("calls start/ready/live = %v, want [2 1 1]", got)
	}
	if got := h.changes.Load(); got != 2 { // Started, then Ready
		t.Errorf("OnChange called %d times, want 2", got)
	}
}

func TestStartupFailureKills(t *testing.T) {
	h := newHarness(t)
	st := execProbe("start")
	st.FailureThreshold = 2
	grace := int64(7)
	st.TerminationGracePeriodSeconds = &grace
	h.exec.set("start", 3)
	h.m.Update(h.ctx, testPod(v1.Container{Name: "app", StartupProbe: st}), "", running(h, map[string]string{"app": "c1"}))
	h.wait(1)
	if failed, _ := h.m.Liveness("uid-1", "app"); failed {
		t.Fatal("killed below failureThreshold")
	}
	h.step(10*time.Second, 1)
	failed, msg := h.m.Liveness("uid-1", "app")
	if want := "Container app failed startup probe, will be restarted"; !failed || msg != want {
		t.Fatalf("Liveness = %v, %q; want true, %q", failed, msg, want)
	}
	if g := h.m.TerminationGracePeriod("uid-1", "app"); g == nil || *g != 7 {
		t.Errorf("TerminationGracePeriod = %v, want 7", g)
	}
	h.step(10*time.Second, 1) // on hold until a new container
	if got := h.exec.count("start"); got != 2 {
		t.Errorf("startup probe ran %d times, want 2", got)
	}

	// The agent restarted it: the startup probe starts over.
	release := h.hold()
	h.m.Update(h.ctx, testPod(v1.Container{Name: "app", StartupProbe: st}), "", running(h, map[string]string{"app": "c2"}))
	if failed, _ := h.m.Liveness("uid-1", "app"); failed || h.m.Started("uid-1", "app") {
		t.Error("restarted container: want not failed and not started")
	}
	h.exec.set("start", 0)
	release()
	h.wait(1)
	if !h.m.Started("uid-1", "app") || !h.m.Ready("uid-1", "app") {
		t.Error("restarted container: want started and ready")
	}
}

func TestInitialDelay(t *testing.T) {
	h := newHarness(t)
	p := execProbe("check")
	p.InitialDelaySeconds = 15
	h.m.Update(h.ctx, testPod(v1.Container{Name: "app", ReadinessProbe: p}), "", running(h, map[string]string{"app": "c1"}))
	for i, want := range []int{0, 0, 1} {
		if i == 0 {
			h.wait(1)
		} else {
			h.step(10*time.Second, 1)
		}
		if got := h.exec.count("check"); got != want {
			t.Fatalf("after %ds: %d probes, want %d", i*10, got, want)
		}
	}
}

// TestLivenessRestart fails a liveness probe, then reports the restarted
// container: its results start over.
func TestLivenessRestart(t *testing.T) {
	h := newHarness(t)
	s := newStatusServer(t)
	host, port := s.hostPort(t)
	s.code.Store(http.StatusInternalServerError)
	grace := int64(5)
	lv := &v1.Probe{ProbeHandler: v1.ProbeHandler{HTTPGet: &v1.HTTPGetAction{Port: port}}, FailureThreshold: 2, TerminationGracePeriodSeconds: &grace}
	rd := execProbe("ready")
	pod := testPod(v1.Container{Name: "app", LivenessProbe: lv, ReadinessProbe: rd})
	h.m.Update(h.ctx, pod, host, running(h, map[string]string{"app": "c1"}))
	h.wait(2)
	if failed, _ := h.m.Liveness("uid-1", "app"); failed || !h.m.Ready("uid-1", "app") {
		t.Fatal("want alive and ready after one liveness failure")
	}
	h.step(10*time.Second, 2)
	failed, msg := h.m.Liveness("uid-1", "app")
	if want := "Container app failed liveness probe, will be restarted"; !failed || msg != want {
		t.Fatalf("Liveness = %v, %q; want true, %q", failed, msg, want)
	}
	if g := h.m.TerminationGracePeriod("uid-1", "app"); g == nil || *g != 5 {
		t.Errorf("TerminationGracePeriod = %v, want 5", g)
	}
	events := h.events()
	want := "Warning Unhealthy Liveness probe failed: HTTP probe failed with statuscode: 500"
	if len(events) != 2 || events[0] != want || events[1] != want {
		t.Errorf("events = %q, want twice %q", events, want)
	}

	s.code.Store(http.StatusOK)
	release := h.hold()
	h.m.Update(h.ctx, pod, host, running(h, map[string]string{"app": "c2"}))
	if failed, _ := h.m.Liveness("uid-1", "app"); failed {
		t.Error("restarted container still failed")
	}
	if h.m.Ready("uid-1", "app") {
		t.Error("restarted container Ready before its readiness probe")
	}
	release()
	h.wait(2)
	if failed, _ := h.m.Liveness("uid-1", "app"); failed || !h.m.Ready("uid-1", "app") {
		t.Error("restarted container: want alive and ready")
	}
	// ready (c1), killed, ready (c2); Update's reset calls no OnChange.
	if got := h.changes.Load(); got != 3 {
		t.Errorf("OnChange called %d times, want 3", got)
	}
}

func TestNamedPort(t *testing.T) {
	tests := []struct {
		name      string
		port      string
		wantReady bool
		wantEvent string
	}{
		{name: "found", port: "http", wantReady: true},
		{name: "missing", port: "nope", wantEvent: `Warning Unhealthy Readiness probe errored and resulted in unknown state: port "nope" not found`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			s := newStatusServer(t)
			host, port := s.hostPort(t)
			c := v1.Container{
				Name:           "app",
				Ports:          []v1.ContainerPort{{Name: "http", ContainerPort: port.IntVal}},
				ReadinessProbe: &v1.Probe{ProbeHandler: v1.ProbeHandler{HTTPGet: &v1.HTTPGetAction{Port: intstr.FromString(tt.port)}}},
			}
			h.m.Update(h.ctx, testPod(c), host, running(h, map[string]string{"app": "c1"}))
			h.wait(1)
			if got := h.m.Ready("uid-1", "app"); got != tt.wantReady {
				t.Errorf("Ready = %v, want %v", got, tt.wantReady)
			}
			events := h.events()
			if tt.wantEvent != "" && (len(events) == 0 || events[0] != tt.wantEvent) {
				t.Errorf("events = %q, want %q", events, tt.wantEvent)
			}
		})
	}
}

func TestExecTimeout(t *testing.T) {
	h := newHarness(t)
	lv := execProbe("block")
	h.m.Update(h.ctx, testPod(v1.Container{Name: "app", LivenessProbe: lv}), "", running(h, map[string]string{"app": "c1"}))
	h.wait(1)
	if failed, _ := h.m.Liveness("uid-1", "app"); !failed {
		t.Fatal("a timed out liveness probe did not fail")
	}
	want := `Warning Unhealthy Liveness probe failed: command timed out: "block" timed out after 1s`
	if events := h.events(); len(events) != 1 || events[0] != want {
		t.Errorf("events = %q, want %q", events, want)
	}
}

func TestExecExpandsEnv(t *testing.T) {
	h := newHarness(t)
	c := v1.Container{
		Name:           "app",
		Env:            []v1.EnvVar{{Name: "FILE", Value: "/ready"}},
		ReadinessProbe: execProbe("cat", "$(FILE)", "$(UNSET)"),
	}
	h.m.Update(h.ctx, testPod(c), "", running(h, map[string]string{"app": "c1"}))
	h.wait(1)
	if got := h.exec.count("cat /ready $(UNSET)"); got != 1 {
		t.Errorf("expanded command ran %d times, want 1", got)
	}
}

func TestDeletingPodIsNotKilled(t *testing.T) {
	h := newHarness(t)
	h.exec.set("live", 1)
	pod := testPod(v1.Container{Name: "app", LivenessProbe: execProbe("live")})
	now := metav1.Now()
	pod.DeletionTimestamp = &now
	h.m.Update(h.ctx, pod, "", running(h, map[string]string{"app": "c1"}))
	h.wait(1)
	if failed, _ := h.m.Liveness("uid-1", "app"); failed || h.exec.count("live") != 0 {
		t.Error("a deleting pod's liveness probe ran or failed")
	}
}

// TestStopping checks that workers end when their container goes away,
// when the pod is removed and when the manager closes (the harness's
// cleanup checks for leaked goroutines).
func TestStopping(t *testing.T) {
	h := newHarness(t)
	pod := testPod(
		v1.Container{Name: "a", ReadinessProbe: execProbe("a")},
		v1.Container{Name: "b", ReadinessProbe: execProbe("b"), LivenessProbe: execProbe("b")},
	)
	h.m.Update(h.ctx, pod, "", running(h, map[string]string{"a": "ca", "b": "cb"}))
	h.wait(3)
	if !h.m.Ready("uid-1", "a") || !h.m.Ready("uid-1", "b") {
		t.Fatal("containers not ready")
	}
	h.m.Update(h.ctx, pod, "", running(h, map[string]string{"b": "cb"})) // a exited
	if h.m.Ready("uid-1", "a") {
		t.Error("exited container still Ready")
	}
	h.m.RemovePod("uid-1")
	if h.m.Ready("uid-1", "b") || h.m.Started("uid-1", "b") {
		t.Error("removed pod still Ready/Started")
	}
	h.clock.Step(time.Minute)
	select {
	case r := <-h.rounds:
		// A worker may have been between its round and its stop.
		if !strings.HasPrefix(r, "b/") && !strings.HasPrefix(r, "a/") {
			t.Errorf("unexpected round %s", r)
		}
	default:
	}
}
