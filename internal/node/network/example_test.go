package network_test

import (
	"context"
	"fmt"
	"net"
	"os"

	v1 "k8s.io/api/core/v1"

	"github.com/pocketkube/pocketkube/internal/node/network"
)

// A pod's network is set up before its containers start and torn down after
// they stopped; the containers join Sandbox.NetNS.
func ExampleManager() {
	m, err := network.New(context.Background(), network.Config{StateDir: "/var/lib/pocketkube/network", PodCIDR: "10.244.0.0/24"})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return
	}
	ctx := context.Background()
	sb, err := m.Setup(ctx, network.Pod{Namespace: "default", Name: "web", UID: "0b5d…",
		Ports: []network.PortMapping{{HostPort: 8080, ContainerPort: 80, Protocol: "TCP"}}})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return
	}
	fmt.Println(sb.NetNS, sb.IPs)
	_ = m.Teardown(ctx, "0b5d…")
}

func ExampleResolvConf() {
	conf, err := network.ResolvConf(network.DNSConfig{
		Namespace:      "default",
		DNSPolicy:      v1.DNSClusterFirst,
		ClusterDNS:     []net.IP{net.ParseIP("10.96.0.10")},
		ClusterDomain:  "cluster.local",
		HostResolvConf: []byte("nameserver 192.0.2.53\nsearch example.com\n"),
	})
	if err != nil {
		panic(err)
	}
	fmt.Print(string(conf))
	// Output:
	// search default.svc.cluster.local svc.cluster.local cluster.local example.com
	// nameserver 10.96.0.10
	// options ndots:5
}

func ExampleHostsFile() {
	fmt.Print(string(network.HostsFile(network.HostsConfig{
		PodIPs:     []string{"10.244.0.5"},
		Hostname:   "web-0",
		HostDomain: "web.default.svc.cluster.local",
	})))
	// Output:
	// # Kubernetes-managed hosts file.
	// 127.0.0.1	localhost
	// ::1	localhost ip6-localhost ip6-loopback
	// fe00::0	ip6-localnet
	// fe00::0	ip6-mcastprefix
	// fe00::1	ip6-allnodes
	// fe00::2	ip6-allrouters
	// 10.244.0.5	web-0.web.default.svc.cluster.local	web-0
}
