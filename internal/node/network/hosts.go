package network

import (
	"bytes"
	"fmt"
	"strings"

	v1 "k8s.io/api/core/v1"
	utilvalidation "k8s.io/apimachinery/pkg/util/validation"
)

// The headers kubelet writes (pkg/kubelet/kubelet_pods.go).
const (
	managedHostsHeader                = "# Kubernetes-managed hosts file.\n"
	managedHostsHeaderWithHostNetwork = "# Kubernetes-managed hosts file (host network).\n"
)

// HostsConfig is what kubelet's managed /etc/hosts is made of.
type HostsConfig struct {
	// PodIPs get one "IP hostname" line each, in order.
	PodIPs []string
	// Hostname is the pod's hostname (see PodHostname).
	Hostname string
	// HostDomain is "<subdomain>.<namespace>.svc.<clusterDomain>" when the pod
	// has a subdomain, else empty (see PodHostname).
	HostDomain string
	// HostAliases are appended, one line per entry.
	HostAliases []v1.HostAlias
}

// HostsFile returns the /etc/hosts kubelet writes for a pod that is not on
// the host network (managedHostsFileContent).
func HostsFile(h HostsConfig) []byte {
	var buf bytes.Buffer
	buf.WriteString(managedHostsHeader)
	buf.WriteString("127.0.0.1\tlocalhost\n")
	buf.WriteString("::1\tlocalhost ip6-localhost ip6-loopback\n")
	buf.WriteString("fe00::0\tip6-localnet\n")
	buf.WriteString("fe00::0\tip6-mcastprefix\n")
	buf.WriteString("fe00::1\tip6-allnodes\n")
	buf.WriteString("fe00::2\tip6-allrouters\n")
	for _, ip := range h.PodIPs {
		if h.HostDomain != "" {
			fmt.Fprintf(&buf, "%s\t%s.%s\t%s\n", ip, h.Hostname, h.HostDomain, h.Hostname)
		} else {
			fmt.Fprintf(&buf, "%s\t%s\n", ip, h.Hostname)
		}
	}
	buf.Write(hostsEntriesFromHostAliases(h.HostAliases))
	return buf.Bytes()
}

// HostNetworkHostsFile returns the /etc/hosts kubelet writes for a
// hostNetwork pod: the node's hosts file (hostFile) under a header, plus the
// pod's host aliases (nodeHostsFileContent).
func HostNetworkHostsFile(hostFile []byte, aliases []v1.HostAlias) []byte {
	var buf bytes.Buffer
	buf.WriteString(managedHostsHeaderWithHostNetwork)
	buf.Write(hostFile)
	buf.Write(hostsEntriesFromHostAliases(aliases))
	return buf.Bytes()
}

func hostsEntriesFromHostAliases(aliases []v1.HostAlias) []byte {
	if len(aliases) == 0 {
		return nil
	}
	var buf bytes.Buffer
	buf.WriteString("\n")
	buf.WriteString("# Entries added by HostAliases.\n")
	for _, a := range aliases {
		fmt.Fprintf(&buf, "%s\t%s\n", a.IP, strings.Join(a.Hostnames, "\t"))
	}
	return buf.Bytes()
}

// hostnameMaxLen is the longest hostname kubelet sets (64 bytes with NUL).
const hostnameMaxLen = 63

// PodHostname returns the pod's hostname and host domain as kubelet's
// GeneratePodHostNameAndDomain does: spec.hostnameOverride, else
// spec.hostname, else the pod name, truncated to 63 characters; the domain is
// "<subdomain>.<namespace>.svc.<clusterDomain>" when spec.subdomain is set
// (and no override is). truncated reports a truncation, which kubelet logs.
func PodHostname(pod *v1.Pod, clusterDomain string) (hostname, hostDomain string, truncated bool, err error) {
	if pod.Spec.HostnameOverride != nil {
		hostname = *pod.Spec.HostnameOverride
		if msgs := utilvalidation.IsDNS1123Subdomain(hostname); len(msgs) != 0 {
			return "", "", false, fmt.Errorf("pod HostnameOverride %q is not a valid DNS subdomain: %s", hostname, strings.Join(msgs, ";"))
		}
		hostname, truncated, err = truncateHostname(pod.Name, hostname)
		if err != nil {
			return "", "", false, err
		}
		return hostname, "", truncated, nil
	}
	hostname = pod.Name
	if pod.Spec.Hostname != "" {
		if msgs := utilvalidation.IsDNS1123Label(pod.Spec.Hostname); len(msgs) != 0 {
			return "", "", false, fmt.Errorf("pod Hostname %q is not a valid DNS label: %s", pod.Spec.Hostname, strings.Join(msgs, ";"))
		}
		hostname = pod.Spec.Hostname
	}
	hostname, truncated, err = truncateHostname(pod.Name, hostname)
	if err != nil {
		return "", "", false, err
	}
	if pod.Spec.Subdomain != "" {
		if msgs := utilvalidation.IsDNS1123Label(pod.Spec.Subdomain); len(msgs) != 0 {
			return "", "", false, fmt.Errorf("pod Subdomain %q is not a valid DNS label: %s", pod.Spec.Subdomain, strings.Join(msgs, ";"))
		}
		hostDomain = fmt.Sprintf("%s.%s.svc.%s", pod.Spec.Subdomain, pod.Namespace, clusterDomain)
	}
	return hostname, hostDomain, truncated, nil
}

// truncateHostname mirrors kubelet's truncatePodHostnameIfNeeded: it cuts at
// 63 characters and then trims trailing '-' and '.'.
func truncateHostname(podName, hostname string) (string, bool, error) {
	if len(hostname) <= hostnameMaxLen {
		return hostname, false, nil
	}
	truncated := strings.TrimRight(hostname[:hostnameMaxLen], "-.")
	if truncated == "" {
		return "", false, fmt.Errorf("hostname for pod %q was invalid: %q", podName, hostname)
	}
	return truncated, true, nil
}
