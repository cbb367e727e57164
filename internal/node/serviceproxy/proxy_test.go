package serviceproxy

import (
	"net"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	kubeproxy "k8s.io/kubernetes/pkg/proxy"
	kubeproxyconfig "k8s.io/kubernetes/pkg/proxy/apis/config"
)

func TestKubeProxyConfiguration(t *testing.T) {
	valid := Config{Kubeconfig: "kp.conf", NodeName: "n1", NodeIPs: []net.IP{net.ParseIP("fd00::2"), net.ParseIP("192.0.2.2")}, ClusterCIDR: "10.244.0.0/16"}
	tests := []struct {
		name    string
		change  func(*Config)
		wantErr string
	}{
		{name: "valid"},
		{name: "no kubeconfig", change: func(c *Config) { c.Kubeconfig = "" }, wantErr: "required"},
		{name: "no node IPs", change: func(c *Config) { c.NodeIPs = nil }, wantErr: "required"},
		{name: "no IPv4 node IP", change: func(c *Config) { c.NodeIPs = []net.IP{net.ParseIP("fd00::2")} }, wantErr: "no IPv4 address"},
		{name: "bad cluster CIDR", change: func(c *Config) { c.ClusterCIDR = "10.244.0.0" }, wantErr: "ClusterCIDR"},
		{name: "min sync period", change: func(c *Config) { c.MinSyncPeriod = 100 * time.Millisecond }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := valid
			if tt.change != nil {
				tt.change(&cfg)
			}
			c, nodeIP, err := kubeProxyConfiguration(cfg)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !nodeIP.Equal(net.ParseIP("192.0.2.2")) {
				t.Errorf("nodeIP = %s, want the first IPv4 one", nodeIP)
			}
			if c.Mode != kubeproxyconfig.ProxyModeNFTables || c.HostnameOverride != "n1" {
				t.Errorf("mode %q, hostname %q", c.Mode, c.HostnameOverride)
			}
			if got := strings.Join(c.NodePortAddresses, ","); got != "192.0.2.2/32" {
				t.Errorf("NodePortAddresses = %s", got)
			}
			if got := strings.Join(c.DetectLocal.ClusterCIDRs, ","); got != "10.244.0.0/16" {
				t.Errorf("ClusterCIDRs = %s", got)
			}
			if *c.Linux.Conntrack.MaxPerCore != 0 || *c.Linux.Conntrack.Min != 0 || c.Linux.OOMScoreAdj != nil || c.HealthzBindAddress != "" {
				t.Errorf("conntrack %d/%d, oom %v, healthz %q: want the host left alone", *c.Linux.Conntrack.MaxPerCore, *c.Linux.Conntrack.Min, c.Linux.OOMScoreAdj, c.HealthzBindAddress)
			}
			want := time.Second // kube-proxy's default
			if cfg.MinSyncPeriod != 0 {
				want = cfg.MinSyncPeriod
			}
			if c.MinSyncPeriod.Duration != want {
				t.Errorf("MinSyncPeriod = %s, want %s", c.MinSyncPeriod.Duration, want)
			}
		})
	}
}

// countingProvider counts the events it gets.
type countingProvider struct {
	kubeproxy.Provider // nil: calling anything else panics
	services, syncs    int
}

func (p *countingProvider) OnServiceAdd(*v1.Service) { p.services++ }
func (p *countingProvider) Sync()                    { p.syncs++ }

func TestGateStopsEventsOnClose(t *testing.T) {
	p := &countingProvider{}
	g := &gate{Provider: p}
	before := time.Now()
	g.OnServiceAdd(&v1.Service{})
	g.Sync()
	last := g.close()
	g.OnServiceAdd(&v1.Service{})
	g.Sync()
	if p.services != 1 || p.syncs != 1 {
		t.Errorf("provider got %d services and %d syncs, want 1 and 1: the gate passed events after close", p.services, p.syncs)
	}
	if last.Before(before) || last.After(time.Now()) {
		t.Errorf("last event at %s, want between %s and now", last, before)
	}
}
