package netpol

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	v1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/knftables"
)

// TableName is the nftables table (family inet) the policies are
// enforced in.
const TableName = "pocketkube-netpol"

// Names of the base chains and verdict maps in the table.
const (
	forwardChain = "forward"
	inputChain   = "input"
	ingressMapV4 = "ingress-v4"
	ingressMapV6 = "ingress-v6"
	egressMapV4  = "egress-v4"
	egressMapV6  = "egress-v6"
)

// state is what the rules are compiled from: every pod, namespace and
// policy of the cluster, and the node whose pods the rules protect.
type state struct {
	nodeName   string
	pods       []*v1.Pod
	namespaces []*v1.Namespace
	policies   []*networkingv1.NetworkPolicy
}

// direction is a policy's side: ingress checks a packet's source against
// the rule's peers and its destination port on the protected pod; egress
// checks its destination.
type direction int

const (
	ingress direction = iota
	egress
)

// peerField is the packet field a peer is matched on.
func (d direction) peerField() string {
	if d == ingress {
		return "saddr"
	}
	return "daddr"
}

func (d direction) String() string {
	if d == ingress {
		return "ingress"
	}
	return "egress"
}

// compile adds to tx the whole table for s: it deletes the table there is
// and writes it again, so the transaction replaces it atomically.
func compile(tx *knftables.Transaction, s state) {
	tx.Add(&knftables.Table{Comment: knftables.PtrTo("NetworkPolicies of the node's pods")})
	tx.Delete(&knftables.Table{})
	tx.Add(&knftables.Table{Comment: knftables.PtrTo("NetworkPolicies of the node's pods")})

	for _, m := range []struct{ name, typ string }{
		{ingressMapV4, "ipv4_addr : verdict"}, {ingressMapV6, "ipv6_addr : verdict"},
		{egressMapV4, "ipv4_addr : verdict"}, {egressMapV6, "ipv6_addr : verdict"},
	} {
		tx.Add(&knftables.Map{Name: m.name, Type: m.typ})
	}
	tx.Add(&knftables.Chain{
		Name: forwardChain, Type: knftables.PtrTo(knftables.FilterType),
		Hook: knftables.PtrTo(knftables.ForwardHook), Priority: knftables.PtrTo(knftables.FilterPriority),
	})
	tx.Add(&knftables.Chain{
		Name: inputChain, Type: knftables.PtrTo(knftables.FilterType),
		Hook: knftables.PtrTo(knftables.InputHook), Priority: knftables.PtrTo(knftables.FilterPriority),
	})
	for _, chain := range []string{forwardChain, inputChain} {
		tx.Add(&knftables.Rule{Chain: chain, Rule: "ct state established,related accept"})
		// IPv6 needs neighbor discovery, as in kube-network-policies.
		tx.Add(&knftables.Rule{Chain: chain, Rule: "icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-solicit, nd-router-advert } accept"})
	}
	// Ingress first, by destination; then egress, by source: a pod's
	// chain returns when it allows, so both are checked.
	tx.Add(&knftables.Rule{Chain: forwardChain, Rule: "ip daddr vmap @" + ingressMapV4})
	tx.Add(&knftables.Rule{Chain: forwardChain, Rule: "ip6 daddr vmap @" + ingressMapV6})
	for _, chain := range []string{forwardChain, inputChain} {
		tx.Add(&knftables.Rule{Chain: chain, Rule: "ip saddr vmap @" + egressMapV4})
		tx.Add(&knftables.Rule{Chain: chain, Rule: "ip6 saddr vmap @" + egressMapV6})
	}

	c := newCompiler(s)
	for _, pod := range c.pods {
		if pod.Spec.NodeName != s.nodeName {
			continue
		}
		for _, d := range []direction{ingress, egress} {
			policies := c.isolating(pod, d)
			if len(policies) == 0 {
				continue
			}
			chain := podChain(pod, d)
			tx.Add(&knftables.Chain{Name: chain, Comment: knftables.PtrTo(fmt.Sprintf("%s of pod %s/%s", d, pod.Namespace, pod.Name))})
			for _, p := range policies {
				for _, rule := range c.policyRules(pod, p, d) {
					tx.Add(&knftables.Rule{Chain: chain, Rule: join(rule, "return")})
				}
			}
			tx.Add(&knftables.Rule{Chain: chain, Rule: "drop"})
			for _, ip := range podIPs(pod) {
				tx.Add(&knftables.Element{Map: verdictMap(d, ip), Key: []string{ip.String()}, Value: []string{"jump " + chain}})
			}
		}
	}
}

