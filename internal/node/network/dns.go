package network

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"strings"

	v1 "k8s.io/api/core/v1"
	utilvalidation "k8s.io/apimachinery/pkg/util/validation"
)

// DNS limits, as the API server validates them and kubelet enforces them
// (pkg/apis/core/validation: MaxDNSNameservers, MaxDNSSearchPaths,
// MaxDNSSearchListChars).
const (
	maxDNSNameservers     = 3
	maxDNSSearchPaths     = 32
	maxDNSSearchListChars = 2048
	maxResolvConfLength   = 10 << 20
)

// Reasons of the warnings kubelet records as events while forming a pod's
// DNS configuration.
const (
	ReasonMissingClusterDNS = "MissingClusterDNS"
	ReasonDNSConfigForming  = "DNSConfigForming"
	// ReasonInvalidDNSPolicy is logged, not recorded, by kubelet.
	ReasonInvalidDNSPolicy = "InvalidDNSPolicy"
)

// DNSConfig is the input of kubelet's DNS configurer for one pod.
type DNSConfig struct {
	// Namespace of the pod, for the ClusterFirst search list.
	Namespace string
	// DNSPolicy is spec.dnsPolicy; empty means ClusterFirst.
	DNSPolicy v1.DNSPolicy
	// HostNetwork is spec.hostNetwork: ClusterFirst means Default then.
	HostNetwork bool
	// PodDNSConfig is spec.dnsConfig, merged over the policy's result.
	PodDNSConfig *v1.PodDNSConfig
	// ClusterDNS are the cluster DNS server addresses (kubelet --cluster-dns),
	// e.g. 10.96.0.10. With none, ClusterFirst falls back to Default.
	ClusterDNS []net.IP
	// ClusterDomain is the cluster's DNS domain (kubelet --cluster-domain),
	// e.g. "cluster.local". Empty adds no cluster search domains.
	ClusterDomain string
	// HostResolvConf is the content of the node's resolv.conf (kubelet
	// --resolv-conf, /etc/resolv.conf by default): the base of every policy
	// but None. nil means kubelet's --resolv-conf="": no host resolver, so
	// Default uses a nameserver on the node (127.0.0.1 or ::1 per NodeIPs)
	// and search ".".
	HostResolvConf []byte
	// NodeIPs are only used when HostResolvConf is nil.
	NodeIPs []net.IP
}

// DNS is a pod's resolver configuration.
type DNS struct {
	Nameservers []string
	Searches    []string
	Options     []string
	// Warnings are what kubelet records as events (or logs) on the pod while
	// forming this configuration; the caller records them.
	Warnings []DNSWarning
}

// DNSWarning is one warning of PodDNS.
type DNSWarning struct {
	Reason  string
	Message string
}

// ResolvConf returns the pod's /etc/resolv.conf: PodDNS rendered as a CRI
// runtime (containerd) writes it.
func ResolvConf(cfg DNSConfig) ([]byte, error) {
	d, err := PodDNS(cfg)
	if err != nil {
		return nil, err
	}
	return d.ResolvConf(), nil
}

// ResolvConf renders d as containerd does: a search line, one nameserver
// line per server, an options line; empty parts are left out.
func (d *DNS) ResolvConf() []byte {
	var buf bytes.Buffer
	if len(d.Searches) > 0 {
		fmt.Fprintf(&buf, "search %s\n", strings.Join(d.Searches, " "))
	}
	for _, ns := range d.Nameservers {
		fmt.Fprintf(&buf, "nameserver %s\n", ns)
	}
	if len(d.Options) > 0 {
		fmt.Fprintf(&buf, "options %s\n", strings.Join(d.Options, " "))
	}
	return buf.Bytes()
}

type podDNSType int

const (
	podDNSCluster podDNSType = iota
	podDNSHost
	podDNSNone
)

