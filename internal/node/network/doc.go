// Package network owns pod networking on a node: one network namespace per
// pod, wired to the node's pod network through CNI, plus the per-pod
// /etc/hosts and /etc/resolv.conf contents exactly as kubelet writes them.
//
// # Namespaces and CNI
//
// A [Manager] creates a network namespace per pod UID, bind-mounted at
// StateDir/netns/<podUID> (as `ip netns add` does), so runc containers join it
// by path and it lives exactly as long as the mount, not as long as any
// process. It then runs the CNI conflist "pocketkube" through libcni with the
// Debian plugins: bridge (with host-local IPAM on the node's pod CIDR) and
// portmap for hostPorts. The manager brings the loopback interface up itself
// instead of running the loopback plugin. The conflist is generated from
// [Config] and written to StateDir; /etc/cni/net.d and /var/lib/cni are never
// read or written: the CNI result cache lives in StateDir/cni/cache and the
// host-local allocations in StateDir/cni/ipam.
//
// Setup, Teardown, Status and List are idempotent and safe to call after a
// crash: the CNI cache plus the netns mounts are the whole state, so a new
// Manager on the same StateDir finds, reports and tears down what an earlier
// process left behind. Setup of a pod that has a network runs CNI CHECK
// (bridge plugin only: Debian's portmap 1.1.1 CHECK is broken for IPv4-only
// pods) and returns the cached sandbox; it never rebuilds a namespace
// containers may be in, but reports ErrUnhealthy so the caller replaces the
// whole pod sandbox (stop containers, Teardown, Setup). Port mappings are
// those of the first Setup, as for a CRI sandbox.
//
// Start is Setup in two halves: it returns once the namespace is mounted,
// and the CNI ADD goes on in the background until its wait function is
// called, so that the node agent creates the pod's first container (runc
// joins the namespace by path) while the plugins run.
//
// Teardown also removes the bridge plugin's per-pod masquerade rule itself
// when the plugin cannot (it finds the pod's addresses only on the pod's
// interface, which is gone with a lost netns or a deleted veth).
//
// # Caveats
//
// Global things outlive the Manager on purpose: the bridge (Config.Bridge),
// its gateway address, net.ipv4.ip_forward=1 (set by the bridge plugin) and
// the plugins' per-network iptables chains. They are the node's, shared by all
// pods and by later runs of the agent, and Close does not remove them; whoever
// decommissions the node (or a test, for its own bridge) deletes the bridge
// with `ip link del`. New removes only the bridge's addresses outside the
// pod CIDR it is given (kubenet's clearBridgeAddressesExcept), and its
// masquerade rule of another pod CIDR: a Node deleted and registered again
// has a new one. Per-pod rules (masquerade, hostPort DNAT) are removed by
// Teardown through CNI DEL.
//
// The netns directory is not made a shared mount, so the bind mounts are
// visible in the mount namespace that created them and in those created
// after; that is all runc needs.
//
// # Files
//
// [HostsFile], [HostNetworkHostsFile] and [ResolvConf] are pure functions
// that reproduce kubelet's managed /etc/hosts (pkg/kubelet/kubelet_pods.go)
// and the resolv.conf a CRI runtime writes from kubelet's DNS configuration
// (pkg/kubelet/network/dns). Writing them into a pod is the caller's job.
package network
