package kubeletapi

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pocketkube/pocketkube/internal/golden"
)

func logProvider(t testing.TB) *fakeProvider {
	t.Helper()
	abs := func(name string) string {
		p, err := filepath.Abs(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	return &fakeProvider{
		pods: []*v1.Pod{testPod()},
		logs: map[string]string{
			"default/web/app":          abs("app.log"),
			"default/web/app/previous": abs("app-previous.log"),
		},
	}
}

// TestContainerLogs pins /containerLogs output per query parameter against
// testdata/app.log; the golden files are what kubelet returns for the same
// file (ReadLogs is kubelet's).
func TestContainerLogs(t *testing.T) {
	env := newTestEnv(t, logProvider(t))
	tests := []struct {
		name     string
		path     string
		query    string
		wantCode int
	}{
		{name: "all", query: ""},
		{name: "timestamps", query: "timestamps=true"},
		{name: "tailLines", query: "tailLines=3"},
		{name: "tailLines zero", query: "tailLines=0"},
		{name: "tail all", query: "tail=all"},
		{name: "tail legacy", query: "tail=2"},
		{name: "limitBytes", query: "limitBytes=20"},
		{name: "sinceTime", query: "sinceTime=2026-01-01T00:00:02Z"},
		{name: "sinceTime with timestamps", query: "sinceTime=2026-01-01T00:00:04Z&timestamps=true"},
		{name: "sinceSeconds", query: "sinceSeconds=10"},
		{name: "previous", query: "previous=true"},
		{name: "follow of exited container", query: "follow=true"},
		{name: "stream All", query: "stream=All"},
		{name: "stream Stdout", query: "stream=Stdout", wantCode: http.StatusBadRequest},
		{name: "negative tailLines", query: "tailLines=-1", wantCode: http.StatusUnprocessableEntity},
		{name: "zero limitBytes", query: "limitBytes=0", wantCode: http.StatusUnprocessableEntity},
		{name: "both since", query: "sinceSeconds=1&sinceTime=2026-01-01T00:00:02Z", wantCode: http.StatusUnprocessableEntity},
		{name: "bad tailLines", query: "tailLines=x", wantCode: http.StatusBadRequest},
		{name: "no pod", path: "/containerLogs/default/nope/app", wantCode: http.StatusNotFound},
		{name: "no container", path: "/containerLogs/default/web/nope", wantCode: http.StatusNotFound},
		{name: "init container waiting", path: "/containerLogs/default/web/init", wantCode: http.StatusBadRequest},
		{name: "no previous", path: "/containerLogs/default/web/init", query: "previous=true", wantCode: http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := tt.path
			if path == "" {
				path = "/containerLogs/default/web/app"
			}
			if tt.query != "" {
				path += "?" + tt.query
			}
			want := tt.wantCode
			if want == 0 {
				want = http.StatusOK
			}
			code, body := env.get(env.apiServer(), path)
			if code != want {
				t.Errorf("status = %d, want %d (body %q)", code, want, body)
			}
			golden.Check(t, "logs/"+strings.ReplaceAll(tt.name, " ", "-")+".golden", fmt.Appendf(nil, "%d\n%s", code, body))
		})
	}
}

// TestReadLogsSinceSeconds pins sinceSeconds, which counts back from now.
func TestReadLogsSinceSeconds(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 7, 0, time.UTC)
	var out strings.Builder
	secs := int64(3)
	ctx := context.Background()
	if err := ReadLogs(ctx, filepath.Join("testdata", "app.log"), &v1.PodLogOptions{SinceSeconds: &secs, Timestamps: true}, nil, now, &out, &out); err != nil {
		t.Fatal(err)
	}
	golden.Check(t, "logs/readlogs-sinceSeconds.golden", []byte(out.String()))

	out.Reset()
	since := metav1.NewTime(time.Date(2026, 1, 1, 0, 0, 5, 0, time.UTC))
	if err := ReadLogs(ctx, filepath.Join("testdata", "app.log"), &v1.PodLogOptions{SinceSeconds: &secs, SinceTime: &since}, nil, now, &out, &out); err != nil {
		t.Fatal(err)
	}
	if got, want := out.String(), "\nline 6 with ünïcode\n"; got != want {
		t.Errorf("with the later of sinceSeconds and sinceTime: got %q, want %q", got, want)
	}
}

func criLine(stream, text string) string {
	return time.Now().UTC().Format(time.RFC3339Nano) + " " + stream + " F " + text + "\n"
}

// TestContainerLogsFollow appends to a log while a follow reads it and checks that the follow ends once the container stops running.
func TestContainerLogsFollow(t *testing.T) {
	dir := t.TempDir()
	logPath := filepath.Join(dir, "0.log")
	appendLine := func(path, line string) {
		t.Helper()
		f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.WriteString(line); err != nil {
			t.Fatal(err)
		}
	}
	appendLine(logPath, criLine("stdout", "first"))

	var running atomic.Bool
	running.Store(true)
	p := &fakeProvider{pods: []*v1.Pod{testPod()}, logs: map[string]string{"default/web/app": logPath}, running: running.Load}
	env := newTestEnv(t, p)

	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, env.url+"/containerLogs/default/web/app?"+url.Values{"follow": {"true"}}.Encode(), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := env.httpClient(env.apiServer()).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status = %d", resp.StatusCode)
	}
	r := bufio.NewReader(resp.Body)
	expect := func(want string) {
		t.Helper()
		got, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("read %q: %v", want, err)
		}
		if got != want+"\n" {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
	expect("first")
	appendLine(logPath, criLine("stderr", "second"))
	expect("second")
	// A partial line is held until it is complete.
	appendLine(logPath, time.Now().UTC().Format(time.RFC3339Nano)+" stdout P third, \n")
	appendLine(logPath, criLine("stdout", "continued"))
	expect("third, continued")

	// Rotation is not exercised here: upstream ReadLogs reopens the file
	// only on an fsnotify Create event, and under repeated runs a fresh
	// watcher was seen to get no events at all (reads then go on through
	// ReadLogs' 1s forced re-check, which never reopens), hanging the test.

	appendLine(logPath, criLine("stdout", "last words"))
	running.Store(false)
	rest, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("read to the end of the follow: %v", err)
	}
	if got := string(rest); got != "last words\n" {
		t.Errorf("after the container stopped: got %q, want %q", got, "last words\n")
	}
}

// BenchmarkLogs reads a 10k-line CRI log, as `kubectl logs` of a chatty
// container does.
func BenchmarkLogs(b *testing.B) {
	path := filepath.Join(b.TempDir(), "0.log")
	var sb strings.Builder
	ts := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 10000 {
		stream := "stdout"
		if i%10 == 0 {
			stream = "stderr"
		}
		fmt.Fprintf(&sb, "%s %s F log line %d with some typical payload text of moderate length\n", ts.Add(time.Duration(i)*time.Millisecond).Format(time.RFC3339Nano), stream, i)
	}
	if err := os.WriteFile(path, []byte(sb.String()), 0o644); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.SetBytes(int64(sb.Len()))
	b.ResetTimer()
	for b.Loop() {
		if err := ReadLogs(ctx, path, &v1.PodLogOptions{}, nil, ts, io.Discard, io.Discard); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/10000, "ns/line")
}
