// Package dns is the node's cluster DNS server: it answers the Kubernetes
// DNS-Based Service Discovery specification (github.com/kubernetes/dns
// docs/specification.md, schema 1.1.0) for the cluster domain from informer
// caches, and forwards every other name to the host's resolvers. It is built
// on github.com/miekg/dns and follows CoreDNS's kubernetes plugin (the
// reference implementation) where the specification leaves a choice open.
//
// # Basics
//
// [New] takes a [Config] with a Service lister and an EndpointSlice lister;
// [Server.Run] serves UDP and TCP on Config.Addr until its context is done.
// Every query reads the listers, so an informer event changes the next
// answer: there is no polling, no copy of the data and no cache to expire
// besides the clients' own (Config.TTL, 5 s by default as in CoreDNS).
// [EnsureService] publishes the server as the Service kube-system/kube-dns
// (kubeadm's name, labels and ports) with a hand-made EndpointSlice, so pods
// reach it at the Service's ClusterIP (10.96.0.10) through the node's service
// VIPs, exactly as they reach CoreDNS on a kubeadm cluster.
//
// # Records
//
// For the cluster domain (cluster.local) the server is authoritative (AA
// bit) and answers:
//
//   - <svc>.<ns>.svc A/AAAA: the ClusterIPs of a ClusterIP, NodePort or
//     LoadBalancer Service; for a headless Service the addresses of its ready
//     endpoints (all endpoints with spec.publishNotReadyAddresses), NXDOMAIN
//     when it has none.
//   - <hostname>.<svc>.<ns>.svc A/AAAA: the endpoint addresses with that
//     hostname. An endpoint without spec hostname is named after its address
//     with dashes (10-244-0-5), as CoreDNS names it.
//   - _<port>._<proto>.<svc>.<ns>.svc SRV for named ports (priority 0, weight
//     100/n): the Service's port and name for a ClusterIP Service, or one
//     record per ready endpoint, its port and its hostname name for a
//     headless one; the A/AAAA records go in the additional section. SRV on
//     <svc>.<ns>.svc itself lists every port, as CoreDNS does.
//   - <svc>.<ns>.svc of an ExternalName Service: a CNAME, followed (for any
//     query type but CNAME) by the target's records, resolved in the cluster
//     domain or upstream.
//   - <a-b-c-d>.<ns>.pod A and <2001-db8--1>.<ns>.pod AAAA: the address the
//     name spells (CoreDNS "pods insecure", kubeadm's default).
//   - PTR in in-addr.arpa and ip6.arpa for Service ClusterIPs and ready
//     endpoint addresses; other reverse names are forwarded, as with
//     kubeadm's "fallthrough in-addr.arpa ip6.arpa".
//   - dns-version TXT "1.1.0", SOA and NS at the apex, and ns.dns A/AAAA (the
//     ClusterIPs of kube-system/kube-dns), as CoreDNS.
//
// Names compare case-insensitively and answers keep the question's spelling.
// A name that exists without the asked type is NODATA (NOERROR, empty answer);
// a name that does not exist is NXDOMAIN; both carry the zone's SOA in the
// authority section, whose minimum TTL is Config.TTL. <ns>.svc is an empty
// non-terminal (NODATA) when the namespace has a Service; without a namespace
// lister that is how the server knows a namespace exists.
//
// # Forwarding
//
// Other names go to Config.Upstreams in order, by default the nameservers of
// the host's /etc/resolv.conf. A truncated UDP reply is asked again over TCP;
// SERVFAIL and REFUSED replies and errors move on to the next upstream, and
// when none answers the client gets SERVFAIL. Loopback nameservers such as
// systemd-resolved's 127.0.0.53 are kept: kubelet drops them from the
// resolv.conf it gives pods because a pod's loopback is not the host's, but
// this server runs in the host's network namespace, where they work. The
// server's own address is dropped to avoid a forwarding loop.
//
// # Caveats
//
// PTR queries scan all Services and EndpointSlices (the listers have no index
// by address); that is cheap on one node and would want an indexer on a large
// cluster. Replies larger than the client's UDP buffer (512 bytes, or its EDNS0
// size) are truncated with the TC bit set, so the client retries over TCP.
// The server does no caching, DNSSEC or zone transfers.
package dns
