package netpol

import (
	"context"
	"slices"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/knftables"
)

func pod(ns, name, node, ip string, labels map[string]string, ports ...v1.ContainerPort) *v1.Pod {
	return &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels, UID: types.UID("uid-" + name)},
		Spec:       v1.PodSpec{NodeName: node, Containers: []v1.Container{{Name: "c", Ports: ports}}},
		Status:     v1.PodStatus{Phase: v1.PodRunning, PodIPs: []v1.PodIP{{IP: ip}}},
	}
}

func namespace(name string, labels map[string]string) *v1.Namespace {
	return &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
}

// rules compiles s with knftables' fake and returns each chain's rules
// and the verdict maps' elements, "map key : verdict".
func rules(t *testing.T, s state) (map[string][]string, []string) {
	t.Helper()
	fake := knftables.NewFake(knftables.InetFamily, TableName)
	for range 2 { // the second run replaces the table the first wrote
		tx := fake.NewTransaction()
		compile(tx, s)
		if err := fake.Run(context.Background(), tx); err != nil {
			t.Fatalf("run: %v\n%s", err, tx)
		}
	}
	chains := map[string][]string{}
	for name, ch := range fake.Table.Chains {
		for _, r := range ch.Rules {
			chains[name] = append(chains[name], r.Rule)
		}
	}
	var elems []string
	for name, m := range fake.Table.Maps {
		for _, e := range m.Elements {
			elems = append(elems, name+" "+strings.Join(e.Key, " . ")+" : "+strings.Join(e.Value, " "))
		}
	}
	slices.Sort(elems)
	return chains, elems
}

