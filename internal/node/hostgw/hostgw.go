package hostgw

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"
)

// RouteProtocol marks the routes of this package (rtm_protocol): unused by
// the protocols of iproute2's rt_protos, so that no other routing daemon's
// routes are taken for ours.
const RouteProtocol netlink.RouteProtocol = 112

// Chain is the nat chain that exempts pod traffic within the cluster from
// masquerading.
const Chain = "PK-HOSTGW"

// ResyncPeriod is how often Run syncs when no Node changed.
const ResyncPeriod = 30 * time.Second

// jumpComment names the POSTROUTING rule that jumps to Chain.
const jumpComment = "pocketkube: pod traffic within the cluster keeps its source"

// Config is what Run needs; every field is required.
type Config struct {
	// Client lists and watches Nodes: system:node-proxier's credentials
	// (kube-proxy's) do; a node's own may read its own Node only.
	Client kubernetes.Interface
	// NodeName is this node: no route to its own pod CIDRs.
	NodeName string
	// ClusterCIDR is the cluster's pod range (IPv4).
	ClusterCIDR string
	// Bridge is the node's pod bridge (internal/node/network's
	// Config.Bridge); default "pk0".
	Bridge string
}

// Route is one route to another node's pods.
type Route struct {
	Dst  netip.Prefix
	Gw   netip.Addr
	Node string
}

// Run keeps the routes and the masquerade exceptions in sync with the
// Nodes until ctx is done, then removes them and returns. The error is
// nil after a cancellation.
func Run(ctx context.Context, cfg Config) error {
	if cfg.Client == nil || cfg.NodeName == "" || cfg.ClusterCIDR == "" {
		return errors.New("hostgw: Client, NodeName and ClusterCIDR are required")
	}
	cluster, err := netip.ParsePrefix(cfg.ClusterCIDR)
	if err != nil || !cluster.Addr().Is4() {
		return fmt.Errorf("hostgw: ClusterCIDR %q: want an IPv4 CIDR", cfg.ClusterCIDR)
	}
	if cfg.Bridge == "" {
		cfg.Bridge = "pk0"
	}
	logger := klog.FromContext(ctx)
	factory := informers.NewSharedInformerFactory(cfg.Client, 0)
	nodes := factory.Core().V1().Nodes()
	queue := workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
		workqueue.TypedRateLimitingQueueConfig[string]{Name: "hostgw"})
	defer queue.ShutDown()
	// One key: every sync makes the whole table right, so changes that
	// come together cost one sync.
	const key = "nodes"
	if _, err := nodes.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(any) { queue.Add(key) },
		UpdateFunc: func(oldObj, newObj any) {
			o, ok1 := oldObj.(*v1.Node)
			n, ok2 := newObj.(*v1.Node)
			// Status updates are frequent; only these fields matter.
			if !ok1 || !ok2 || !slices.Equal(o.Spec.PodCIDRs, n.Spec.PodCIDRs) || o.Spec.PodCIDR != n.Spec.PodCIDR ||
				!slices.Equal(o.Status.Addresses, n.Status.Addresses) {
				queue.Add(key)
			}
		},
		DeleteFunc: func(any) { queue.Add(key) },
	}); err != nil {
		return err
	}
	s := &syncer{cfg: cfg, cluster: cluster, lister: nodes.Lister(), unreachable: map[string]bool{}}
	factory.Start(ctx.Done())
	defer factory.Shutdown()
	if !cache.WaitForCacheSync(ctx.Done(), nodes.Informer().HasSynced) {
		s.cleanup(context.WithoutCancel(ctx))
		return nil
	}
	// A jump left by an earlier run may match other traffic: the first
	// sync inserts the one of this run.
	if err := deleteJumps(ctx); err != nil && ctx.Err() == nil {
		logger.Error(err, "Deleting leftover jumps to the masquerade exceptions")
	}
	queue.Add(key)
	logger.Info("Pod routes to other nodes started", "clusterCIDR", cluster)
	workerDone := make(chan struct{})
	go func() {
		defer close(workerDone)
		defer utilruntime.HandleCrash()
		wait.UntilWithContext(ctx, func(ctx context.Context) {
			for processNext(ctx, queue, s) {
			}
		}, time.Second)
	}()
	// Besides the Nodes' changes, what they do not show: a route deleted
	// by hand, a node's address that became reachable.
	go wait.UntilWithContext(ctx, func(context.Context) { queue.Add(key) }, ResyncPeriod)
	<-ctx.Done()
	queue.ShutDown()
	<-workerDone // a sync still running would add routes after cleanup
	s.cleanup(context.WithoutCancel(ctx))
	logger.Info("Pod routes to other nodes stopped")
	return nil
}

