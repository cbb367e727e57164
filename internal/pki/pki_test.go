package pki

import (
	"bytes"
	"crypto/x509"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/util/cert"
)

func testConfig(t testing.TB) Config {
	return Config{
		Dir:             filepath.Join(t.TempDir(), "pki"),
		ServiceIP:       net.ParseIP("10.96.0.1"),
		ServingDNSNames: []string{"node1"},
		ServingIPs:      []net.IP{net.ParseIP("192.0.2.2")},
		NodeName:        "node1",
		NodeIPs:         []net.IP{net.ParseIP("192.0.2.2")},
	}
}

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	certs, err := cert.CertsFromFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return certs[0]
}

func TestEnsureIdentities(t *testing.T) {
	cfg := testConfig(t)
	p, err := Ensure(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ca := readCert(t, p.CA)
	if !ca.IsCA || ca.Subject.CommonName != "kubernetes" {
		t.Errorf("CA: IsCA=%v CN=%q", ca.IsCA, ca.Subject.CommonName)
	}
	tests := []struct {
		name   string
		cert   string
		issuer string
		cn     string
		org    []string
		usage  x509.ExtKeyUsage
	}{
		{"admin", p.Admin, p.CA, "kubernetes-admin", []string{"system:masters"}, x509.ExtKeyUsageClientAuth},
		{"controller-manager", p.ControllerManager, p.CA, "system:kube-controller-manager", nil, x509.ExtKeyUsageClientAuth},
		{"scheduler", p.Scheduler, p.CA, "system:kube-scheduler", nil, x509.ExtKeyUsageClientAuth},
		{"kubelet client", p.KubeletClient, p.CA, "kube-apiserver-kubelet-client", []string{"system:masters"}, x509.ExtKeyUsageClientAuth},
		{"front proxy", p.FrontProxyClient, p.FrontProxyCA, "front-proxy-client", nil, x509.ExtKeyUsageClientAuth},
		{"serving", p.Serving, p.CA, "kube-apiserver", nil, x509.ExtKeyUsageServerAuth},
		{"node client", p.NodeClient, p.CA, "system:node:node1", []string{"system:nodes"}, x509.ExtKeyUsageClientAuth},
		{"node serving", p.NodeServing, p.CA, "node1", nil, x509.ExtKeyUsageServerAuth},
		{"kube-proxy", p.KubeProxy, p.CA, "system:kube-proxy", nil, x509.ExtKeyUsageClientAuth},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := readCert(t, tt.cert)
			if err := c.CheckSignatureFrom(readCert(t, tt.issuer)); err != nil {
				t.Errorf("not signed by %s: %v", tt.issuer, err)
			}
			if c.Subject.CommonName != tt.cn {
				t.Errorf("CN = %q, want %q", c.Subject.CommonName, tt.cn)
			}
			if len(c.Subject.Organization) != len(tt.org) || (len(tt.org) > 0 && c.Subject.Organization[0] != tt.org[0]) {
				t.Errorf("O = %q, want %q", c.Subject.Organization, tt.org)
			}
			if len(c.ExtKeyUsage) != 1 || c.ExtKeyUsage[0] != tt.usage {
				t.Errorf("ExtKeyUsage = %v, want %v", c.ExtKeyUsage, tt.usage)
			}
		})
	}
}

func TestServingCertificateNames(t *testing.T) {
	cfg := testConfig(t)
	p, err := Ensure(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c := readCert(t, p.Serving)
	for _, name := range []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local", "node1"} {
		if err := c.VerifyHostname(name); err != nil {
			t.Errorf("serving certificate does not cover %s: %v", name, err)
		}
	}
	for _, ip := range []string{"127.0.0.1", "::1", "10.96.0.1", "192.0.2.2"} {
		if err := c.VerifyHostname(ip); err != nil {
			t.Errorf("serving certificate does not cover %s: %v", ip, err)
		}
	}
}

func TestPrivateKeysAreOwnerOnly(t *testing.T) {
	cfg := testConfig(t)
	p, err := Ensure(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{p.CAKey, p.FrontProxyCAKey, p.ServingKey, p.KubeletClientKey, p.FrontProxyClientKey, p.AdminKey, p.ControllerManagerKey, p.SchedulerKey, p.ServiceAccountKey} {
		fi, err := os.Stat(key)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want 0600", key, fi.Mode().Perm())
		}
	}
}

// snapshot returns every file's bytes in dir.
func snapshot(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		files[e.Name()] = data
	}
	return files
}

func TestEnsureReuses(t *testing.T) {
	cfg := testConfig(t)
	if _, err := Ensure(cfg); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, cfg.Dir)
	if _, err := Ensure(cfg); err != nil {
		t.Fatal(err)
	}
	after := snapshot(t, cfg.Dir)
	if len(before) != len(after) {
		t.Fatalf("file count changed: %d → %d", len(before), len(after))
	}
	for name, data := range before {
		if !bytes.Equal(data, after[name]) {
			t.Errorf("%s was rewritten", name)
		}
	}
}

