package coredns

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/coredns/caddy/caddyfile"
)

func TestCorefile(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		want    []string // lines the Corefile holds
		wantErr string
	}{
		{
			name: "defaults",
			cfg:  Config{Addr: "192.168.1.10:53", Kubeconfig: "/var/lib/pocketkube/kubeconfigs/kube-proxy.conf"},
			want: []string{
				".:53 {",
				"bind 192.168.1.10",
				"pocketkube_clients",
				"kubernetes cluster.local in-addr.arpa ip6.arpa {",
				"kubeconfig /var/lib/pocketkube/kubeconfigs/kube-proxy.conf",
				"pods insecure",
				"fallthrough in-addr.arpa ip6.arpa",
				"ttl 5",
				restoreKlog,
				"forward . /etc/resolv.conf",
				"cache 30",
			},
		},
		{
			name: "domain, resolv.conf and port",
			cfg:  Config{Addr: "[fd00::1]:5353", Kubeconfig: "/k.conf", ClusterDomain: "example.internal", ResolvConf: "/run/resolv.conf"},
			want: []string{".:5353 {", "bind fd00::1", "pocketkube_clients", "kubernetes example.internal in-addr.arpa ip6.arpa {", "forward . /run/resolv.conf"},
		},
		{
			name: "clients",
			cfg:  Config{Addr: "192.168.1.10:53", Kubeconfig: "/k.conf", Clients: []netip.Prefix{netip.MustParsePrefix("10.244.0.0/16"), netip.MustParsePrefix("fd00:10:244::/64")}},
			want: []string{"pocketkube_clients 10.244.0.0/16 fd00:10:244::/64"},
		},
		{name: "invalid client network", cfg: Config{Addr: "192.168.1.10:53", Kubeconfig: "/k.conf", Clients: []netip.Prefix{{}}}, wantErr: "invalid network"},
		{name: "no port", cfg: Config{Addr: "192.168.1.10", Kubeconfig: "/k.conf"}, wantErr: "parse DNS address"},
		{name: "unspecified IP", cfg: Config{Addr: "0.0.0.0:53", Kubeconfig: "/k.conf"}, wantErr: "want a specific IP"},
		{name: "host name", cfg: Config{Addr: "localhost:53", Kubeconfig: "/k.conf"}, wantErr: "want a specific IP"},
		{name: "bad port", cfg: Config{Addr: "192.168.1.10:0", Kubeconfig: "/k.conf"}, wantErr: "bad port"},
		{name: "no kubeconfig", cfg: Config{Addr: "192.168.1.10:53"}, wantErr: "kubeconfig is required"},
		{name: "kubeconfig with a space", cfg: Config{Addr: "192.168.1.10:53", Kubeconfig: "/a b"}, wantErr: "cannot be written"},
		{name: "kubeconfig with a brace", cfg: Config{Addr: "192.168.1.10:53", Kubeconfig: "/a}"}, wantErr: "cannot be written"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Corefile(tt.cfg)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Corefile() error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Corefile(): %v", err)
			}
			lines := map[string]bool{}
			for l := range strings.Lines(got) {
				lines[strings.TrimSpace(l)] = true
			}
			for _, w := range tt.want {
				if !lines[w] {
					t.Errorf("Corefile lacks line %q:\n%s", w, got)
				}
			}
			// Every directive is one Run registers, in directives' order.
			blocks, err := caddyfile.Parse("Corefile", strings.NewReader(got), directives)
			if err != nil {
				t.Fatalf("parse Corefile: %v\n%s", err, got)
			}
			if len(blocks) != 1 || len(blocks[0].Tokens) != len(directives) {
				t.Errorf("Corefile has %d blocks with directives %v, want 1 with %v", len(blocks), blocks, directives)
			}
		})
	}
}