func processNext(ctx context.Context, queue workqueue.TypedRateLimitingInterface[string], s *syncer) bool {
	key, quit := queue.Get()
	if quit {
		return false
	}
	defer queue.Done(key)
	if err := s.sync(ctx); err != nil {
		if ctx.Err() == nil {
			klog.FromContext(ctx).Error(err, "Syncing pod routes to other nodes")
		}
		queue.AddRateLimited(key)
		return true
	}
	queue.Forget(key)
	return true
}

type syncer struct {
	cfg     Config
	cluster netip.Prefix
	lister  corelisters.NodeLister
	// chain is the iptables-restore input last applied.
	chain string
	// unreachable holds the "node gw" pairs logged as not on this node's
	// segment, so that each is logged once.
	unreachable map[string]bool
}

// sync makes the routes and Chain match the Nodes.
func (s *syncer) sync(ctx context.Context) error {
	logger := klog.FromContext(ctx)
	nodes, err := s.lister.List(labels.Everything())
	if err != nil {
		return err
	}
	var want []Route
	for _, r := range DesiredRoutes(s.cfg.NodeName, nodes) {
		if !onLink(r.Gw) {
			if k := r.Node + " " + r.Gw.String(); !s.unreachable[k] {
				s.unreachable[k] = true
				logger.Info("No route to a node's pods: its address is not on this node's L2 segment", "node", r.Node, "nodeIP", r.Gw, "podCIDR", r.Dst)
			}
			continue
		}
		want = append(want, r)
	}
	// Only the nodes this one routes to route back to its pods: pod
	// traffic to any other node's address is masqueraded, or its answer
	// would be lost.
	chain := chainRules(s.cluster, gateways(want))
	if chain != s.chain {
		if err := restoreChain(ctx, chain); err != nil {
			return err
		}
		s.chain = chain
	}
	if err := ensureJump(ctx, s.cluster, s.cfg.Bridge); err != nil {
		return err
	}
	have, err := ourRoutes()
	if err != nil {
		return err
	}
	var errs []error
	for _, h := range have {
		if !slices.ContainsFunc(want, func(w Route) bool { return w.Dst == h.Dst && w.Gw == h.Gw }) {
			logger.V(2).Info("Deleting pod route", "dst", h.Dst, "gw", h.Gw)
			if err := netlink.RouteDel(netlinkRoute(h)); err != nil && !errors.Is(err, unix.ESRCH) {
				errs = append(errs, fmt.Errorf("delete route to %s via %s: %w", h.Dst, h.Gw, err))
			}
		}
	}
	for _, w := range want {
		if slices.ContainsFunc(have, func(h Route) bool { return w.Dst == h.Dst && w.Gw == h.Gw }) {
			continue
		}
		logger.V(2).Info("Adding pod route", "node", w.Node, "dst", w.Dst, "gw", w.Gw)
		if err := netlink.RouteReplace(netlinkRoute(w)); err != nil {
			errs = append(errs, fmt.Errorf("add route to node %s's pods %s via %s: %w", w.Node, w.Dst, w.Gw, err))
		}
	}
	return errors.Join(errs...)
}

