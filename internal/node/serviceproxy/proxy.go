package serviceproxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	v1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	utilfeature "k8s.io/apiserver/pkg/util/feature"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2"
	"k8s.io/kubernetes/pkg/features"
	kubeproxy "k8s.io/kubernetes/pkg/proxy"
	"k8s.io/kubernetes/pkg/proxy/apis"
	kubeproxyconfig "k8s.io/kubernetes/pkg/proxy/apis/config"
	proxyconfigscheme "k8s.io/kubernetes/pkg/proxy/apis/config/scheme"
	proxyconfig "k8s.io/kubernetes/pkg/proxy/config"
	"k8s.io/kubernetes/pkg/proxy/nftables"
	proxyutil "k8s.io/kubernetes/pkg/proxy/util"
)

// component is kube-proxy's name in events and its client's user agent.
const component = "kube-proxy"

// Config is what a node's Service proxy needs. Kubeconfig, NodeName,
// NodeIPs and ClusterCIDR are required.
type Config struct {
	// Kubeconfig holds the proxy's credentials (system:kube-proxy).
	Kubeconfig string
	// NodeName is the node the proxy runs on: its endpoints are the local
	// ones, and its events are about it.
	NodeName string
	// NodeIPs are the node's addresses. The first IPv4 one is where
	// NodePorts are served.
	NodeIPs []net.IP
	// ClusterCIDR is the pods' address range: traffic from outside it to a
	// Service is masqueraded, as kube-proxy's --cluster-cidr.
	ClusterCIDR string
	// MinSyncPeriod is the shortest time between two rule syncs; default
	// kube-proxy's, 1s. Shorter follows bursts of changes sooner at the
	// cost of more nft runs.
	MinSyncPeriod time.Duration
}

// Run runs the proxy until ctx is done, then deletes its nftables rules
// and returns. The error is nil after a cancellation.
func Run(ctx context.Context, cfg Config) error {
	kpc, nodeIP, err := kubeProxyConfiguration(cfg)
	if err != nil {
		return err
	}
	logger := klog.FromContext(ctx)
	restCfg, err := clientcmd.BuildConfigFromFlags("", cfg.Kubeconfig)
	if err != nil {
		return fmt.Errorf("load kube-proxy kubeconfig: %w", err)
	}
	restCfg.UserAgent = component
	restCfg.QPS, restCfg.Burst = kpc.ClientConnection.QPS, int(kpc.ClientConnection.Burst)
	restCfg.ContentType = kpc.ClientConnection.ContentType
	client, err := kubernetes.NewForConfig(restCfg)
	if err != nil {
		return fmt.Errorf("create kube-proxy client: %w", err)
	}

	// A table left by a run that was killed: start from nothing, as
	// kube-proxy --cleanup would.
	if cleanupLeftovers(ctx) {
		if ctx.Err() != nil {
			return nil // stopped while starting: `nft` was killed
		}
		return errors.New("delete leftover kube-proxy nftables table")
	}

	broadcaster := events.NewBroadcaster(&events.EventSinkImpl{Interface: client.EventsV1()})
	defer broadcaster.Shutdown()
	broadcaster.StartRecordingToSink(ctx.Done())
	recorder := broadcaster.NewRecorder(proxyconfigscheme.Scheme, component)

	proxier, err := nftables.NewProxier(ctx, kpc, v1.IPv4Protocol,
		proxyutil.NewDetectLocalByCIDR(cfg.ClusterCIDR), cfg.NodeName, nodeIP, recorder, nil, false)
	if err != nil {
		if ctx.Err() != nil {
			return nil // stopped while starting
		}
		return fmt.Errorf("create nftables proxier: %w", err)
	}
	g := &gate{Provider: proxier}

	informerCtx, stopInformers := context.WithCancel(ctx)
	defer stopInformers()
	startInformers(informerCtx, client, kpc, g)
	go proxier.SyncLoop()
	recorder.Eventf(&v1.ObjectReference{APIVersion: "v1", Kind: "Node", Name: cfg.NodeName}, nil, v1.EventTypeNormal, "Starting", "StartKubeProxy", "")
	logger.Info("Service proxy started", "mode", kpc.Mode, "nodeIP", nodeIP, "clusterCIDR", cfg.ClusterCIDR)

	<-ctx.Done()
	stopInformers()
	cleanup(context.WithoutCancel(ctx), g, kpc.MinSyncPeriod.Duration)
	logger.Info("Service proxy stopped")
	return nil
}