// PodDNS computes the pod's resolver configuration as kubelet's
// dns.Configurer.GetPodDNS does. One deliberate difference: where kubelet
// builds option lists through Go maps (random order), PodDNS keeps the order
// in which options first appear, so output is stable.
func PodDNS(cfg DNSConfig) (*DNS, error) {
	d := &DNS{}
	if cfg.HostResolvConf != nil {
		servers, searches, options, err := parseResolvConf(cfg.HostResolvConf)
		if err != nil {
			return nil, fmt.Errorf("parse host resolv.conf: %w", err)
		}
		d.Nameservers, d.Searches, d.Options = servers, searches, options
	}

	dnsType, err := podDNSTypeOf(cfg.DNSPolicy, cfg.HostNetwork)
	if err != nil {
		d.warn(ReasonInvalidDNSPolicy, err.Error()+"; falling back to ClusterFirst")
	}
	switch dnsType {
	case podDNSNone:
		d.Nameservers, d.Searches, d.Options = nil, nil, nil
	case podDNSCluster:
		if len(cfg.ClusterDNS) != 0 {
			// The cluster DNS server is the only nameserver: it forwards what
			// it cannot answer itself.
			d.Nameservers = nil
			for _, ip := range cfg.ClusterDNS {
				d.Nameservers = append(d.Nameservers, ip.String())
			}
			d.Searches = clusterFirstSearches(d.Searches, cfg.Namespace, cfg.ClusterDomain)
			d.Options = []string{"ndots:5"}
			break
		}
		d.warn(ReasonMissingClusterDNS, fmt.Sprintf("kubelet does not have ClusterDNS IP configured and cannot create Pod using %q policy. Falling back to %q policy.", v1.DNSClusterFirst, v1.DNSDefault))
		fallthrough
	case podDNSHost:
		if cfg.HostResolvConf == nil {
			// Without a host resolv.conf, resolve through a server on the
			// node, which is what libc does when no nameserver is set.
			for _, ip := range cfg.NodeIPs {
				if ip.To4() == nil {
					d.Nameservers = append(d.Nameservers, "::1")
				} else {
					d.Nameservers = append(d.Nameservers, "127.0.0.1")
				}
			}
			if len(d.Nameservers) == 0 {
				d.Nameservers = append(d.Nameservers, "127.0.0.1")
			}
			d.Searches = []string{"."}
		}
	}

	if pc := cfg.PodDNSConfig; pc != nil {
		d.Nameservers = omitDuplicates(append(d.Nameservers, pc.Nameservers...))
		d.Searches = omitDuplicates(append(d.Searches, pc.Searches...))
		d.Options = mergeDNSOptions(d.Options, pc.Options)
	}
	d.fitLimits()
	return d, nil
}

func (d *DNS) warn(reason, msg string) {
	d.Warnings = append(d.Warnings, DNSWarning{Reason: reason, Message: msg})
}

func podDNSTypeOf(policy v1.DNSPolicy, hostNetwork bool) (podDNSType, error) {
	switch policy {
	case v1.DNSNone:
		return podDNSNone, nil
	case v1.DNSClusterFirstWithHostNet:
		return podDNSCluster, nil
	case v1.DNSClusterFirst, "":
		if !hostNetwork {
			return podDNSCluster, nil
		}
		return podDNSHost, nil
	case v1.DNSDefault:
		return podDNSHost, nil
	}
	return podDNSCluster, fmt.Errorf("invalid DNSPolicy=%v", policy)
}

func clusterFirstSearches(hostSearch []string, namespace, clusterDomain string) []string {
	if clusterDomain == "" {
		return hostSearch
	}
	cluster := []string{
		fmt.Sprintf("%s.svc.%s", namespace, clusterDomain),
		"svc." + clusterDomain,
		clusterDomain,
	}
	return omitDuplicates(append(cluster, hostSearch...))
}

