// Package coredns runs CoreDNS (github.com/coredns/coredns) in-process as
// the node's cluster DNS server, built from a generated Corefile with only
// the plugins cluster DNS needs: bind, errors, cache, kubernetes and
// forward. CoreDNS answers from its own Service, EndpointSlice and
// Namespace informers, so its answers are the ones a kubeadm cluster gives.
// It answers only pods and the node itself (a plugin of ours,
// pocketkube_clients, refuses every other source address): it listens on
// the node's address, where the whole network reaches it.
//
// It owns the server only. The RBAC objects its credentials need
// (system:coredns) and the kube-system/kube-dns Service with the
// EndpointSlice that sends 10.96.0.10 here are the cluster's own objects,
// which internal/bootstrap creates with the admin's credentials.
//
// # Caveats
//
// CoreDNS and caddy keep process-wide state, so this package is an
// upstream adapter in the sense of STYLE.md: the first Run sets
// dnsserver.Directives to the plugins above and switches caddy's and
// CoreDNS's start-up banners off. CoreDNS logs through the standard
// library logger, which goes to stderr ("[ERROR] plugin/errors: ...").
// It is deliberately not sent to klog: the kubernetes plugin's setup
// replaces klog's logger with one that writes to the standard library
// logger, and a standard logger writing to klog would then deadlock on
// its own mutex. Run restores klog's default logger right after the
// kubernetes plugin's setup (a no-op plugin, pocketkube_restore_klog,
// does it), so klog lines written by other components during those
// milliseconds carry CoreDNS's "[INFO] plugin/kubernetes" prefix. Run one
// server per process.
package coredns