func TestCompile(t *testing.T) {
	web := map[string]string{"app": "web"}
	tcp, udp := v1.ProtocolTCP, v1.ProtocolUDP
	port := func(p intstr.IntOrString) *intstr.IntOrString { return &p }
	end := int32(8090)
	pods := []*v1.Pod{
		pod("x", "web", "n1", "10.244.0.2", web, v1.ContainerPort{Name: "http", ContainerPort: 8080}),
		pod("x", "client", "n1", "10.244.0.3", map[string]string{"app": "client"}),
		pod("y", "client", "n2", "10.244.1.3", map[string]string{"app": "client"}),
		pod("y", "db", "n2", "10.244.1.4", map[string]string{"app": "db"}, v1.ContainerPort{Name: "sql", ContainerPort: 5432}),
		pod("x", "v6", "n1", "fd00::5", web),
	}
	hostNet := pod("x", "host", "n1", "192.0.2.1", web)
	hostNet.Spec.HostNetwork = true
	done := pod("x", "done", "n1", "10.244.0.9", web)
	done.Status.Phase = v1.PodSucceeded
	pods = append(pods, hostNet, done)
	s := state{
		nodeName:   "n1",
		pods:       pods,
		namespaces: []*v1.Namespace{namespace("x", map[string]string{"team": "x"}), namespace("y", map[string]string{"team": "y"})},
		policies: []*networkingv1.NetworkPolicy{
			{
				ObjectMeta: metav1.ObjectMeta{Namespace: "x", Name: "web"},
				Spec: networkingv1.NetworkPolicySpec{
					PodSelector: metav1.LabelSelector{MatchLabels: web},
					PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress},
					Ingress: []networkingv1.NetworkPolicyIngressRule{
						{
							From: []networkingv1.NetworkPolicyPeer{
								{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "client"}}},
								{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "y"}}, PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "client"}}},
							},
							Ports: []networkingv1.NetworkPolicyPort{{Protocol: &tcp, Port: port(intstr.FromString("http"))}},
						},
						{
							From:  []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: "192.0.2.0/24", Except: []string{"192.0.2.128/25", "fd00::/8"}}}},
							Ports: []networkingv1.NetworkPolicyPort{{Protocol: &tcp, Port: port(intstr.FromInt32(8000)), EndPort: &end}},
						},
					},
					Egress: []networkingv1.NetworkPolicyEgressRule{
						{Ports: []networkingv1.NetworkPolicyPort{{Protocol: &udp, Port: port(intstr.FromInt32(53))}}},
						{
							To:    []networkingv1.NetworkPolicyPeer{{NamespaceSelector: &metav1.LabelSelector{}}},
							Ports: []networkingv1.NetworkPolicyPort{{Port: port(intstr.FromString("sql"))}},
						},
					},
				},
			},
			// Another namespace's policy selects nothing in x.
			{
				ObjectMeta: metav1.ObjectMeta{Namespace: "y", Name: "deny"},
				Spec:       networkingv1.NetworkPolicySpec{PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}},
			},
		},
	}
	chains, elems := rules(t, s)

	wantElems := []string{
		"egress-v4 10.244.0.2 : jump egress-x/web",
		"egress-v6 fd00::5 : jump egress-x/v6",
		"ingress-v4 10.244.0.2 : jump ingress-x/web",
		"ingress-v6 fd00::5 : jump ingress-x/v6",
	}
	if !slices.Equal(elems, wantElems) {
		t.Errorf("map elements:\n%s\nwant:\n%s", strings.Join(elems, "\n"), strings.Join(wantElems, "\n"))
	}
	want := map[string][]string{
		"ingress-x/web": {
			// x's client, and y's (both selectors); the named port is
			// web's own.
			"ip saddr { 10.244.0.3 } meta l4proto tcp th dport 8080 return",
			"ip saddr { 10.244.1.3 } meta l4proto tcp th dport 8080 return",
			"ip saddr != { 192.0.2.128/25 } ip saddr 192.0.2.0/24 meta l4proto tcp th dport 8000-8090 return",
			"drop",
		},
		"egress-x/web": {
			"meta l4proto udp th dport 53 return",
			// "sql" is db's port, in any namespace.
			"ip daddr { 10.244.1.4 } meta l4proto tcp th dport 5432 return",
			"drop",
		},
		// v6 has no "http" port: the first rule allows it nothing.
		"ingress-x/v6": {
			"ip saddr != { 192.0.2.128/25 } ip saddr 192.0.2.0/24 meta l4proto tcp th dport 8000-8090 return",
			"drop",
		},
	}
	for name, w := range want {
		if got := chains[name]; !slices.Equal(got, w) {
			t.Errorf("chain %s:\n%s\nwant:\n%s", name, strings.Join(got, "\n"), strings.Join(w, "\n"))
		}
	}
	if _, ok := chains["ingress-y/client"]; ok {
		t.Errorf("a chain for y/client, which runs on another node")
	}
	if got := chains[forwardChain]; len(got) != 6 || got[0] != "ct state established,related accept" {
		t.Errorf("forward chain:\n%s", strings.Join(got, "\n"))
	}
}

func TestCompileNoPolicies(t *testing.T) {
	chains, elems := rules(t, state{nodeName: "n1", pods: []*v1.Pod{pod("x", "a", "n1", "10.244.0.2", nil)}})
	if len(elems) != 0 {
		t.Errorf("map elements %q, want none: no pod is isolated", elems)
	}
	for name := range chains {
		if name != forwardChain && name != inputChain {
			t.Errorf("chain %s, want only the base chains", name)
		}
	}
}

// TestCompileAllowAll checks that a rule with neither peers nor ports
// allows everything, and that a peer selecting no pod allows nothing.
func TestCompileAllowAll(t *testing.T) {
	np := func(name string, from []networkingv1.NetworkPolicyPeer) *networkingv1.NetworkPolicy {
		return &networkingv1.NetworkPolicy{
			ObjectMeta: metav1.ObjectMeta{Namespace: "x", Name: name},
			Spec: networkingv1.NetworkPolicySpec{
				PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
				Ingress:     []networkingv1.NetworkPolicyIngressRule{{From: from}},
			},
		}
	}
	s := state{
		nodeName: "n1",
		pods:     []*v1.Pod{pod("x", "a", "n1", "10.244.0.2", nil)},
		policies: []*networkingv1.NetworkPolicy{
			np("all", nil),
			np("nobody", []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"no": "such"}}}}),
		},
	}
	chains, _ := rules(t, s)
	if got, want := chains["ingress-x/a"], []string{"return", "drop"}; !slices.Equal(got, want) {
		t.Errorf("ingress-x/a = %q, want %q", got, want)
	}
}
