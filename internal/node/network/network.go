package network

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
	cnitypes "github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"
	"k8s.io/klog/v2"
	"k8s.io/utils/keymutex"

	"github.com/pocketkube/pocketkube/internal/atomicfile"
)

var (
	// ErrNotFound is returned by Status for a pod that has no network.
	ErrNotFound = errors.New("pod network not found")
	// ErrUnhealthy is returned by Setup for a pod whose existing network
	// fails CNI CHECK; the caller stops the pod's containers, calls
	// Teardown, and sets the pod up again.
	ErrUnhealthy = errors.New("pod network failed CNI CHECK")
)

// podInterface is the pod's interface name, as on every Kubernetes node.
const podInterface = "eth0"

// Config configures a Manager.
type Config struct {
	// StateDir is required. The netns mounts (StateDir/netns), the CNI result
	// cache (StateDir/cni/cache), the host-local IPAM data (StateDir/cni/ipam)
	// and the generated conflist live here. It must not be shared by two
	// managers with different PodCIDRs.
	StateDir string
	// PodCIDR is required: the node's pod range, e.g. "10.244.0.0/24", or one
	// range per IP family separated by a comma (primary family first).
	PodCIDR string
	// PluginDirs are searched for the CNI plugin binaries, in order.
	// Default: /usr/lib/cni (Debian), /opt/cni/bin (upstream tarballs).
	PluginDirs []string
	// Bridge is the name of the node's pod bridge. Default: "pk0".
	Bridge string
	// MTU of the bridge and the pods' interfaces; 0 is the plugin default.
	MTU int
}

// PortMapping is one hostPort of a pod.
type PortMapping struct {
	HostPort      int32
	ContainerPort int32
	// Protocol is "tcp" (default), "udp" or "sctp", in any case.
	Protocol string
	// HostIP restricts the mapping to one host address; empty means all.
	HostIP string
}

// Pod names the pod whose network is set up.
type Pod struct {
	Namespace, Name, UID string
	// Ports lists hostPort mappings; entries with HostPort 0 are ignored.
	Ports []PortMapping
}

// Sandbox is a pod's network as set up by CNI.
type Sandbox struct {
	// NetNS is the path of the bind-mounted network namespace; runc joins it
	// with a "network" namespace entry of that path.
	NetNS string
	// IPs are the pod's addresses, primary family first.
	IPs []net.IP
	// Gateway is the primary family's gateway (the bridge address).
	Gateway net.IP
	// HostInterface is the host end of the pod's veth pair.
	HostInterface string
}

// Manager sets up and tears down pod network namespaces. Its methods may be
// called concurrently; calls for the same pod UID are serialised.
type Manager struct {
	cfg      Config
	netnsDir string
	cni      *libcni.CNIConfig
	list     *libcni.NetworkConfigList // bridge only
	// listPorts adds portmap, for pods with hostPorts.
	listPorts *libcni.NetworkConfigList
	iptables  []string // iptables commands of the pod CIDR's families

	// locks serialises the work on one pod; pods hash to one of
	// podLockBuckets locks, so unrelated pods rarely wait on each other.
	locks keymutex.KeyMutex
}

// podLockBuckets is how many locks the pods share.
const podLockBuckets = 64

