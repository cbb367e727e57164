package prober

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2/ktesting"
	clocktesting "k8s.io/utils/clock/testing"
)

// fakeExec is the runtime's exec: each command's exit code comes from
// codes (by the command joined with spaces), default 0; "block" blocks
// until ctx ends.
type fakeExec struct {
	mu    sync.Mutex
	codes map[string]int
	out   map[string]string
	calls map[string]int
}

var _ Executor = (*fakeExec)(nil)

func newFakeExec() *fakeExec {
	return &fakeExec{codes: map[string]int{}, out: map[string]string{}, calls: map[string]int{}}
}

func (f *fakeExec) ExecSync(ctx context.Context, _ string, cmd []string, _ time.Duration) ([]byte, int, error) {
	key := strings.Join(cmd, " ")
	f.mu.Lock()
	f.calls[key]++
	code, out := f.codes[key], f.out[key]
	f.mu.Unlock()
	if cmd[0] == "block" {
		<-ctx.Done()
		return nil, -1, ctx.Err()
	}
	return []byte(out), code, nil
}

func (f *fakeExec) set(cmd string, code int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.codes[cmd] = code
}

func (f *fakeExec) count(cmd string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[cmd]
}

// harness is a Manager on a fake clock whose worker rounds the test waits
// for one by one, so nothing depends on timing.
type harness struct {
	t        *testing.T
	ctx      context.Context
	m        *Manager
	clock    *clocktesting.FakeClock
	exec     *fakeExec
	recorder *record.FakeRecorder
	rounds   chan string
	changes  atomic.Int32
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	ignore := goleak.IgnoreCurrent()
	_, ctx := ktesting.NewTestContext(t)
	h := &harness{
		t:        t,
		ctx:      ctx,
		clock:    clocktesting.NewFakeClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)),
		exec:     newFakeExec(),
		recorder: record.NewFakeRecorder(1000),
		rounds:   make(chan string, 100),
	}
	m, err := New(Config{
		Exec:     h.exec,
		OnChange: func(string) { h.changes.Add(1) },
		Clock:    h.clock,
		Recorder: h.recorder,
	})
	if err != nil {
		t.Fatal(err)
	}
	m.afterRound = func(c string, pt probeType) { h.rounds <- c + "/" + pt.String() }
	h.m = m
	t.Cleanup(func() {
		m.Close()
		goleak.VerifyNone(t, ignore)
	})
	return h
}

// wait waits for the next n worker rounds and returns them sorted by arrival.
func (h *harness) wait(n int) []string {
	h.t.Helper()
	var got []string
	for range n {
		select {
		case r := <-h.rounds:
			got = append(got, r)
		case <-time.After(30 * time.Second):
			h.t.Fatalf("timed out waiting for probe rounds; got %v", got)
		}
	}
	return got
}

// step advances the fake clock by d and waits for n rounds.
func (h *harness) step(d time.Duration, n int) {
	h.t.Helper()
	h.clock.Step(d)
	h.wait(n)
}

// hold makes the workers that the next Updates start wait until the
// returned function is called, so that a test can look at the results
// before any probe ran.
func (h *harness) hold() (release func()) {
	gate := make(chan struct{})
	h.m.mu.Lock()
	h.m.gate = gate
	h.m.mu.Unlock()
	return func() {
		h.m.mu.Lock()
		h.m.gate = nil
		h.m.mu.Unlock()
		close(gate)
	}
}

func (h *harness) events() []string {
	var out []string
	for {
		select {
		case e := <-h.recorder.Events:
			out = append(out, e)
		default:
			return out
		}
	}
}

func testPod(containers ...v1.Container) *v1.Pod {
	return &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default", UID: "uid-1"},
		Spec:       v1.PodSpec{Containers: containers},
	}
}

func running(h *harness, ids map[string]string) map[string]RunningContainer {
	out := map[string]RunningContainer{}
	for name, id := range ids {
		out[name] = RunningContainer{ID: id, StartedAt: h.clock.Now()}
	}
	return out
}

func execProbe(cmd ...string) *v1.Probe {
	return &v1.Probe{ProbeHandler: v1.ProbeHandler{Exec: &v1.ExecAction{Command: cmd}}, FailureThreshold: 1}
}

// statusServer is an HTTP server whose status code the test sets.
type statusServer struct {
	*httptest.Server
	code      atomic.Int32
	userAgent atomic.Value
	path      atomic.Value
}

func newStatusServer(t *testing.T) *statusServer {
	s := &statusServer{}
	s.code.Store(http.StatusOK)
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.userAgent.Store(r.UserAgent())
		s.path.Store(r.URL.Path)
		w.WriteHeader(int(s.code.Load()))
	}))
	t.Cleanup(s.Close)
	return s
}

func hostPort(t *testing.T, addr string) (string, int) {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		t.Fatal(err)
	}
	return host, p
}

func (s *statusServer) hostPort(t *testing.T) (string, intstr.IntOrString) {
	host, port := hostPort(t, s.Listener.Addr().String())
	return host, intstr.FromInt32(int32(port))
}
