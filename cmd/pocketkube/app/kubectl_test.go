package app

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestKubectl(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write([]byte("healthy"))
	}))
	defer srv.Close()
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfig, []byte("apiVersion: v1\nkind: Config\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name string
		args []string
		want string
	}{
		{name: "help is kubectl's", args: []string{"kubectl", "--help"}, want: "kubectl controls the Kubernetes cluster manager"},
		{name: "subcommand help", args: []string{"kubectl", "get", "--help"}, want: "kubectl get pods"},
		{
			name: "talks to the server it is given",
			args: []string{"kubectl", "--kubeconfig", kubeconfig, "--server", srv.URL, "get", "--raw", "/healthz"},
			want: "healthy",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := runCommand(t, tt.args...)
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			if !strings.Contains(out, tt.want) {
				t.Errorf("output %q lacks %q", out, tt.want)
			}
		})
	}
}

func TestFallbackKubeconfig(t *testing.T) {
	dir := t.TempDir()
	home := filepath.Join(dir, "home-config")
	data := filepath.Join(dir, "data")
	if err := os.MkdirAll(data, 0o700); err != nil {
		t.Fatal(err)
	}
	ours := filepath.Join(data, "kubeconfig")
	write := func(p string) {
		if err := os.WriteFile(p, []byte("apiVersion: v1\nkind: Config\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name         string
		env          string
		homeExists   bool
		oursExists   bool
		wantFallback bool
	}{
		{name: "no other kubeconfig", oursExists: true, wantFallback: true},
		{name: "no cluster yet", oursExists: false},
		{name: "KUBECONFIG set", env: "/elsewhere", oursExists: true},
		{name: "~/.kube/config exists", homeExists: true, oursExists: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			os.Remove(home)
			os.Remove(ours)
			if tt.homeExists {
				write(home)
			}
			if tt.oursExists {
				write(ours)
			}
			want := ""
			if tt.wantFallback {
				want = ours
			}
			if got := fallbackKubeconfig(tt.env, home, data); got != want {
				t.Errorf("fallbackKubeconfig() = %q, want %q", got, want)
			}
		})
	}
}