// fitLimits applies kubelet's formDNSConfigFitsLimits.
func (d *DNS) fitLimits() {
	if len(d.Nameservers) > maxDNSNameservers {
		d.Nameservers = d.Nameservers[:maxDNSNameservers]
		d.warn(ReasonDNSConfigForming, fmt.Sprintf("Nameserver limits were exceeded, some nameservers have been omitted, the applied nameserver line is: %s", strings.Join(d.Nameservers, " ")))
	}

	search := d.Searches
	exceeded := false
	if len(search) > maxDNSSearchPaths {
		search = search[:maxDNSSearchPaths]
		exceeded = true
	}
	// Some resolvers (glibc 2.28) abort() on a search path longer than 255
	// characters, so kubelet drops those.
	kept := make([]string, 0, len(search))
	for _, s := range search {
		if len(s) > utilvalidation.DNS1123SubdomainMaxLength {
			exceeded = true
			continue
		}
		kept = append(kept, s)
	}
	search = kept
	if lineLen := len(strings.Join(search, " ")); lineLen > maxDNSSearchListChars {
		cutNum, cutLen := 0, 0
		for i := len(search) - 1; i >= 0; i-- {
			cutLen += len(search[i]) + 1
			cutNum++
			if lineLen-cutLen <= maxDNSSearchListChars {
				break
			}
		}
		search = search[:len(search)-cutNum]
		exceeded = true
	}
	if exceeded {
		d.warn(ReasonDNSConfigForming, fmt.Sprintf("Search Line limits were exceeded, some search paths have been omitted, the applied search line is: %s", strings.Join(search, " ")))
	}
	d.Searches = search
}

// parseResolvConf parses resolv.conf content as kubelet's parseResolvConf:
// nameservers accumulate, the last search line wins (trailing dots dropped,
// "." ignored), and options accumulate with later ones of the same name
// replacing earlier ones.
func parseResolvConf(content []byte) (nameservers, searches, options []string, err error) {
	if len(content) > maxResolvConfLength {
		return nil, nil, nil, fmt.Errorf("resolv.conf is longer than %d bytes", maxResolvConfLength)
	}
	nameservers, searches, options = []string{}, []string{}, []string{}
	var errs []error
	for _, line := range strings.Split(string(content), "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") {
			continue
		}
		fields := strings.Fields(trimmed)
		if len(fields) == 0 {
			continue
		}
		switch fields[0] {
		case "nameserver":
			if len(fields) >= 2 {
				nameservers = append(nameservers, fields[1])
			} else {
				errs = append(errs, errors.New("nameserver list is empty "))
			}
		case "search":
			searches = []string{}
			for _, s := range fields[1:] {
				if s != "." {
					searches = append(searches, strings.TrimSuffix(s, "."))
				}
			}
		case "options":
			options = appendOptions(options, fields[1:]...)
		}
	}
	return nameservers, searches, options, errors.Join(errs...)
}

func omitDuplicates(strs []string) []string {
	seen := make(map[string]bool, len(strs))
	var ret []string
	for _, s := range strs {
		if !seen[s] {
			ret = append(ret, s)
			seen[s] = true
		}
	}
	return ret
}

// appendOptions adds options ("name" or "name:value"), a later option
// replacing an earlier one of the same name in place.
func appendOptions(options []string, newOptions ...string) []string {
	out := append([]string{}, options...)
	for _, opt := range newOptions {
		name, _, _ := strings.Cut(opt, ":")
		replaced := false
		for i, o := range out {
			if n, _, _ := strings.Cut(o, ":"); n == name {
				out[i], replaced = opt, true
				break
			}
		}
		if !replaced {
			out = append(out, opt)
		}
	}
	return out
}

// mergeDNSOptions merges the pod's dnsConfig options over existing ones.
func mergeDNSOptions(existing []string, podOptions []v1.PodDNSConfigOption) []string {
	var add []string
	for _, op := range podOptions {
		if op.Value != nil && *op.Value != "" {
			add = append(add, op.Name+":"+*op.Value)
		} else {
			add = append(add, op.Name)
		}
	}
	return appendOptions(existing, add...)
}