// New checks cfg, fills in defaults, writes the conflist to
// StateDir/pocketkube.conflist and returns a Manager. It fails when a
// required plugin (bridge, host-local, portmap) is not in PluginDirs. ctx
// bounds the iptables runs that set up masquerading.
func New(ctx context.Context, cfg Config) (*Manager, error) {
	if cfg.StateDir == "" {
		return nil, errors.New("create network manager: StateDir is required")
	}
	if cfg.PodCIDR == "" {
		return nil, errors.New("create network manager: PodCIDR is required")
	}
	if len(cfg.PluginDirs) == 0 {
		cfg.PluginDirs = []string{"/usr/lib/cni", "/opt/cni/bin"}
	}
	if cfg.Bridge == "" {
		cfg.Bridge = "pk0"
	}
	if len(cfg.Bridge) > 15 {
		return nil, fmt.Errorf("create network manager: bridge name %q is longer than 15 bytes", cfg.Bridge)
	}
	if cfg.MTU < 0 {
		return nil, fmt.Errorf("create network manager: negative MTU %d", cfg.MTU)
	}
	stateDir, err := filepath.Abs(cfg.StateDir)
	if err != nil {
		return nil, fmt.Errorf("create network manager: %w", err)
	}
	cfg.StateDir = stateDir
	for _, plugin := range []string{"bridge", "host-local", "portmap"} {
		if _, err := invoke.FindInPath(plugin, cfg.PluginDirs); err != nil {
			return nil, fmt.Errorf("find CNI plugin %s in %v: %w", plugin, cfg.PluginDirs, err)
		}
	}

	m := &Manager{
		cfg:      cfg,
		netnsDir: filepath.Join(stateDir, "netns"),
		// An explicit Exec: libcni fills in a nil one lazily, racily.
		cni: libcni.NewCNIConfigWithCacheDir(cfg.PluginDirs, filepath.Join(stateDir, "cni", "cache"), &invoke.DefaultExec{
			RawExec:       &invoke.RawExec{Stderr: os.Stderr},
			PluginDecoder: version.PluginDecoder{},
		}),
		locks: keymutex.NewHashed(podLockBuckets),
	}
	ipamDir := filepath.Join(stateDir, "cni", "ipam")
	for _, dir := range []string{m.netnsDir, ipamDir} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("create network state dir: %w", err)
		}
	}
	cidrs, err := parseCIDRs(cfg.PodCIDR)
	if err != nil {
		return nil, fmt.Errorf("create network manager: %w", err)
	}
	if err := clearStaleBridgeAddrs(ctx, cfg.Bridge, cidrs); err != nil {
		return nil, fmt.Errorf("create network manager: %w", err)
	}
	for _, c := range cidrs {
		if c.IP.To4() != nil {
			m.iptables = append(m.iptables, "iptables")
		} else {
			m.iptables = append(m.iptables, "ip6tables")
		}
	}
	raw, err := buildConfList(cfg, ipamDir, false)
	if err != nil {
		return nil, fmt.Errorf("create network manager: %w", err)
	}
	if m.list, err = libcni.ConfListFromBytes(raw); err != nil {
		return nil, fmt.Errorf("load generated conflist: %w", err)
	}
	rawPorts, err := buildConfList(cfg, ipamDir, true)
	if err != nil {
		return nil, fmt.Errorf("create network manager: %w", err)
	}
	if m.listPorts, err = libcni.ConfListFromBytes(rawPorts); err != nil {
		return nil, fmt.Errorf("load generated conflist: %w", err)
	}
	if err := atomicfile.WriteUnsynced(filepath.Join(stateDir, networkName+".conflist"), rawPorts, 0o600); err != nil {
		return nil, err
	}
	for i, c := range cidrs {
		if err := ensureMasquerade(ctx, m.iptables[i], c.String(), cfg.Bridge); err != nil {
			return nil, fmt.Errorf("create network manager: %w", err)
		}
	}
	return m, nil
}

// ConfList returns the generated CNI network configuration list, with
// portmap (pods without hostPorts get the same list without it).
func (m *Manager) ConfList() []byte { return slices.Clone(m.listPorts.Bytes) }

// NetNSPath returns where the network namespace of podUID is (or would be)
// mounted.
func (m *Manager) NetNSPath(podUID string) string { return filepath.Join(m.netnsDir, podUID) }

// Setup creates the pod's network namespace and attaches it to the pod
// network. It is idempotent: for a pod that already has a network it runs CNI
// CHECK and returns the existing sandbox, so a pod never holds two IPs; if
// CHECK fails it returns an error wrapping ErrUnhealthy and changes nothing.
// A pod whose namespace was lost (a crash) is torn down and set up again. On
// any other error nothing of the pod's network is left behind.
func (m *Manager) Setup(ctx context.Context, pod Pod) (*Sandbox, error) {
	_, wait, err := m.Start(ctx, pod)
	if err != nil {
		return nil, err
	}
	return wait()
}

