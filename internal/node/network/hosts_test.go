package network

import (
	"strings"
	"testing"

	"github.com/pocketkube/pocketkube/internal/golden"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The cases are kubelet's TestManagedHostsFileContent and
// TestNodeHostsFileContent (pkg/kubelet/kubelet_pods_test.go).
func TestHostsFile(t *testing.T) {
	aliases := []v1.HostAlias{
		{IP: "123.45.67.89", Hostnames: []string{"foo", "bar", "baz"}},
		{IP: "456.78.90.123", Hostnames: []string{"park", "doo", "boo"}},
	}
	tests := []struct {
		name string
		cfg  HostsConfig
	}{
		{name: "ipv4", cfg: HostsConfig{PodIPs: []string{"123.45.67.89"}, Hostname: "podFoo"}},
		{name: "ipv6", cfg: HostsConfig{PodIPs: []string{"fd00::6"}, Hostname: "podFoo"}},
		{name: "dual-stack", cfg: HostsConfig{PodIPs: []string{"203.0.113.1", "fd00::6"}, Hostname: "podFoo"}},
		{name: "subdomain", cfg: HostsConfig{PodIPs: []string{"203.0.113.1"}, Hostname: "podFoo", HostDomain: "domainFoo"}},
		{name: "dual-stack-subdomain", cfg: HostsConfig{PodIPs: []string{"203.0.113.1", "fd00::6"}, Hostname: "podFoo", HostDomain: "sub.ns.svc.cluster.local"}},
		{name: "host-aliases", cfg: HostsConfig{PodIPs: []string{"203.0.113.1"}, Hostname: "podFoo", HostAliases: aliases}},
		{name: "host-aliases-subdomain", cfg: HostsConfig{PodIPs: []string{"203.0.113.1"}, Hostname: "podFoo", HostDomain: "domainFoo", HostAliases: aliases}},
		{name: "no-ip", cfg: HostsConfig{Hostname: "podFoo"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			golden.Check(t, "hosts/"+tt.name+".hosts", HostsFile(tt.cfg))
		})
	}
}

func TestHostNetworkHostsFile(t *testing.T) {
	node := "# hosts file for testing.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n123.45.67.89\tsome.domain\n"
	tests := []struct {
		name    string
		aliases []v1.HostAlias
	}{
		{name: "no-aliases"},
		{name: "aliases", aliases: []v1.HostAlias{
			{IP: "123.45.67.89", Hostnames: []string{"foo", "bar", "baz"}},
			{IP: "456.78.90.123", Hostnames: []string{"park", "doo", "boo"}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			golden.Check(t, "hosts/host-network-"+tt.name+".hosts", HostNetworkHostsFile([]byte(node), tt.aliases))
		})
	}
}

func TestPodHostname(t *testing.T) {
	long := strings.Repeat("a", 62) + "-b"
	override := "override.example"
	tests := []struct {
		name           string
		pod            v1.Pod
		wantHost       string
		wantDomain     string
		wantTruncated  bool
		wantErrContain string
	}{
		{name: "pod name", pod: v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web-0", Namespace: "ns"}}, wantHost: "web-0"},
		{name: "hostname", pod: v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web-0", Namespace: "ns"}, Spec: v1.PodSpec{Hostname: "h"}}, wantHost: "h"},
		{name: "hostname and subdomain", pod: v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web-0", Namespace: "ns"}, Spec: v1.PodSpec{Hostname: "h", Subdomain: "sub"}}, wantHost: "h", wantDomain: "sub.ns.svc.cluster.local"},
		{name: "override wins over subdomain", pod: v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web-0", Namespace: "ns"}, Spec: v1.PodSpec{HostnameOverride: &override, Subdomain: "sub"}}, wantHost: override},
		{name: "long name truncated and trimmed", pod: v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: long, Namespace: "ns"}}, wantHost: strings.Repeat("a", 62), wantTruncated: true},
		{name: "invalid hostname", pod: v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns"}, Spec: v1.PodSpec{Hostname: "Not_Valid"}}, wantErrContain: "not a valid DNS label"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			host, domain, truncated, err := PodHostname(&tt.pod, "cluster.local")
			if tt.wantErrContain != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErrContain) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErrContain)
				}
				return
			}
			if err != nil || host != tt.wantHost || domain != tt.wantDomain || truncated != tt.wantTruncated {
				t.Fatalf("PodHostname = %q, %q, %v, %v; want %q, %q, %v", host, domain, truncated, err, tt.wantHost, tt.wantDomain, tt.wantTruncated)
			}
		})
	}
}