// DesiredRoutes returns the routes self needs to the other nodes' pods: one
// per pod CIDR of each other Node with an InternalIP of the CIDR's family,
// via the first such address.
func DesiredRoutes(self string, nodes []*v1.Node) []Route {
	var routes []Route
	for _, n := range nodes {
		if n.Name == self {
			continue
		}
		cidrs := n.Spec.PodCIDRs
		if len(cidrs) == 0 && n.Spec.PodCIDR != "" {
			cidrs = []string{n.Spec.PodCIDR}
		}
		for _, c := range cidrs {
			dst, err := netip.ParsePrefix(c)
			if err != nil {
				continue
			}
			for _, a := range n.Status.Addresses {
				ip, err := netip.ParseAddr(a.Address)
				if a.Type != v1.NodeInternalIP || err != nil || ip.Is4() != dst.Addr().Is4() {
					continue
				}
				routes = append(routes, Route{Dst: dst.Masked(), Gw: ip, Node: n.Name})
				break
			}
		}
	}
	slices.SortFunc(routes, func(a, b Route) int { return strings.Compare(a.Dst.String(), b.Dst.String()) })
	return routes
}

// gateways lists the IPv4 gateways of routes, sorted, once each.
func gateways(routes []Route) []netip.Addr {
	var ips []netip.Addr
	for _, r := range routes {
		if r.Gw.Is4() && !slices.Contains(ips, r.Gw) {
			ips = append(ips, r.Gw)
		}
	}
	slices.SortFunc(ips, func(a, b netip.Addr) int { return a.Compare(b) })
	return ips
}

// chainRules is the iptables-restore input that makes Chain accept the
// cluster CIDR and ips (the addresses of the nodes routed to); declaring the chain flushes it, in the same
// transaction.
func chainRules(cluster netip.Prefix, ips []netip.Addr) string {
	var b strings.Builder
	b.WriteString("*nat\n:" + Chain + " - [0:0]\n")
	fmt.Fprintf(&b, "-A %s -d %s -m comment --comment \"pod to pod\" -j ACCEPT\n", Chain, cluster.Masked())
	for _, ip := range ips {
		fmt.Fprintf(&b, "-A %s -d %s/32 -m comment --comment \"pod to node\" -j ACCEPT\n", Chain, ip)
	}
	b.WriteString("COMMIT\n")
	return b.String()
}

func restoreChain(ctx context.Context, rules string) error {
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "iptables-restore", "--noflush")
	cmd.Stdin, cmd.Stderr = strings.NewReader(rules), &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("write nat chain %s: %w: %s", Chain, err, bytes.TrimSpace(stderr.Bytes()))
	}
	return nil
}

// jumpRule jumps to Chain for pod traffic that leaves the node: the
// traffic the pod network masquerades. Traffic out of the bridge is left
// to the rules after it, which must still see it: the portmap plugin
// masquerades a pod's connection to a hostPort that leads back into the
// bridge (hairpin), which an ACCEPT here would skip.
func jumpRule(cluster netip.Prefix, bridge string) []string {
	return []string{"POSTROUTING", "-s", cluster.Masked().String(), "!", "-o", bridge, "-m", "comment", "--comment", jumpComment, "-j", Chain}
}

// ensureJump inserts the jump to Chain first in nat POSTROUTING, before
// the pod network's masquerade rules, unless it is there.
func ensureJump(ctx context.Context, cluster netip.Prefix, bridge string) error {
	rule := jumpRule(cluster, bridge)
	if _, err := iptables(ctx, append([]string{"-t", "nat", "-C"}, rule...)...); err == nil {
		return nil
	}
	if _, err := iptables(ctx, append([]string{"-t", "nat", "-I", rule[0], "1"}, rule[1:]...)...); err != nil {
		return fmt.Errorf("insert jump to %s: %w", Chain, err)
	}
	return nil
}

func iptables(ctx context.Context, args ...string) ([]byte, error) {
	args = append(args, "--wait")
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "iptables", args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("run iptables %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(stderr.Bytes()))
	}
	return stdout.Bytes(), nil
}