// Start is Setup in two halves, so that a pod's containers can be
// created while CNI attaches the pod: it returns once the pod's network
// namespace is mounted at netns, which runc can then join, and the rest
// of Setup (CNI ADD: the pod's interface, addresses, routes and port
// mappings) goes on in the background, bounded by ctx. wait blocks until
// it is done and returns what Setup would have, the same each time it is
// called. Its errors are Setup's, and leave what Setup leaves: nothing of
// the pod's network, its namespace unmounted too (a container created in
// it meanwhile holds it until that container is removed, which is the
// caller's to do). Until the ADD is done, other calls for the pod wait.
// For a pod whose network is set up already, Start runs CNI CHECK itself
// and wait returns at once.
func (m *Manager) Start(ctx context.Context, pod Pod) (netns string, wait func() (*Sandbox, error), err error) {
	if err := validUID(pod.UID); err != nil {
		return "", nil, fmt.Errorf("set up network of pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	unlock := m.lock(pod.UID)
	// Unlocked on return, unless the ADD goes on in the background: then
	// when it is done.
	background := false
	defer func() {
		if !background {
			unlock()
		}
	}()
	logger := klog.LoggerWithValues(klog.FromContext(ctx), "pod", klog.KRef(pod.Namespace, pod.Name), "podUID", pod.UID)
	nsPath := m.NetNSPath(pod.UID)
	rt := m.runtimeConf(pod, nsPath)

	cached, err := m.cni.GetNetworkListCachedResult(m.list, rt)
	if err != nil {
		logger.Info("Ignoring unreadable CNI cache entry", "err", err)
	}
	if cached != nil {
		if isNetNS(nsPath) {
			// Containers may already run in this namespace: never recreate
			// it behind their back. A broken network is the caller's to
			// replace, with the pod's containers (Teardown, then Setup).
			if err := m.check(ctx, rt); err != nil {
				return "", nil, fmt.Errorf("check network of pod %s: %w: %w", pod.UID, ErrUnhealthy, err)
			}
			sb, err := m.sandbox(nsPath, cached)
			if err != nil {
				return "", nil, fmt.Errorf("set up network of pod %s: %w", pod.UID, err)
			}
			logger.V(4).Info("Pod network already set up", "ips", sb.IPs)
			return nsPath, func() (*Sandbox, error) { return sb, nil }, nil
		}
		// The namespace is gone (a crash, a reboot): release what the cache
		// still holds, then start over.
		logger.Info("Pod network namespace lost, recreating the pod network")
		if err := m.teardown(ctx, pod.UID); err != nil {
			return "", nil, fmt.Errorf("set up network of pod %s: %w", pod.UID, err)
		}
	}

	if cached == nil {
		if _, err := os.Lstat(nsPath); err == nil {
			// A namespace without a CNI result: an ADD that never finished
			// (a crash), so no container runs in it yet. Release whatever
			// that ADD got to before trying again.
			logger.Info("Found a pod network namespace without a CNI result, recreating it")
			if err := m.teardown(ctx, pod.UID); err != nil {
				return "", nil, fmt.Errorf("set up network of pod %s: %w", pod.UID, err)
			}
		}
	}
	if err := createNetNS(nsPath); err != nil {
		return "", nil, fmt.Errorf("set up network of pod %s: %w", pod.UID, err)
	}
	background = true
	done := make(chan struct{})
	var sb *Sandbox
	var addErr error
	go func() {
		defer close(done)
		defer unlock()
		sb, addErr = m.add(ctx, logger, pod, rt)
	}()
	return nsPath, func() (*Sandbox, error) {
		<-done
		return sb, addErr
	}, nil
}

// add is the second half of Start: CNI ADD in the pod's new namespace,
// undone on error.
func (m *Manager) add(ctx context.Context, logger klog.Logger, pod Pod, rt *libcni.RuntimeConf) (*Sandbox, error) {
	nsPath := rt.NetNS
	list := m.list
	if len(pod.Ports) > 0 {
		list = m.listPorts
	}
	res, err := m.cni.AddNetworkList(ctx, list, rt)
	if err != nil {
		// DEL with the same arguments releases whatever ADD got to (IPAM,
		// veth, iptables); libcni has no cache entry yet, so use ours.
		cctx := context.WithoutCancel(ctx)
		if derr := m.cni.DelNetworkList(cctx, list, rt); derr != nil {
			// Arguments that made ADD fail (a port mapping portmap rejects)
			// make DEL fail the same way before it reaches the bridge
			// plugin; without them DEL still releases the IP and the veth.
			plain := *rt
			plain.CapabilityArgs = nil
			if derr2 := m.cni.DelNetworkList(cctx, m.list, &plain); derr2 != nil {
				logger.Error(errors.Join(derr, derr2), "Cleaning up failed CNI ADD")
			}
		}
		if _, merr := teardownIPMasq(cctx, networkName, pod.UID, m.iptables); merr != nil {
			logger.Error(merr, "Cleaning up failed CNI ADD")
		}
		if rerr := removeNetNS(nsPath); rerr != nil {
			logger.Error(rerr, "Cleaning up failed CNI ADD")
		}
		return nil, fmt.Errorf("add pod %s to network %s: %w", pod.UID, networkName, err)
	}
	sb, err := m.sandbox(nsPath, res)
	if err != nil {
		_ = m.teardown(context.WithoutCancel(ctx), pod.UID)
		return nil, fmt.Errorf("set up network of pod %s: %w", pod.UID, err)
	}
	logger.V(2).Info("Set up pod network", "netns", nsPath, "ips", sb.IPs)
	return sb, nil
}

// Teardown detaches the pod from the network (CNI DEL with the arguments and
// configuration cached at ADD time), then unmounts and removes its network
// namespace. It is idempotent and succeeds when part of the pod's network is
// already gone, as after a crash.
func (m *Manager) Teardown(ctx context.Context, podUID string) error {
	if err := validUID(podUID); err != nil {
		return fmt.Errorf("tear down network of pod %q: %w", podUID, err)
	}
	unlock := m.lock(podUID)
	defer unlock()
	return m.teardown(ctx, podUID)
}

func (m *Manager) teardown(ctx context.Context, podUID string) error {
	logger := klog.LoggerWithValues(klog.FromContext(ctx), "podUID", podUID)
	nsPath := m.NetNSPath(podUID)
	rt := &libcni.RuntimeConf{ContainerID: podUID, NetNS: nsPath, IfName: podInterface}

	list := m.list
	raw, cachedRT, err := m.cni.GetNetworkListCachedConfig(m.list, rt)
	if err != nil {
		logger.Info("Ignoring unreadable CNI cache entry", "err", err)
	}
	if raw != nil && cachedRT != nil {
		// DEL must see the configuration ADD saw (the pod CIDR or bridge may
		// have changed since), with the same args and port mappings.
		if l, err := libcni.ConfListFromBytes(raw); err == nil {
			list, rt = l, cachedRT
		} else {
			logger.Info("Ignoring unparsable cached CNI config", "err", err)
		}
	}
	if !isNetNS(nsPath) {
		// Without its namespace the pod's veth is already gone; an empty
		// NetNS tells the plugins to release only what lives outside it.
		rt.NetNS = ""
	}
	err = m.cni.DelNetworkList(ctx, list, rt)
	// Rules the bridge plugin could not find the addresses for (see
	// teardownIPMasq) are removed here; if that was what made DEL fail, DEL
	// is tried once more.
	removed, merr := teardownIPMasq(ctx, list.Name, podUID, m.iptables)
	if err != nil && removed {
		err = m.cni.DelNetworkList(ctx, list, rt)
	}
	if err != nil {
		return fmt.Errorf("delete pod %s from network %s: %w", podUID, list.Name, err)
	}
	if merr != nil {
		return fmt.Errorf("delete masquerade rules of pod %s: %w", podUID, merr)
	}
	if err := removeNetNS(nsPath); err != nil {
		return err
	}
	logger.V(2).Info("Tore down pod network")
	return nil
}

// Status returns the pod's network from the CNI cache, or ErrNotFound. It
// runs no plugin and does not look at the namespace: use Setup to check.
func (m *Manager) Status(ctx context.Context, podUID string) (*Sandbox, error) {
	if err := validUID(podUID); err != nil {
		return nil, fmt.Errorf("get network status of pod %q: %w", podUID, err)
	}
	nsPath := m.NetNSPath(podUID)
	rt := &libcni.RuntimeConf{ContainerID: podUID, NetNS: nsPath, IfName: podInterface}
	res, err := m.cni.GetNetworkListCachedResult(m.list, rt)
	if err != nil {
		return nil, fmt.Errorf("get network status of pod %s: %w", podUID, err)
	}
	if res == nil {
		return nil, fmt.Errorf("get network status of pod %s: %w", podUID, ErrNotFound)
	}
	sb, err := m.sandbox(nsPath, res)
	if err != nil {
		return nil, fmt.Errorf("get network status of pod %s: %w", podUID, err)
	}
	return sb, nil
}

// List returns, sorted, the UIDs of pods that have a network namespace or a
// CNI cache entry. After a crash, the agent tears down those it no longer
// wants.
func (m *Manager) List(ctx context.Context) ([]string, error) {
	var uids []string
	entries, err := os.ReadDir(m.netnsDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("list pod network namespaces: %w", err)
	}
	for _, e := range entries {
		uids = append(uids, e.Name())
	}
	atts, err := m.cni.GetCachedAttachments("")
	if err != nil {
		return nil, fmt.Errorf("list CNI cache: %w", err)
	}
	for _, a := range atts {
		if a.Network == networkName {
			uids = append(uids, a.ContainerID)
		}
	}
	slices.Sort(uids)
	return slices.Compact(uids), nil
}

// Close releases nothing: the bridge and other node-wide network state are
// meant to outlive the Manager (see the package documentation).
func (m *Manager) Close() error { return nil }

// check runs CNI CHECK for the bridge plugin, which verifies the pod's
// interface, addresses and routes and its IPAM reservation. portmap is left
// out: Debian 12's portmap (1.1.1) CHECK wrongly fails for IPv4-only pods with
// hostPorts ("could not check ipv6 dnat").
func (m *Manager) check(ctx context.Context, rt *libcni.RuntimeConf) error {
	list := *m.list
	list.Plugins = list.Plugins[:1]
	return m.cni.CheckNetworkList(ctx, &list, rt)
}

func (m *Manager) runtimeConf(pod Pod, nsPath string) *libcni.RuntimeConf {
	rt := &libcni.RuntimeConf{
		ContainerID: pod.UID,
		NetNS:       nsPath,
		IfName:      podInterface,
		// The K8S_* args are what kubelet passes; IgnoreUnknown keeps plugins
		// that do not know them from failing.
		Args: [][2]string{
			{"IgnoreUnknown", "1"},
			{"K8S_POD_NAMESPACE", pod.Namespace},
			{"K8S_POD_NAME", pod.Name},
			{"K8S_POD_INFRA_CONTAINER_ID", pod.UID},
			{"K8S_POD_UID", pod.UID},
		},
	}
	type portMapping struct {
		HostPort      int32  `json:"hostPort"`
		ContainerPort int32  `json:"containerPort"`
		Protocol      string `json:"protocol"`
		HostIP        string `json:"hostIP,omitempty"`
	}
	var ports []portMapping
	for _, p := range pod.Ports {
		if p.HostPort <= 0 {
			continue
		}
		proto := strings.ToLower(p.Protocol)
		if proto == "" {
			proto = "tcp"
		}
		ports = append(ports, portMapping{HostPort: p.HostPort, ContainerPort: p.ContainerPort, Protocol: proto, HostIP: p.HostIP})
	}
	if len(ports) > 0 {
		rt.CapabilityArgs = map[string]any{"portMappings": ports}
	}
	return rt
}

// sandbox turns a CNI result into a Sandbox.
func (m *Manager) sandbox(nsPath string, res cnitypes.Result) (*Sandbox, error) {
	r, err := types100.NewResultFromResult(res)
	if err != nil {
		return nil, fmt.Errorf("convert CNI result: %w", err)
	}
	sb := &Sandbox{NetNS: nsPath}
	var v4, v6 []*types100.IPConfig
	for _, ipc := range r.IPs {
		if ipc.Address.IP.To4() != nil {
			v4 = append(v4, ipc)
		} else {
			v6 = append(v6, ipc)
		}
	}
	ordered := append(v4, v6...)
	if cidrs, err := parseCIDRs(m.cfg.PodCIDR); err == nil && cidrs[0].IP.To4() == nil {
		ordered = append(v6, v4...)
	}
	for _, ipc := range ordered {
		sb.IPs = append(sb.IPs, ipc.Address.IP)
	}
	if len(ordered) == 0 {
		return nil, errors.New("CNI result has no IP address")
	}
	sb.Gateway = ordered[0].Gateway
	for _, iface := range r.Interfaces {
		if iface.Sandbox == "" && iface.Name != m.cfg.Bridge {
			sb.HostInterface = iface.Name
		}
	}
	return sb, nil
}

// lock serialises work on one pod UID and returns the unlock function.
func (m *Manager) lock(uid string) func() {
	m.locks.LockKey(uid)
	return func() { _ = m.locks.UnlockKey(uid) }
}

// validUID rejects UIDs that cannot be a file name or a CNI container ID.
func validUID(uid string) error {
	if uid == "" {
		return errors.New("empty pod UID")
	}
	if uid == "." || uid == ".." || strings.ContainsAny(uid, "/\x00") {
		return fmt.Errorf("invalid pod UID %q", uid)
	}
	return nil
}