// verdictMap names the map that sends a pod's packets on side d to its
// chain, by the family of the pod's address ip.
func verdictMap(d direction, ip netip.Addr) string {
	switch {
	case d == ingress && ip.Is4():
		return ingressMapV4
	case d == ingress:
		return ingressMapV6
	case ip.Is4():
		return egressMapV4
	default:
		return egressMapV6
	}
}

// podChain names the chain of a pod's ingress or egress rules: readable
// when the names fit nftables' limit of 255 characters, the pod's UID
// otherwise.
func podChain(pod *v1.Pod, d direction) string {
	name := d.String() + "-" + pod.Namespace + "/" + pod.Name
	if len(name) > 250 {
		name = d.String() + "-" + string(pod.UID)
	}
	return name
}

// compiler answers the questions the rules ask about s.
type compiler struct {
	pods       []*v1.Pod // the pods with an address, sorted by namespace/name
	namespaces map[string]labels.Set
	policies   []*networkingv1.NetworkPolicy // sorted by namespace/name
}

func newCompiler(s state) *compiler {
	c := &compiler{namespaces: map[string]labels.Set{}}
	for _, pod := range s.pods {
		// hostNetwork pods have the node's address: policies neither
		// select them nor match them, as upstream documents.
		if pod.Spec.HostNetwork || pod.Status.Phase == v1.PodSucceeded || pod.Status.Phase == v1.PodFailed || len(podIPs(pod)) == 0 {
			continue
		}
		c.pods = append(c.pods, pod)
	}
	byName := func(a, b metav1.Object) int {
		return cmp.Or(cmp.Compare(a.GetNamespace(), b.GetNamespace()), cmp.Compare(a.GetName(), b.GetName()))
	}
	slices.SortFunc(c.pods, func(a, b *v1.Pod) int { return byName(a, b) })
	for _, ns := range s.namespaces {
		c.namespaces[ns.Name] = labels.Set(ns.Labels)
	}
	c.policies = slices.Clone(s.policies)
	slices.SortFunc(c.policies, func(a, b *networkingv1.NetworkPolicy) int { return byName(a, b) })
	return c
}

// podIPs are a pod's addresses, as its status gives them.
func podIPs(pod *v1.Pod) []netip.Addr {
	var out []netip.Addr
	for _, ip := range pod.Status.PodIPs {
		if a, err := netip.ParseAddr(ip.IP); err == nil {
			out = append(out, a.Unmap())
		}
	}
	if len(out) == 0 && pod.Status.PodIP != "" {
		if a, err := netip.ParseAddr(pod.Status.PodIP); err == nil {
			out = append(out, a.Unmap())
		}
	}
	return out
}

// hasType says whether p is about direction d, from its policyTypes, which
// the API server defaults (Ingress, plus Egress when it has egress rules).
func hasType(p *networkingv1.NetworkPolicy, d direction) bool {
	if len(p.Spec.PolicyTypes) == 0 {
		return d == ingress || len(p.Spec.Egress) > 0
	}
	want := networkingv1.PolicyTypeIngress
	if d == egress {
		want = networkingv1.PolicyTypeEgress
	}
	return slices.Contains(p.Spec.PolicyTypes, want)
}