func TestEnsureReissues(t *testing.T) {
	tests := []struct {
		name    string
		change  func(cfg *Config, p Paths)
		changed []string
	}{
		{
			name:    "new serving name",
			change:  func(cfg *Config, _ Paths) { cfg.ServingIPs = append(cfg.ServingIPs, net.ParseIP("198.51.100.7")) },
			changed: []string{"apiserver.crt", "apiserver.key"},
		},
		{
			name: "certificate close to expiry",
			change: func(cfg *Config, _ Paths) {
				cfg.Now = func() time.Time { return time.Now().Add(leafValidity - renewBefore/2) }
			},
			changed: []string{"apiserver.crt", "apiserver.key", "admin.crt", "admin.key", "controller-manager.crt", "controller-manager.key", "scheduler.crt", "scheduler.key", "apiserver-kubelet-client.crt", "apiserver-kubelet-client.key", "front-proxy-client.crt", "front-proxy-client.key", "node-client.crt", "node-client.key", "node-serving.crt", "node-serving.key", "kube-proxy.crt", "kube-proxy.key", "metrics-server.crt", "metrics-server.key"},
		},
		{
			name:    "new node address",
			change:  func(cfg *Config, _ Paths) { cfg.NodeIPs = append(cfg.NodeIPs, net.ParseIP("198.51.100.8")) },
			changed: []string{"node-serving.crt", "node-serving.key"},
		},
		{
			name:    "key lost",
			change:  func(_ *Config, p Paths) { os.Remove(p.AdminKey) },
			changed: []string{"admin.crt", "admin.key"},
		},
		{
			name: "certificate corrupt",
			change: func(_ *Config, p Paths) {
				os.WriteFile(p.Scheduler, []byte("garbage"), 0o644)
			},
			changed: []string{"scheduler.crt", "scheduler.key"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(t)
			p, err := Ensure(cfg)
			if err != nil {
				t.Fatal(err)
			}
			before := snapshot(t, cfg.Dir)
			tt.change(&cfg, p)
			if _, err := Ensure(cfg); err != nil {
				t.Fatal(err)
			}
			after := snapshot(t, cfg.Dir)
			for name, data := range after {
				want := false
				for _, c := range tt.changed {
					want = want || c == name
				}
				if got := !bytes.Equal(before[name], data); got != want {
					t.Errorf("%s: changed=%v, want %v", name, got, want)
				}
			}
		})
	}
}

func TestEnsureRequiresFields(t *testing.T) {
	if _, err := Ensure(Config{ServiceIP: net.ParseIP("10.96.0.1")}); err == nil {
		t.Error("Ensure without Dir succeeded")
	}
	if _, err := Ensure(Config{Dir: t.TempDir()}); err == nil {
		t.Error("Ensure without ServiceIP succeeded")
	}
}

func BenchmarkEnsureCold(b *testing.B) {
	for b.Loop() {
		cfg := testConfig(b)
		if _, err := Ensure(cfg); err != nil {
			b.Fatal(err)
		}
	}
}

func TestNodeServingNames(t *testing.T) {
	p, err := Ensure(testConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	c := readCert(t, p.NodeServing)
	if err := c.VerifyHostname("node1"); err != nil {
		t.Error(err)
	}
	if err := c.VerifyHostname("192.0.2.2"); err != nil {
		t.Error(err)
	}
}

func TestNoNodeWithoutNodeName(t *testing.T) {
	cfg := testConfig(t)
	cfg.NodeName = ""
	p, err := Ensure(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if p.NodeClient != "" || p.NodeServing != "" || p.KubeProxy != "" {
		t.Errorf("node paths set without NodeName: %q %q %q", p.NodeClient, p.NodeServing, p.KubeProxy)
	}
	if _, err := os.Stat(filepath.Join(cfg.Dir, "node-client.crt")); !os.IsNotExist(err) {
		t.Errorf("node-client.crt written without NodeName: %v", err)
	}
	if _, err := os.Stat(filepath.Join(cfg.Dir, "kube-proxy.crt")); !os.IsNotExist(err) {
		t.Errorf("kube-proxy.crt written without NodeName: %v", err)
	}
}

// A CA whose key (or certificate) is gone is refused with ErrCAIncomplete,
// as kubeadm's certs phase refuses a CA it cannot load; nothing is
// replaced, so restoring the file brings the cluster back.
func TestEnsureRefusesHalfCA(t *testing.T) {
	tests := []struct {
		name   string
		remove func(p Paths) string
	}{
		{"CA key", func(p Paths) string { return p.CAKey }},
		{"CA certificate", func(p Paths) string { return p.CA }},
		{"front-proxy CA key", func(p Paths) string { return p.FrontProxyCAKey }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(t)
			p, err := Ensure(cfg)
			if err != nil {
				t.Fatal(err)
			}
			gone := tt.remove(p)
			saved, err := os.ReadFile(gone)
			if err != nil {
				t.Fatal(err)
			}
			os.Remove(gone)
			before := snapshot(t, cfg.Dir)
			_, err = Ensure(cfg)
			if !errors.Is(err, ErrCAIncomplete) || !strings.Contains(err.Error(), gone+" is missing") {
				t.Fatalf("Ensure with %s removed: %v, want ErrCAIncomplete naming it", gone, err)
			}
			t.Logf("error: %v", err)
			after := snapshot(t, cfg.Dir)
			for name, data := range after {
				if !bytes.Equal(before[name], data) {
					t.Errorf("%s changed", name)
				}
			}
			if len(after) != len(before) {
				t.Errorf("files: %d, want %d", len(after), len(before))
			}
			if err := os.WriteFile(gone, saved, 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := Ensure(cfg); err != nil {
				t.Errorf("Ensure after restoring %s: %v", gone, err)
			}
		})
	}
}

// A pki directory that exists with a looser mode is made 0700 again.
func TestEnsureRestrictsExistingDir(t *testing.T) {
	cfg := testConfig(t)
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(cfg.Dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := Ensure(cfg); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(cfg.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 {
		t.Errorf("pki dir mode %v, want 0700", fi.Mode().Perm())
	}
}
