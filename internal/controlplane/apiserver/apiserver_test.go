package apiserver

import (
	"net"
	"strings"
	"testing"

	"github.com/pocketkube/pocketkube/internal/golden"
	"github.com/pocketkube/pocketkube/internal/pki"
)

func testConfig() Config {
	return Config{
		BindAddress:           net.ParseIP("127.0.0.1"),
		Port:                  6443,
		AdvertiseAddress:      net.ParseIP("192.0.2.2"),
		ServiceClusterIPRange: "10.96.0.0/12",
		EtcdServers:           []string{"unix:///var/lib/pocketkube/etcd/etcd.sock"},
		PKI:                   pki.PathsFor("/var/lib/pocketkube/pki"),
		ServiceAccountIssuer:  "https://kubernetes.default.svc.cluster.local",
	}
}

// The flags are pinned, so a k8s.io/kubernetes bump or a config change shows
// as a reviewed diff.
func TestArgsGolden(t *testing.T) {
	tests := []struct {
		name   string
		config func(*Config)
	}{
		{"embedded-etcd.args", func(*Config) {}},
		{"external-etcd-tls.args", func(c *Config) {
			c.EtcdServers = []string{"https://10.0.0.1:2379", "https://10.0.0.2:2379"}
			c.EtcdCAFile, c.EtcdCertFile, c.EtcdKeyFile = "/etc/etcd/ca.crt", "/etc/etcd/client.crt", "/etc/etcd/client.key"
		}},
		{"bind-all.args", func(c *Config) { c.BindAddress = nil }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := testConfig()
			tt.config(&c)
			golden.Check(t, tt.name, []byte(strings.Join(Args(c), "\n")+"\n"))
		})
	}
}

// Upstream's own flag set accepts every flag and value we pass, and its
// options validate (less the files, which Run's caller provides).
func TestArgsParseUpstream(t *testing.T) {
	s, err := Options(Args(testConfig()))
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Authorization.Modes; len(got) != 2 || got[0] != "Node" || got[1] != "RBAC" {
		t.Errorf("authorization modes = %v", got)
	}
	if s.SecureServing.BindPort != 6443 || !s.SecureServing.BindAddress.Equal(net.ParseIP("127.0.0.1")) {
		t.Errorf("secure serving = %v:%d", s.SecureServing.BindAddress, s.SecureServing.BindPort)
	}
	if !s.Authentication.Anonymous.Allow {
		t.Error("anonymous auth is off")
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Config)
		want   string
	}{
		{"ok", func(*Config) {}, ""},
		{"no port", func(c *Config) { c.Port = 0 }, "port 0 out of range"},
		{"no advertise address", func(c *Config) { c.AdvertiseAddress = nil }, "AdvertiseAddress is required"},
		{"no etcd", func(c *Config) { c.EtcdServers = nil }, "EtcdServers is required"},
		{"no issuer", func(c *Config) { c.ServiceAccountIssuer = "" }, "ServiceAccountIssuer is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := testConfig()
			tt.change(&c)
			err := c.Validate()
			if (tt.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.want)) {
				t.Errorf("Validate() = %v, want %q", err, tt.want)
			}
		})
	}
}
