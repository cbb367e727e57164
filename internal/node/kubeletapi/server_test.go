package kubeletapi

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/klog/v2/ktesting"
)

func TestNew(t *testing.T) {
	caFile := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(caFile, newTestCA(t, "ca").pem, 0o600); err != nil {
		t.Fatal(err)
	}
	valid := func() Config {
		return Config{ClientCAFile: caFile, Client: fake.NewClientset(), NodeName: testNode, Provider: &fakeProvider{}}
	}
	tests := []struct {
		name    string
		mutate  func(*Config)
		wantErr string
	}{
		{name: "valid", mutate: func(*Config) {}},
		{name: "no provider", mutate: func(c *Config) { c.Provider = nil }, wantErr: "config has no Provider"},
		{name: "no node name", mutate: func(c *Config) { c.NodeName = "" }, wantErr: "config has no NodeName"},
		{name: "no client", mutate: func(c *Config) { c.Client = nil }, wantErr: "config has no Client"},
		{name: "no client CA", mutate: func(c *Config) { c.ClientCAFile = "" }, wantErr: "config has no ClientCAFile"},
		{name: "missing client CA", mutate: func(c *Config) { c.ClientCAFile = "/nonexistent/ca.crt" }, wantErr: "load client CA /nonexistent/ca.crt"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := valid()
			tt.mutate(&cfg)
			s, err := New(cfg)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s.cfg.Addr != DefaultAddr || s.cfg.StreamIdleTimeout != DefaultStreamIdleTimeout || s.cfg.StreamCreationTimeout != DefaultStreamCreationTimeout {
				t.Errorf("defaults not filled in: %+v", s.cfg)
			}
		})
	}
}

func TestPods(t *testing.T) {
	env := newTestEnv(t, &fakeProvider{pods: []*v1.Pod{testPod()}})
	for _, path := range []string{"/pods", "/runningpods/"} {
		t.Run(path, func(t *testing.T) {
			code, body := env.get(env.apiServer(), path)
			if code != http.StatusOK {
				t.Fatalf("status = %d (body %q)", code, body)
			}
			var list v1.PodList
			if err := json.Unmarshal([]byte(body), &list); err != nil {
				t.Fatal(err)
			}
			if list.Kind != "PodList" || list.APIVersion != "v1" || len(list.Items) != 1 || list.Items[0].Name != "web" {
				t.Errorf("pod list = %s", body)
			}
		})
	}
}

func TestMethods(t *testing.T) {
	env := newTestEnv(t, &fakeProvider{pods: []*v1.Pod{testPod()}})
	client := env.httpClient(env.apiServer())
	tests := []struct {
		method, path string
		wantCode     int
	}{
		{http.MethodPost, "/containerLogs/default/web/app", http.StatusMethodNotAllowed},
		{http.MethodPost, "/pods", http.StatusMethodNotAllowed},
		{http.MethodDelete, "/exec/default/web/app", http.StatusMethodNotAllowed},
		{http.MethodGet, "/nowhere", http.StatusNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.method+tt.path, func(t *testing.T) {
			req, err := http.NewRequest(tt.method, env.url+tt.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			_ = resp.Body.Close()
			if resp.StatusCode != tt.wantCode {
				t.Errorf("status = %d, want %d", resp.StatusCode, tt.wantCode)
			}
		})
	}
}

// TestRun serves on a real listener with certificate files, then stops
// with its context.
func TestRun(t *testing.T) {
	env := newTestEnv(t, &fakeProvider{})
	dir := t.TempDir()
	certPEM, keyPEM := env.ca.issue(t, testNode, nil, true)
	files := map[string][]byte{"ca.crt": env.ca.pem, "tls.crt": certPEM, "tls.key": keyPEM}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()

	srv, err := New(Config{
		Addr:         addr,
		CertFile:     filepath.Join(dir, "tls.crt"),
		KeyFile:      filepath.Join(dir, "tls.key"),
		ClientCAFile: filepath.Join(dir, "ca.crt"),
		Client:       fake.NewClientset(),
		NodeName:     testNode,
		Provider:     &fakeProvider{},
	})
	if err != nil {
		t.Fatal(err)
	}
	_, ctx := ktesting.NewTestContext(t)
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})

	// Unauthenticated requests get 401 from a running server.
	client := env.httpClient(env.restConfig(""))
	err = wait.PollUntilContextTimeout(ctx, 20*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		resp, err := client.Get("https://" + addr + "/healthz")
		if err != nil {
			return false, nil
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("status = %d, want 401", resp.StatusCode)
		}
		return true, nil
	})
	if err != nil {
		t.Fatalf("server never answered: %v", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run = %v, want nil after cancel", err)
	}
	done <- nil
}
