package network_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"strings"

	v1 "k8s.io/api/core/v1"

	"github.com/pocketkube/pocketkube/internal/node/network"
)

// A pod's network is set up before its containers start and torn down after
// they stopped; the containers join Sandbox.NetNS. Pods with hostPorts list
// them in Pod.Ports. It needs root and the CNI plugins.
func ExampleManager() {
	stateDir, err := os.MkdirTemp("", "network-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(stateDir)
	m, err := network.New(context.Background(), network.Config{StateDir: stateDir, PodCIDR: "10.251.0.0/24", Bridge: "pkexample0"})
	if err != nil {
		panic(err)
	}
	// The bridge stays for the node's next pods; the example removes it.
	defer exec.Command("ip", "link", "del", "pkexample0").Run()
	ctx := context.Background()
	sb, err := m.Setup(ctx, network.Pod{Namespace: "default", Name: "web", UID: "0b5d6e1f"})
	if err != nil {
		panic(err)
	}
	fmt.Println(strings.TrimPrefix(sb.NetNS, stateDir), sb.IPs, sb.Gateway)
	if err := m.Teardown(ctx, "0b5d6e1f"); err != nil {
		panic(err)
	}
	_, err = os.Stat(sb.NetNS)
	fmt.Println("netns removed:", errors.Is(err, fs.ErrNotExist))
	// Output:
	// /netns/0b5d6e1f [10.251.0.2] 10.251.0.1
	// netns removed: true
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