// isolating returns the policies that select pod for direction d; none
// means the pod is not isolated on that side.
func (c *compiler) isolating(pod *v1.Pod, d direction) []*networkingv1.NetworkPolicy {
	var out []*networkingv1.NetworkPolicy
	for _, p := range c.policies {
		if p.Namespace != pod.Namespace || !hasType(p, d) {
			continue
		}
		sel, err := metav1.LabelSelectorAsSelector(&p.Spec.PodSelector)
		if err != nil || !sel.Matches(labels.Set(pod.Labels)) {
			continue // the API server validates selectors; a bad one selects nothing
		}
		out = append(out, p)
	}
	return out
}

// peerPods returns the pods a podSelector/namespaceSelector peer of a
// policy in namespace ns selects.
func (c *compiler) peerPods(ns string, peer networkingv1.NetworkPolicyPeer) []*v1.Pod {
	podSel := labels.Everything()
	if peer.PodSelector != nil {
		s, err := metav1.LabelSelectorAsSelector(peer.PodSelector)
		if err != nil {
			return nil
		}
		podSel = s
	}
	inNamespace := func(name string) bool { return name == ns }
	if peer.NamespaceSelector != nil {
		nsSel, err := metav1.LabelSelectorAsSelector(peer.NamespaceSelector)
		if err != nil {
			return nil
		}
		inNamespace = func(name string) bool {
			l, ok := c.namespaces[name]
			return ok && nsSel.Matches(l)
		}
	}
	var out []*v1.Pod
	for _, pod := range c.pods {
		if inNamespace(pod.Namespace) && podSel.Matches(labels.Set(pod.Labels)) {
			out = append(out, pod)
		}
	}
	return out
}

// family returns nftables' payload keyword for a's family.
func family(a netip.Addr) string {
	if a.Is4() {
		return "ip"
	}
	return "ip6"
}

// addrMatches returns the matches ("ip saddr { ... }") of a set of
// addresses on field, one per family that has any.
func addrMatches(field string, addrs []netip.Addr) []string {
	var out []string
	for _, fam := range []string{"ip", "ip6"} {
		var elems []string
		for _, a := range addrs {
			if family(a) == fam {
				elems = append(elems, a.String())
			}
		}
		if len(elems) > 0 {
			out = append(out, fmt.Sprintf("%s %s { %s }", fam, field, strings.Join(elems, ", ")))
		}
	}
	return out
}

// ipBlockMatch returns the match of an ipBlock peer on field: in CIDR and
// in none of Except. The API server validates the block.
func ipBlockMatch(field string, b *networkingv1.IPBlock) (string, bool) {
	block, err := netip.ParsePrefix(b.CIDR)
	if err != nil {
		return "", false
	}
	block = block.Masked()
	fam := family(block.Addr())
	var except []string
	for _, e := range b.Except {
		p, err := netip.ParsePrefix(e)
		if err != nil || family(p.Addr()) != fam {
			continue
		}
		except = append(except, p.Masked().String())
	}
	m := fmt.Sprintf("%s %s %s", fam, field, block)
	if len(except) > 0 {
		m = fmt.Sprintf("%s %s != { %s } %s", fam, field, strings.Join(except, ", "), m)
	}
	return m, true
}

// inBlock says whether a is in an ipBlock peer.
func inBlock(a netip.Addr, b *networkingv1.IPBlock) bool {
	block, err := netip.ParsePrefix(b.CIDR)
	if err != nil || !block.Contains(a) {
		return false
	}
	for _, e := range b.Except {
		if p, err := netip.ParsePrefix(e); err == nil && p.Contains(a) {
			return false
		}
	}
	return true
}

// protocol returns a port's protocol as nftables names it; TCP when unset.
func protocol(p networkingv1.NetworkPolicyPort) string {
	if p.Protocol == nil {
		return "tcp"
	}
	return strings.ToLower(string(*p.Protocol))
}

// portMatch returns the match of a numeric or absent port.
func portMatch(p networkingv1.NetworkPolicyPort) string {
	m := "meta l4proto " + protocol(p)
	if p.Port == nil {
		return m
	}
	if p.EndPort != nil && *p.EndPort > p.Port.IntVal {
		return fmt.Sprintf("%s th dport %d-%d", m, p.Port.IntVal, *p.EndPort)
	}
	return fmt.Sprintf("%s th dport %d", m, p.Port.IntVal)
}