// cleanup deletes every route of ours, the jump and Chain. Failures are
// logged: the next start corrects what is left.
func (s *syncer) cleanup(ctx context.Context) {
	logger := klog.FromContext(ctx)
	have, err := ourRoutes()
	if err != nil {
		logger.Error(err, "Listing pod routes to delete")
	}
	for _, h := range have {
		if err := netlink.RouteDel(netlinkRoute(h)); err != nil && !errors.Is(err, unix.ESRCH) {
			logger.Error(err, "Deleting pod route", "dst", h.Dst, "gw", h.Gw)
		}
	}
	if err := deleteJumps(ctx); err != nil {
		logger.Error(err, "Deleting the jump to the masquerade exceptions")
		return
	}
	if _, err := iptables(ctx, "-t", "nat", "-S", Chain); err == nil {
		if _, err := iptables(ctx, "-t", "nat", "-F", Chain); err != nil {
			logger.Error(err, "Flushing the masquerade exceptions")
		}
		if _, err := iptables(ctx, "-t", "nat", "-X", Chain); err != nil {
			logger.Error(err, "Deleting the masquerade exceptions")
		}
	}
}

// deleteJumps deletes every jump to Chain from nat POSTROUTING, whatever
// its match (an earlier version's, or another cluster CIDR's).
func deleteJumps(ctx context.Context) error {
	for {
		out, err := iptables(ctx, "-t", "nat", "-S", "POSTROUTING")
		if err != nil {
			return err
		}
		rule := jumpSpec(string(out))
		if rule == nil {
			return nil
		}
		if _, err := iptables(ctx, append([]string{"-t", "nat", "-D"}, rule...)...); err != nil {
			return err
		}
	}
}

// jumpSpec returns the rule of the first jump to Chain in the output of
// `iptables -S POSTROUTING`, for `iptables -D`, or nil. The comment is
// the one quoted word list that -S prints; it is ours, so its text is
// known.
func jumpSpec(rules string) []string {
	for _, line := range strings.Split(rules, "\n") {
		f := strings.Fields(line)
		if len(f) < 3 || f[0] != "-A" || f[len(f)-1] != Chain || f[len(f)-2] != "-j" {
			continue
		}
		rule := []string{f[1]}
		rest := strings.Join(f[2:], " ")
		quoted := `"` + jumpComment + `"`
		before, after, ok := strings.Cut(rest, quoted)
		rule = append(rule, strings.Fields(before)...)
		if ok {
			rule = append(rule, jumpComment)
			rule = append(rule, strings.Fields(after)...)
		}
		return rule
	}
	return nil
}

// ourRoutes lists the routes of RouteProtocol in the main table.
func ourRoutes() ([]Route, error) {
	rs, err := netlink.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Protocol: RouteProtocol, Table: unix.RT_TABLE_MAIN},
		netlink.RT_FILTER_PROTOCOL|netlink.RT_FILTER_TABLE)
	if err != nil {
		return nil, fmt.Errorf("list pod routes: %w", err)
	}
	var out []Route
	for _, r := range rs {
		if r.Dst == nil {
			continue
		}
		dst, ok1 := netipPrefix(r.Dst)
		gw, ok2 := netip.AddrFromSlice(r.Gw)
		if !ok1 || !ok2 {
			continue
		}
		out = append(out, Route{Dst: dst, Gw: gw.Unmap()})
	}
	return out, nil
}

func netipPrefix(n *net.IPNet) (netip.Prefix, bool) {
	ip, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, _ := n.Mask.Size()
	return netip.PrefixFrom(ip.Unmap(), ones), true
}

func netlinkRoute(r Route) *netlink.Route {
	return &netlink.Route{
		Dst:      &net.IPNet{IP: r.Dst.Addr().AsSlice(), Mask: net.CIDRMask(r.Dst.Bits(), r.Dst.Addr().BitLen())},
		Gw:       r.Gw.AsSlice(),
		Protocol: RouteProtocol,
		Table:    unix.RT_TABLE_MAIN,
	}
}

// onLink reports whether gw is reached without a gateway: on this node's
// L2 segment (kindnet's check).
func onLink(gw netip.Addr) bool {
	rs, err := netlink.RouteGet(gw.AsSlice())
	if err != nil || len(rs) == 0 {
		return false
	}
	for _, r := range rs {
		if r.Gw != nil {
			return false
		}
	}
	return true
}
