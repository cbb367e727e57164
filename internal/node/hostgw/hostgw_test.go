package hostgw

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func node(name string, cidrs []string, addrs ...v1.NodeAddress) *v1.Node {
	n := &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1.NodeSpec{PodCIDRs: cidrs}, Status: v1.NodeStatus{Addresses: addrs}}
	if len(cidrs) > 0 {
		n.Spec.PodCIDR = cidrs[0]
	}
	return n
}

func internal(ip string) v1.NodeAddress { return v1.NodeAddress{Type: v1.NodeInternalIP, Address: ip} }

func TestDesiredRoutes(t *testing.T) {
	r := func(dst, gw, node string) Route {
		return Route{Dst: netip.MustParsePrefix(dst), Gw: netip.MustParseAddr(gw), Node: node}
	}
	tests := []struct {
		name  string
		nodes []*v1.Node
		want  []Route
	}{
		{name: "no other node", nodes: []*v1.Node{node("self", []string{"10.244.0.0/24"}, internal("192.0.2.1"))}},
		{
			name: "one route per other node",
			nodes: []*v1.Node{
				node("self", []string{"10.244.0.0/24"}, internal("192.0.2.1")),
				node("b", []string{"10.244.2.0/24"}, internal("192.0.2.3")),
				node("a", []string{"10.244.1.0/24"}, internal("192.0.2.2")),
			},
			want: []Route{r("10.244.1.0/24", "192.0.2.2", "a"), r("10.244.2.0/24", "192.0.2.3", "b")},
		},
		{name: "no podCIDR yet", nodes: []*v1.Node{node("a", nil, internal("192.0.2.2"))}},
		{name: "no InternalIP", nodes: []*v1.Node{node("a", []string{"10.244.1.0/24"}, v1.NodeAddress{Type: v1.NodeExternalIP, Address: "203.0.113.1"}, v1.NodeAddress{Type: v1.NodeHostName, Address: "a"})}},
		{
			name:  "first InternalIP of the CIDR's family",
			nodes: []*v1.Node{node("a", []string{"10.244.1.0/24", "fd00:10:244:1::/64"}, internal("fd00::2"), internal("192.0.2.2"), internal("192.0.2.9"))},
			want:  []Route{r("10.244.1.0/24", "192.0.2.2", "a"), r("fd00:10:244:1::/64", "fd00::2", "a")},
		},
		{
			name:  "only spec.podCIDR",
			nodes: []*v1.Node{{ObjectMeta: metav1.ObjectMeta{Name: "a"}, Spec: v1.NodeSpec{PodCIDR: "10.244.1.0/24"}, Status: v1.NodeStatus{Addresses: []v1.NodeAddress{internal("192.0.2.2")}}}},
			want:  []Route{r("10.244.1.0/24", "192.0.2.2", "a")},
		},
		{name: "unparsable podCIDR", nodes: []*v1.Node{node("a", []string{"10.244.1.0"}, internal("192.0.2.2"))}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := DesiredRoutes("self", tt.nodes)
			if !slices.Equal(got, tt.want) {
				t.Errorf("DesiredRoutes = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestChainRules(t *testing.T) {
	r := func(dst, gw string) Route {
		return Route{Dst: netip.MustParsePrefix(dst), Gw: netip.MustParseAddr(gw)}
	}
	routes := []Route{
		r("10.244.1.0/24", "192.0.2.3"),
		r("fd00:10:244:1::/64", "fd00::3"), // IPv6: no iptables rule
		r("10.244.2.0/24", "192.0.2.2"),
		r("10.244.3.0/24", "192.0.2.2"), // an address counts once
	}
	got := chainRules(netip.MustParsePrefix("10.244.0.0/16"), gateways(routes))
	want := `*nat
:PK-HOSTGW - [0:0]
-A PK-HOSTGW -d 10.244.0.0/16 -m comment --comment "pod to pod" -j ACCEPT
-A PK-HOSTGW -d 192.0.2.2/32 -m comment --comment "pod to node" -j ACCEPT
-A PK-HOSTGW -d 192.0.2.3/32 -m comment --comment "pod to node" -j ACCEPT
COMMIT
`
	if got != want {
		t.Errorf("chainRules =\n%s\nwant\n%s", got, want)
	}
}

func TestNetlinkRoute(t *testing.T) {
	for _, r := range []Route{
		{Dst: netip.MustParsePrefix("10.244.1.0/24"), Gw: netip.MustParseAddr("192.0.2.2")},
		{Dst: netip.MustParsePrefix("fd00:10:244:1::/64"), Gw: netip.MustParseAddr("fd00::2")},
	} {
		nr := netlinkRoute(r)
		dst, ok := netipPrefix(nr.Dst)
		gw, _ := netip.AddrFromSlice(nr.Gw)
		if !ok || dst != r.Dst || gw != r.Gw || nr.Protocol != RouteProtocol {
			t.Errorf("netlinkRoute(%v) = %v via %v proto %d", r, nr.Dst, nr.Gw, nr.Protocol)
		}
	}
}

func TestJumpSpec(t *testing.T) {
	want := jumpRule(netip.MustParsePrefix("10.244.0.0/16"), "pk0")
	tests := []struct {
		name  string
		rules string
		want  []string
	}{
		{name: "none", rules: "-P POSTROUTING ACCEPT\n-A POSTROUTING -s 10.244.0.0/24 ! -o pk0 -m comment --comment \"pocketkube: masquerade pod traffic\" -j MASQUERADE\n"},
		{
			name: "ours, as iptables -S prints it",
			rules: "-P POSTROUTING ACCEPT\n-A POSTROUTING -s 10.244.0.0/16 ! -o pk0 -m comment --comment \"" + jumpComment + "\" -j PK-HOSTGW\n" +
				"-A POSTROUTING -s 10.244.0.0/24 ! -o pk0 -j MASQUERADE\n",
			want: want,
		},
		{
			name:  "an earlier version's, without the bridge",
			rules: "-A POSTROUTING -s 10.244.0.0/16 -m comment --comment \"" + jumpComment + "\" -j PK-HOSTGW\n",
			want:  []string{"POSTROUTING", "-s", "10.244.0.0/16", "-m", "comment", "--comment", jumpComment, "-j", Chain},
		},
		{name: "another chain", rules: "-A POSTROUTING -j PK-HOSTGW-OTHER\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := jumpSpec(tt.rules); !slices.Equal(got, tt.want) {
				t.Errorf("jumpSpec = %q, want %q", strings.Join(got, "|"), strings.Join(tt.want, "|"))
			}
		})
	}
}