// kubeProxyConfiguration returns kube-proxy's configuration for cfg, as
// kube-proxy's defaults and flags would make it, validated by upstream,
// and the node address NodePorts are served on.
func kubeProxyConfiguration(cfg Config) (*kubeproxyconfig.KubeProxyConfiguration, net.IP, error) {
	if cfg.Kubeconfig == "" || cfg.NodeName == "" || len(cfg.NodeIPs) == 0 || cfg.ClusterCIDR == "" {
		return nil, nil, errors.New("proxy: Kubeconfig, NodeName, NodeIPs and ClusterCIDR are required")
	}
	var nodeIP net.IP
	for _, ip := range cfg.NodeIPs {
		if ip.To4() != nil {
			nodeIP = ip.To4()
			break
		}
	}
	if nodeIP == nil {
		return nil, nil, fmt.Errorf("proxy: no IPv4 address in NodeIPs %v", cfg.NodeIPs)
	}
	if _, _, err := net.ParseCIDR(cfg.ClusterCIDR); err != nil {
		return nil, nil, fmt.Errorf("proxy: ClusterCIDR: %w", err)
	}
	c := defaultConfiguration()
	c.Mode = kubeproxyconfig.ProxyModeNFTables
	c.HostnameOverride = cfg.NodeName
	c.BindAddress = "0.0.0.0"
	// Not served (see the package doc); kept valid for Validate.
	c.HealthzBindAddress = ""
	c.MetricsBindAddress = "127.0.0.1:10249"
	c.DetectLocalMode = kubeproxyconfig.LocalModeClusterCIDR
	c.DetectLocal.ClusterCIDRs = []string{cfg.ClusterCIDR}
	// What kube-proxy's "primary" keyword expands to.
	c.NodePortAddresses = []string{nodeIP.String() + "/32"}
	// Zero leaves the host's conntrack table alone, as k3s does: the
	// sysctls are not writable in a container.
	c.Linux.Conntrack.MaxPerCore = new(int32)
	c.Linux.Conntrack.Min = new(int32)
	c.Linux.Conntrack.TCPEstablishedTimeout = &metav1.Duration{}
	c.Linux.Conntrack.TCPCloseWaitTimeout = &metav1.Duration{}
	c.Linux.OOMScoreAdj = nil
	if cfg.MinSyncPeriod > 0 {
		c.MinSyncPeriod.Duration = cfg.MinSyncPeriod
	}
	if errs := validateConfiguration(c); len(errs) > 0 {
		return nil, nil, fmt.Errorf("kube-proxy configuration: %w", errs.ToAggregate())
	}
	return c, nodeIP, nil
}

// startInformers feeds h from informers that stop with ctx, with the
// filters kube-proxy's ProxyServer.Run uses.
func startInformers(ctx context.Context, client kubernetes.Interface, c *kubeproxyconfig.KubeProxyConfiguration, h kubeproxy.Provider) {
	noProxyName, _ := labels.NewRequirement(apis.LabelServiceProxyName, selection.DoesNotExist, nil)
	noHeadless, _ := labels.NewRequirement(v1.IsHeadlessService, selection.DoesNotExist, nil)
	// kube-proxy never needs the managed fields.
	trim := informers.WithTransform(func(obj any) (any, error) {
		if accessor, err := meta.Accessor(obj); err == nil {
			accessor.SetManagedFields(nil)
		}
		return obj, nil
	})
	resync := c.ConfigSyncPeriod.Duration
	services := informers.NewSharedInformerFactoryWithOptions(client, resync, trim,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.LabelSelector = labels.NewSelector().Add(*noProxyName).String()
			o.FieldSelector = fields.OneTermNotEqualSelector("spec.clusterIP", v1.ClusterIPNone).String()
		}))
	slices := informers.NewSharedInformerFactoryWithOptions(client, resync, trim,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.LabelSelector = labels.NewSelector().Add(*noHeadless).String()
		}))
	others := informers.NewSharedInformerFactoryWithOptions(client, resync, trim)

	// Handlers first: the configs only pass on changes, so the initial
	// list would be lost to a handler registered after Start.
	serviceConfig := proxyconfig.NewServiceConfig(ctx, services.Core().V1().Services(), resync)
	serviceConfig.RegisterEventHandler(h)
	go serviceConfig.Run(ctx.Done())
	sliceConfig := proxyconfig.NewEndpointSliceConfig(ctx, slices.Discovery().V1().EndpointSlices(), resync)
	sliceConfig.RegisterEventHandler(h)
	go sliceConfig.Run(ctx.Done())
	if utilfeature.DefaultFeatureGate.Enabled(features.MultiCIDRServiceAllocator) {
		cidrConfig := proxyconfig.NewServiceCIDRConfig(ctx, others.Networking().V1().ServiceCIDRs(), resync)
		cidrConfig.RegisterEventHandler(h)
		go cidrConfig.Run(ctx.Done())
	}
	services.Start(ctx.Done())
	slices.Start(ctx.Done())
	others.Start(ctx.Done())
}

