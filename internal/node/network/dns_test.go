package network

import (
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"

	"github.com/pocketkube/pocketkube/internal/golden"
	v1 "k8s.io/api/core/v1"
)

// TestParseResolvConf is kubelet's TestParseResolvConf
// (pkg/kubelet/network/dns/dns_test.go), options compared as sets.
func TestParseResolvConf(t *testing.T) {
	tests := []struct {
		data        string
		nameservers []string
		searches    []string
		options     []string
		isErr       bool
	}{
		{"", []string{}, []string{}, []string{}, false},
		{" ", []string{}, []string{}, []string{}, false},
		{"\n", []string{}, []string{}, []string{}, false},
		{"\t\n\t", []string{}, []string{}, []string{}, false},
		{"#comment\n", []string{}, []string{}, []string{}, false},
		{" #comment\n", []string{}, []string{}, []string{}, false},
		{"#comment\n#comment", []string{}, []string{}, []string{}, false},
		{"#comment\nnameserver", []string{}, []string{}, []string{}, true},
		{"#comment\nnameserver\nsearch", []string{}, []string{}, []string{}, true},
		{"#comment\nnameserver 1.2.3.4\nsearch", []string{"1.2.3.4"}, []string{}, []string{}, false},
		{"nameserver 1.2.3.4", []string{"1.2.3.4"}, []string{}, []string{}, false},
		{" nameserver 1.2.3.4", []string{"1.2.3.4"}, []string{}, []string{}, false},
		{"\tnameserver 1.2.3.4", []string{"1.2.3.4"}, []string{}, []string{}, false},
		{"nameserver\t1.2.3.4", []string{"1.2.3.4"}, []string{}, []string{}, false},
		{"nameserver \t 1.2.3.4", []string{"1.2.3.4"}, []string{}, []string{}, false},
		{"nameserver 1.2.3.4\nnameserver 5.6.7.8", []string{"1.2.3.4", "5.6.7.8"}, []string{}, []string{}, false},
		{"nameserver 1.2.3.4 #comment", []string{"1.2.3.4"}, []string{}, []string{}, false},
		{"search ", []string{}, []string{}, []string{}, false},
		{"search .", []string{}, []string{}, []string{}, false},
		{"search . foo", []string{}, []string{"foo"}, []string{}, false},
		{"search foo .", []string{}, []string{"foo"}, []string{}, false},
		{"search foo .  bar", []string{}, []string{"foo", "bar"}, []string{}, false},
		{"search foo", []string{}, []string{"foo"}, []string{}, false},
		{"search foo bar", []string{}, []string{"foo", "bar"}, []string{}, false},
		{"search foo. bar", []string{}, []string{"foo", "bar"}, []string{}, false},
		{"search foo bar bat\n", []string{}, []string{"foo", "bar", "bat"}, []string{}, false},
		{"search foo\nsearch bar", []string{}, []string{"bar"}, []string{}, false},
		{"nameserver 1.2.3.4\nsearch foo bar", []string{"1.2.3.4"}, []string{"foo", "bar"}, []string{}, false},
		{"nameserver 1.2.3.4\nsearch foo\nnameserver 5.6.7.8\nsearch bar", []string{"1.2.3.4", "5.6.7.8"}, []string{"bar"}, []string{}, false},
		{"#comment\nnameserver 1.2.3.4\n#comment\nsearch foo\ncomment", []string{"1.2.3.4"}, []string{"foo"}, []string{}, false},
		{"options ", []string{}, []string{}, []string{}, false},
		{"options ndots:5 attempts:2", []string{}, []string{}, []string{"ndots:5", "attempts:2"}, false},
		{"options ndots:1 ndots:5 attempts:2", []string{}, []string{}, []string{"ndots:5", "attempts:2"}, false},
		{"options ndots:1 edns0 attempts:2 single-request-reopen", []string{}, []string{}, []string{"edns0", "attempts:2", "single-request-reopen", "ndots:1"}, false},
		{"options ndots:1\noptions ndots:5 attempts:3", []string{}, []string{}, []string{"ndots:5", "attempts:3"}, false},
		{"options ndots:1 timeout:3 timeout:1 attempts:3\noptions ndots:5", []string{}, []string{}, []string{"ndots:5", "timeout:1", "attempts:3"}, false},
		{"options ndots:1 attempts:3\noptions ndots:1 attempts:3 ndots:5", []string{}, []string{}, []string{"ndots:5", "attempts:3"}, false},
		{"nameserver 1.2.3.4\nsearch foo\nnameserver 5.6.7.8\nsearch bar\noptions ndots:5 attempts:4", []string{"1.2.3.4", "5.6.7.8"}, []string{"bar"}, []string{"ndots:5", "attempts:4"}, false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%q", tt.data), func(t *testing.T) {
			ns, search, opts, err := parseResolvConf([]byte(tt.data))
			if tt.isErr {
				if err == nil {
					t.Fatal("want an error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			slices.Sort(opts)
			want := slices.Sorted(slices.Values(tt.options))
			if !slices.Equal(ns, tt.nameservers) || !slices.Equal(search, tt.searches) || !slices.Equal(opts, want) {
				t.Errorf("got %q %q %q, want %q %q %q", ns, search, opts, tt.nameservers, tt.searches, want)
			}
		})
	}
}

func TestResolvConf(t *testing.T) {
	ndots3 := "3"
	empty := ""
	clusterDNS := []net.IP{net.ParseIP("10.96.0.10")}
	host := []byte("# host file\nnameserver 8.8.8.8\nsearch host.domain\noptions timeout:2 edns0\n")
	merge := &v1.PodDNSConfig{
		Nameservers: []string{"10.0.0.11"},
		Searches:    []string{"my.domain"},
		Options:     []v1.PodDNSConfigOption{{Name: "ndots", Value: &ndots3}, {Name: "debug"}, {Name: "timeout", Value: &empty}},
	}
	manySearches := make([]string, 40)
	for i := range manySearches {
		manySearches[i] = fmt.Sprintf("search%02d.example.com", i)
	}
	longSearches := []string{strings.Repeat("a", 254), "ok.example.com"}
	for i := range 9 {
		longSearches = append(longSearches, fmt.Sprintf("%02d.%s", i, strings.Repeat("b", 250)))
	}

	tests := []struct {
		name         string
		cfg          DNSConfig
		wantWarnings []string
	}{
		{name: "cluster-first", cfg: DNSConfig{Namespace: "testNS", DNSPolicy: v1.DNSClusterFirst, ClusterDNS: clusterDNS, ClusterDomain: "cluster.local", HostResolvConf: host}},
		{name: "cluster-first-empty-policy", cfg: DNSConfig{Namespace: "testNS", ClusterDNS: clusterDNS, ClusterDomain: "cluster.local", HostResolvConf: host}},
		{name: "cluster-first-dual-stack-dns", cfg: DNSConfig{Namespace: "testNS", DNSPolicy: v1.DNSClusterFirst, ClusterDNS: []net.IP{net.ParseIP("10.96.0.10"), net.ParseIP("fd00:10:96::a")}, ClusterDomain: "cluster.local", HostResolvConf: host}},
		{name: "cluster-first-no-cluster-domain", cfg: DNSConfig{Namespace: "testNS", DNSPolicy: v1.DNSClusterFirst, ClusterDNS: clusterDNS, HostResolvConf: host}},
		{name: "cluster-first-host-network", cfg: DNSConfig{Namespace: "testNS", DNSPolicy: v1.DNSClusterFirst, HostNetwork: true, ClusterDNS: clusterDNS, ClusterDomain: "cluster.local", HostResolvConf: host}},
		{name: "cluster-first-no-cluster-dns", cfg: DNSConfig{Namespace: "testNS", DNSPolicy: v1.DNSClusterFirst, ClusterDomain: "cluster.local", HostResolvConf: host}, wantWarnings: []string{ReasonMissingClusterDNS}},
		{name: "cluster-first-with-host-net", cfg: DNSConfig{Namespace: "testNS", DNSPolicy: v1.DNSClusterFirstWithHostNet, HostNetwork: true, ClusterDNS: clusterDNS, ClusterDomain: "cluster.local", HostResolvConf: host}},
		{name: "default", cfg: DNSConfig{Namespace: "testNS", DNSPolicy: v1.DNSDefault, ClusterDNS: clusterDNS, ClusterDomain: "cluster.local", HostResolvConf: host}},
		{name: "default-no-resolv-conf", cfg: DNSConfig{Namespace: "testNS", DNSPolicy: v1.DNSDefault}},
		{name: "default-no-resolv-conf-dual-stack-node", cfg: DNSConfig{Namespace: "testNS", DNSPolicy: v1.DNSDefault, NodeIPs: []net.IP{net.ParseIP("192.0.2.2"), net.ParseIP("2001:db8::2")}}},
		{name: "default-empty-resolv-conf", cfg: DNSConfig{Namespace: "testNS", DNSPolicy: v1.DNSDefault, HostResolvConf: []byte{}}},
		{name: "none", cfg: DNSConfig{Namespace: "testNS", DNSPolicy: v1.DNSNone, ClusterDNS: clusterDNS, ClusterDomain: "cluster.local", HostResolvConf: host}},
		{name: "none-dns-config", cfg: DNSConfig{Namespace: "testNS", DNSPolicy: v1.DNSNone, ClusterDNS: clusterDNS, HostResolvConf: host, PodDNSConfig: merge}},
		{name: "cluster-first-dns-config", cfg: DNSConfig{Namespace: "testNS", DNSPolicy: v1.DNSClusterFirst, ClusterDNS: clusterDNS, ClusterDomain: "cluster.local", HostResolvConf: host, PodDNSConfig: merge}},
		{name: "cluster-first-with-host-net-dns-config", cfg: DNSConfig{Namespace: "testNS", DNSPolicy: v1.DNSClusterFirstWithHostNet, HostNetwork: true, ClusterDNS: clusterDNS, ClusterDomain: "cluster.local", HostResolvConf: host, PodDNSConfig: merge}},
		{name: "default-dns-config", cfg: DNSConfig{Namespace: "testNS", DNSPolicy: v1.DNSDefault, HostResolvConf: host, PodDNSConfig: merge}},
		{name: "dns-config-duplicates", cfg: DNSConfig{Namespace: "testNS", DNSPolicy: v1.DNSClusterFirst, ClusterDNS: clusterDNS, ClusterDomain: "cluster.local", HostResolvConf: host,
			PodDNSConfig: &v1.PodDNSConfig{Nameservers: []string{"10.96.0.10"}, Searches: []string{"svc.cluster.local", "host.domain"}, Options: []v1.PodDNSConfigOption{{Name: "ndots", Value: &ndots3}}}}},
		{name: "limit-nameservers", cfg: DNSConfig{Namespace: "testNS", DNSPolicy: v1.DNSClusterFirst, ClusterDNS: clusterDNS, ClusterDomain: "cluster.local", HostResolvConf: host,
			PodDNSConfig: &v1.PodDNSConfig{Nameservers: []string{"10.0.0.1", "10.0.0.2", "10.0.0.3"}}}, wantWarnings: []string{ReasonDNSConfigForming}},
		{name: "limit-search-count", cfg: DNSConfig{Namespace: "testNS", DNSPolicy: v1.DNSNone, PodDNSConfig: &v1.PodDNSConfig{Nameservers: []string{"10.0.0.1"}, Searches: manySearches}}, wantWarnings: []string{ReasonDNSConfigForming}},
		{name: "limit-search-length", cfg: DNSConfig{Namespace: "testNS", DNSPolicy: v1.DNSNone, PodDNSConfig: &v1.PodDNSConfig{Nameservers: []string{"10.0.0.1"}, Searches: longSearches}}, wantWarnings: []string{ReasonDNSConfigForming}},
		{name: "host-search-limits", cfg: DNSConfig{Namespace: "testNS", DNSPolicy: v1.DNSClusterFirst, ClusterDNS: clusterDNS, ClusterDomain: "cluster.local",
			HostResolvConf: []byte("nameserver 8.8.8.8\nsearch " + strings.Join(manySearches, " ") + "\n")}, wantWarnings: []string{ReasonDNSConfigForming}},
		{name: "invalid-policy", cfg: DNSConfig{Namespace: "testNS", DNSPolicy: "Bogus", ClusterDNS: clusterDNS, ClusterDomain: "cluster.local", HostResolvConf: host}, wantWarnings: []string{ReasonInvalidDNSPolicy}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := PodDNS(tt.cfg)
			if err != nil {
				t.Fatalf("PodDNS: %v", err)
			}
			var reasons []string
			for _, w := range d.Warnings {
				reasons = append(reasons, w.Reason)
			}
			if !slices.Equal(reasons, tt.wantWarnings) {
				t.Errorf("warnings = %+v, want reasons %v", d.Warnings, tt.wantWarnings)
			}
			if len(d.Nameservers) > maxDNSNameservers || len(d.Searches) > maxDNSSearchPaths || len(strings.Join(d.Searches, " ")) > maxDNSSearchListChars {
				t.Errorf("limits exceeded: %d nameservers, %d searches", len(d.Nameservers), len(d.Searches))
			}
			got, err := ResolvConf(tt.cfg)
			if err != nil {
				t.Fatalf("ResolvConf: %v", err)
			}
			golden.Check(t, "resolv/"+tt.name+".conf", got)
		})
	}
}

func TestResolvConfBadHostFile(t *testing.T) {
	_, err := ResolvConf(DNSConfig{DNSPolicy: v1.DNSDefault, HostResolvConf: []byte("nameserver\n")})
	if err == nil || !strings.Contains(err.Error(), "nameserver list is empty") {
		t.Fatalf("err = %v, want nameserver list is empty", err)
	}
}