// namedPort returns the numbers a pod's containers give the port name
// with protocol proto.
func namedPort(pod *v1.Pod, name, proto string) []int32 {
	var out []int32
	for _, c := range pod.Spec.Containers {
		for _, cp := range c.Ports {
			cpProto := strings.ToLower(string(cmp.Or(cp.Protocol, v1.ProtocolTCP)))
			if cp.Name == name && cpProto == proto && !slices.Contains(out, cp.ContainerPort) {
				out = append(out, cp.ContainerPort)
			}
		}
	}
	return out
}

// policyRules returns the matches of what p allows pod on side d, one
// nftables match per (peer, port) pair; a rule without peers or ports
// matches every peer or port, so an empty match allows everything.
func (c *compiler) policyRules(pod *v1.Pod, p *networkingv1.NetworkPolicy, d direction) []string {
	type rule struct {
		peers []networkingv1.NetworkPolicyPeer
		ports []networkingv1.NetworkPolicyPort
	}
	var rules []rule
	if d == ingress {
		for _, r := range p.Spec.Ingress {
			rules = append(rules, rule{r.From, r.Ports})
		}
	} else {
		for _, r := range p.Spec.Egress {
			rules = append(rules, rule{r.To, r.Ports})
		}
	}
	field := d.peerField()
	var out []string
	for _, r := range rules {
		// peer is one peer of the rule: its match, and the pods it
		// covers for named ports of egress rules (nil for "any pod").
		type peer struct {
			match string
			pods  func() []*v1.Pod
		}
		var peers []peer
		if len(r.peers) == 0 {
			peers = append(peers, peer{"", func() []*v1.Pod { return c.pods }})
		}
		for _, pr := range r.peers {
			if pr.IPBlock != nil {
				if m, ok := ipBlockMatch(field, pr.IPBlock); ok {
					b := pr.IPBlock
					peers = append(peers, peer{m, func() []*v1.Pod {
						var in []*v1.Pod
						for _, q := range c.pods {
							if slices.ContainsFunc(podIPs(q), func(a netip.Addr) bool { return inBlock(a, b) }) {
								in = append(in, q)
							}
						}
						return in
					}})
				}
				continue
			}
			pods := c.peerPods(p.Namespace, pr)
			var addrs []netip.Addr
			for _, q := range pods {
				addrs = append(addrs, podIPs(q)...)
			}
			for _, m := range addrMatches(field, addrs) {
				peers = append(peers, peer{m, func() []*v1.Pod { return pods }})
			}
		}
		for _, pe := range peers {
			if len(r.ports) == 0 {
				out = append(out, pe.match)
				continue
			}
			for _, port := range r.ports {
				if port.Port == nil || port.Port.Type == intstr.Int {
					out = append(out, join(pe.match, portMatch(port)))
					continue
				}
				proto := protocol(port)
				if d == ingress {
					// The name is the protected pod's.
					for _, n := range namedPort(pod, port.Port.StrVal, proto) {
						out = append(out, join(pe.match, fmt.Sprintf("meta l4proto %s th dport %d", proto, n)))
					}
					continue
				}
				// The name is the destination's: one match per pod of
				// the peer, on its own address (which the peer's
				// match already covers).
				for _, q := range pe.pods() {
					for _, n := range namedPort(q, port.Port.StrVal, proto) {
						for _, m := range addrMatches(field, podIPs(q)) {
							out = append(out, join(m, fmt.Sprintf("meta l4proto %s th dport %d", proto, n)))
						}
					}
				}
			}
		}
	}
	// A pod in two peers of a rule gives the same match twice.
	seen := map[string]bool{}
	return slices.DeleteFunc(out, func(m string) bool {
		dup := seen[m]
		seen[m] = true
		return dup
	})
}

// join joins the non-empty matches with spaces.
func join(matches ...string) string {
	return strings.Join(slices.DeleteFunc(matches, func(s string) bool { return s == "" }), " ")
}