// cleanup deletes the proxier's table once no sync can write it again.
// The gate closes first, so that no event asks for a sync; a sync asked
// for before that runs at most minSync after the one running now, so
// cleanup waits that long after the last event, with a margin for the syncs
// themselves, before it deletes the table.
func cleanup(ctx context.Context, g *gate, minSync time.Duration) {
	logger := klog.FromContext(ctx)
	last := g.close()
	if wait := time.Until(last.Add(minSync + time.Second)); wait > 0 {
		logger.V(2).Info("Waiting for the last nftables sync", "wait", wait)
		time.Sleep(wait)
	}
	if cleanupLeftovers(ctx) {
		logger.Error(nil, "Deleting the kube-proxy nftables table failed; `nft delete table ip kube-proxy` deletes it")
	}
}

// gate passes events to the proxier until it is closed. Once closed,
// nothing asks the proxier to sync: its sync loop cannot be stopped, but
// it then has nothing to do.
type gate struct {
	kubeproxy.Provider

	mu        sync.RWMutex
	closed    bool
	lastEvent atomic.Int64 // UnixNano of the last event passed
}

// pass calls f unless the gate is closed. Callers hold mu for reading
// while f runs, so close waits for events being handled.
func (g *gate) pass(f func()) {
	g.mu.RLock()
	defer g.mu.RUnlock()
	if g.closed {
		return
	}
	g.lastEvent.Store(time.Now().UnixNano())
	f()
}

// close closes the gate and returns when it last passed an event.
func (g *gate) close() time.Time {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.closed = true
	return time.Unix(0, g.lastEvent.Load())
}

func (g *gate) OnServiceAdd(s *v1.Service) { g.pass(func() { g.Provider.OnServiceAdd(s) }) }
func (g *gate) OnServiceUpdate(old, s *v1.Service) {
	g.pass(func() { g.Provider.OnServiceUpdate(old, s) })
}
func (g *gate) OnServiceDelete(s *v1.Service) { g.pass(func() { g.Provider.OnServiceDelete(s) }) }
func (g *gate) OnServiceSynced()              { g.pass(g.Provider.OnServiceSynced) }
func (g *gate) OnEndpointSliceAdd(s *discoveryv1.EndpointSlice) {
	g.pass(func() { g.Provider.OnEndpointSliceAdd(s) })
}
func (g *gate) OnEndpointSliceUpdate(old, s *discoveryv1.EndpointSlice) {
	g.pass(func() { g.Provider.OnEndpointSliceUpdate(old, s) })
}
func (g *gate) OnEndpointSliceDelete(s *discoveryv1.EndpointSlice) {
	g.pass(func() { g.Provider.OnEndpointSliceDelete(s) })
}
func (g *gate) OnEndpointSlicesSynced() { g.pass(g.Provider.OnEndpointSlicesSynced) }
func (g *gate) OnServiceCIDRsChanged(cidrs []string) {
	g.pass(func() { g.Provider.OnServiceCIDRsChanged(cidrs) })
}
func (g *gate) OnTopologyChange(l map[string]string) {
	g.pass(func() { g.Provider.OnTopologyChange(l) })
}
func (g *gate) Sync() { g.pass(g.Provider.Sync) }
