package kubeletapi

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"
	"k8s.io/client-go/util/exec"
)

// sizeQueue hands out one terminal size.
type sizeQueue struct{ sent bool }

func (q *sizeQueue) Next() *remotecommand.TerminalSize {
	if q.sent {
		return nil
	}
	q.sent = true
	return &remotecommand.TerminalSize{Width: 80, Height: 24}
}

// TestExecAttach drives /exec and /attach with client-go's SPDY and
// WebSocket executors, the code kubectl and the API server use.
func TestExecAttach(t *testing.T) {
	env := newTestEnv(t, &fakeProvider{pods: []*v1.Pod{testPod()}})
	executors := map[string]func(cfg *rest.Config, method, u string) (remotecommand.Executor, error){
		"spdy": func(cfg *rest.Config, method, u string) (remotecommand.Executor, error) {
			return remotecommand.NewSPDYExecutor(cfg, method, mustURL(t, u))
		},
		"websocket": func(cfg *rest.Config, _, u string) (remotecommand.Executor, error) {
			return remotecommand.NewWebSocketExecutor(cfg, http.MethodGet, u)
		},
	}
	tests := []struct {
		name       string
		path       string
		cmd        []string
		stdin      string
		tty        bool
		stderr     bool
		resize     bool
		wantStdout string
		wantStderr string
		wantErr    string
	}{
		{name: "exec stdin echoed", path: "/exec/default/web/app", cmd: []string{"cat"}, stdin: "hello\nworld\n", wantStdout: "hello\nworld\n"},
		{name: "exec with uid", path: "/exec/default/web/uid-1/app", cmd: []string{"cat"}, stdin: "uid\n", wantStdout: "uid\n"},
		{name: "exec tty", path: "/exec/default/web/app", cmd: []string{"cat"}, stdin: "tty\n", tty: true, wantStdout: "tty\n"},
		{name: "exec tty resize", path: "/exec/default/web/app", cmd: []string{"size"}, tty: true, resize: true, wantStdout: "80x24"},
		{name: "exec exit code", path: "/exec/default/web/app", cmd: []string{"exit", "7"}, stderr: true, wantStderr: "bye", wantErr: "command terminated with exit code 7"},
		{name: "exec fails to start", path: "/exec/default/web/app", cmd: []string{"nope"}, wantErr: `executable file not found in $PATH: "nope"`},
		{name: "attach", path: "/attach/default/web/app", stdin: "attached\n", wantStdout: "attached\n"},
		{name: "attach tty", path: "/attach/default/web/app", stdin: "attached\n", tty: true, wantStdout: "attached\n"},
	}
	for proto, newExecutor := range executors {
		for _, tt := range tests {
			t.Run(proto+"/"+tt.name, func(t *testing.T) {
				q := url.Values{"output": {"1"}}
				for _, c := range tt.cmd {
					q.Add("command", c)
				}
				opts := remotecommand.StreamOptions{Tty: tt.tty}
				var stdout, stderr bytes.Buffer
				opts.Stdout = &stdout
				if tt.stdin != "" || tt.cmd == nil || tt.cmd[0] == "cat" {
					q.Set("input", "1")
					opts.Stdin = strings.NewReader(tt.stdin)
				}
				if tt.tty {
					q.Set("tty", "1")
				}
				if tt.stderr {
					q.Set("error", "1")
					opts.Stderr = &stderr
				}
				if tt.resize {
					opts.TerminalSizeQueue = &sizeQueue{}
				}
				e, err := newExecutor(env.apiServer(), http.MethodPost, env.url+tt.path+"?"+q.Encode())
				if err != nil {
					t.Fatal(err)
				}
				err = e.StreamWithContext(context.Background(), opts)
				switch {
				case tt.wantErr == "" && err != nil:
					t.Fatalf("stream: %v", err)
				case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
					t.Fatalf("stream error = %v, want %q", err, tt.wantErr)
				}
				if tt.wantErr == "command terminated with exit code 7" {
					var exitErr exec.CodeExitError
					if !errors.As(err, &exitErr) || exitErr.Code != 7 || err.Error() != tt.wantErr {
						t.Errorf("error = %#v, want a CodeExitError with code 7", err)
					}
				}
				got := strings.ReplaceAll(stdout.String(), "\r\n", "\n")
				if got != tt.wantStdout {
					t.Errorf("stdout = %q, want %q", got, tt.wantStdout)
				}
				if stderr.String() != tt.wantStderr {
					t.Errorf("stderr = %q, want %q", stderr.String(), tt.wantStderr)
				}
			})
		}
	}
}

// TestExecErrors pins the answers given before any upgrade.
func TestExecErrors(t *testing.T) {
	env := newTestEnv(t, &fakeProvider{pods: []*v1.Pod{testPod()}})
	tests := []struct {
		name     string
		path     string
		wantCode int
		wantBody string
	}{
		{name: "no streams", path: "/exec/default/web/app?command=ls", wantCode: http.StatusBadRequest, wantBody: "you must specify at least 1 of stdin, stdout, stderr"},
		{name: "no pod", path: "/exec/default/nope/app?command=ls&output=1", wantCode: http.StatusNotFound, wantBody: "pod does not exist"},
		{name: "other uid", path: "/exec/default/web/uid-2/app?command=ls&output=1", wantCode: http.StatusNotFound, wantBody: "pod not found"},
		{name: "attach no pod", path: "/attach/default/nope/app?output=1", wantCode: http.StatusNotFound, wantBody: "pod does not exist"},
		{name: "portForward no pod", path: "/portForward/default/nope", wantCode: http.StatusNotFound, wantBody: "pod does not exist"},
		{name: "exec without upgrade", path: "/exec/default/web/app?command=ls&output=1", wantCode: http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := env.get(env.apiServer(), tt.path)
			if code != tt.wantCode {
				t.Errorf("status = %d, want %d (body %q)", code, tt.wantCode, body)
			}
			if tt.wantBody != "" && strings.TrimSpace(body) != tt.wantBody {
				t.Errorf("body = %q, want %q", body, tt.wantBody)
			}
		})
	}
}

func mustURL(t testing.TB, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
