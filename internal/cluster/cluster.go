// Package cluster runs what `pocketkube up` runs: the control plane
// (internal/controlplane), the cluster's own objects (internal/bootstrap)
// and, once the API server is ready, this machine's node (internal/node)
// with the credentials the control plane issued it. It is the one place
// that knows both; they never import each other, and the node talks to the
// control plane only through the API.
//
// Stopping is cancellation. The node stops first, so that its pods are
// stopped while the API server still answers, then the bootstrap, then the
// control plane. Run returns only after every goroutine it started has.
//
// Config.ClusterInit and Config.Join make this one of several servers;
// servers.go says how they join and what does not work yet.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"sync"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"

	"github.com/pocketkube/pocketkube/internal/bootstrap"
	"github.com/pocketkube/pocketkube/internal/controlplane"
	"github.com/pocketkube/pocketkube/internal/controlplane/csrapprover"
	"github.com/pocketkube/pocketkube/internal/node"
	"github.com/pocketkube/pocketkube/internal/node/localpath"
	"github.com/pocketkube/pocketkube/internal/pki"
)

// Config is a control plane and, unless Node is nil, a node.
type Config struct {
	ControlPlane controlplane.Config
	// Node is the node's configuration; Run fills in what the control
	// plane provides (kubeconfig, certificates, addresses). nil runs the
	// control plane alone.
	Node *node.Config
	// OnReady is called once the API server is ready, before the node
	// starts.
	OnReady func(controlplane.Ready)
	// ClusterInit makes this the first server of a cluster that other
	// servers join; Join makes this a server that joins one. Either
	// writes DIR/server-token (ServerTokenPath).
	ClusterInit bool
	Join        *JoinServer
	// ServerName names this server's etcd member; defaults to the node's
	// name, else the hostname (controlplane.Servers.MemberName).
	ServerName string
}

// Run runs the cluster until ctx is done or a part fails, then stops it.
func Run(ctx context.Context, cfg Config) error {
	logger := klog.FromContext(ctx)
	if cfg.Node != nil {
		cfg.ControlPlane.NodeName = cfg.Node.NodeName
	}
	if err := prepareServers(ctx, &cfg); err != nil {
		return err
	}
	ready := make(chan controlplane.Ready, 1)
	cfg.ControlPlane.OnReady = func(r controlplane.Ready) {
		if cfg.OnReady != nil {
			cfg.OnReady(r)
		}
		ready <- r
	}
	// The control plane outlives ctx until the node has stopped.
	cp := start(context.WithoutCancel(ctx), func(ctx context.Context) error {
		return controlplane.Run(ctx, cfg.ControlPlane)
	})
	var r controlplane.Ready
	select {
	case r = <-ready:
	case <-cp.done:
		return cp.err
	case <-ctx.Done():
		// Stopped while the control plane starts: it returns the
		// cancellation it was waiting in.
		return stopped(cp.stop())
	}
	objects := bootstrap.Config{Join: joinConfig(cfg.ControlPlane, r)}
	// self is this server's URL, for kube-public/cluster-info once the
	// server it names is gone (keepClusterInfo); "" for a single server.
	var self string
	if j := objects.Join; j != nil && cfg.ControlPlane.Servers != nil {
		self = j.Server
		j.ServerTokenFile, j.PKIDir = ServerTokenPath(cfg.ControlPlane.DataDir), controlplane.PKIDir(cfg.ControlPlane.DataDir)
		if cfg.Join != nil {
			j.Token, j.CertificateKey = cfg.Join.Token, cfg.Join.CertificateKey
			// kube-public/cluster-info keeps naming the server joined
			// through while that one serves: rewritten with this
			// server's URL, its signature would be stale until the
			// bootstrapsigner signs it again, and a joiner in between
			// refused.
			j.Server = cfg.Join.Server
		}
	}
	if cfg.Node == nil {
		if !cfg.ControlPlane.DisableStorage {
			// The joined nodes' provisioners need the access.
			objects.StorageProvisioner = localpath.ProvisionerName
		}
		boot := start(ctx, func(ctx context.Context) error {
			stopApprover := startApprover(ctx, r.Kubeconfig, objects.Join != nil)
			defer stopApprover()
			if err := runBootstrap(ctx, r.Kubeconfig, objects); err != nil && ctx.Err() == nil {
				logger.Error(err, "Setting up the cluster's objects")
			}
			keepClusterInfo(ctx, r.Kubeconfig, self)
			<-ctx.Done()
			return nil
		})
		select {
		case <-cp.done:
			boot.stop()
			return cp.err
		case <-ctx.Done():
			boot.stop()
			return stopped(cp.stop())
		}
	}

	n := *cfg.Node
	n.Kubeconfig = r.NodeKubeconfig
	n.NodeIPs = []net.IP{r.AdvertiseAddress}
	n.ServingCert, n.ServingKey, n.ClientCA = r.NodeServingCert, r.NodeServingKey, r.CA
	n.ProxyKubeconfig, n.ClusterCIDR = r.ProxyKubeconfig, controlplane.ClusterCIDR
	objects.ServerNode = n.NodeName
	if !cfg.ControlPlane.DisableStorage {
		objects.StorageProvisioner = localpath.ProvisionerName
		// The node provisions its own volumes, as every joined node
		// does. Claims for no node (a class with volumeBindingMode
		// Immediate) come here from a single server, as before nodes
		// could join; several servers each refuse them.
		n.LocalPathDir, n.LocalPathUnselected = localpath.StorageDir(cfg.ControlPlane.DataDir), localpath.ProvisionUnselected
		if cfg.ControlPlane.Servers != nil {
			n.LocalPathUnselected = localpath.RefuseUnselected
		}
	}
	if n.NetworkPolicy {
		// The node's NetworkPolicy enforcer uses the Service proxy's
		// credentials.
		objects.NetworkPolicyUser = pki.KubeProxyUser
	}
	if len(n.ClusterDNS) == 0 {
		// No DNS server of the user's: this node serves cluster DNS at
		// the advertised address, behind the kube-dns Service, as
		// system:kube-proxy (the node's DNS server uses the Service
		// proxy's credentials).
		n.ClusterDNS, n.DNSListen = []net.IP{bootstrap.DNSServiceIP}, r.AdvertiseAddress
		objects.DNS = &bootstrap.DNS{ServiceIP: bootstrap.DNSServiceIP, Endpoint: r.AdvertiseAddress, User: pki.KubeProxyUser,
			NodeName: n.NodeName, Several: cfg.ControlPlane.Servers != nil}
	}
	boot := start(ctx, func(ctx context.Context) error {
		stopApprover := startApprover(ctx, r.Kubeconfig, objects.Join != nil)
		defer stopApprover()
		// Not fatal: the cluster runs without them, and the next start
		// tries again.
		if err := runBootstrap(ctx, r.Kubeconfig, objects); err != nil && ctx.Err() == nil {
			logger.Error(err, "Setting up the cluster's objects")
		}
		var keepers sync.WaitGroup
		keepers.Go(func() { keepClusterInfo(ctx, r.Kubeconfig, self) })
		if d := objects.DNS; d != nil && d.Several {
			keepers.Go(func() {
				if err := keepDNSEndpoints(ctx, r.Kubeconfig, *d); err != nil {
					logger.Error(err, "Keeping this server's kube-dns endpoint")
				}
			})
		}
		keepers.Wait()
		<-ctx.Done()
		return nil
	})
	nd := start(klog.NewContext(ctx, klog.LoggerWithName(logger, "node")), func(ctx context.Context) error {
		return node.Run(ctx, n)
	})

	select {
	case <-nd.done: // failed on its own, or stopped by ctx
	case <-cp.done:
		nodeErr := nd.stop()
		boot.stop()
		return errors.Join(cp.err, nodeErr)
	}
	nodeErr := nd.stop()
	boot.stop()
	cpErr := stopped(cp.stop())
	if nodeErr != nil {
		nodeErr = fmt.Errorf("node: %w", nodeErr)
	}
	return errors.Join(nodeErr, cpErr)
}

// runBootstrap sets up the cluster's objects with the admin's credentials
// in kubeconfig.
func runBootstrap(ctx context.Context, kubeconfig string, cfg bootstrap.Config) error {
	client, err := adminClient(kubeconfig)
	if err != nil {
		return err
	}
	return bootstrap.Run(ctx, client, cfg)
}

// keepDNSEndpoints keeps this server's kube-dns endpoint beside the other
// servers' (bootstrap.KeepDNSEndpoints) with the admin's credentials in
// kubeconfig, until ctx is done.
func keepDNSEndpoints(ctx context.Context, kubeconfig string, d bootstrap.DNS) error {
	client, err := adminClient(kubeconfig)
	if err != nil {
		return err
	}
	return bootstrap.KeepDNSEndpoints(ctx, client, d)
}

// keepClusterInfo keeps kube-public/cluster-info naming a live server
// (bootstrap.KeepClusterInfo) with the admin's credentials in kubeconfig,
// until ctx is done; this server's URL is self, "" for a single server
// (nothing to keep).
func keepClusterInfo(ctx context.Context, kubeconfig, self string) {
	if self == "" {
		return
	}
	client, err := adminClient(kubeconfig)
	if err == nil {
		err = bootstrap.KeepClusterInfo(ctx, client, self)
	}
	if err != nil {
		klog.FromContext(ctx).Error(err, "Keeping kube-public/cluster-info naming a live server")
	}
}

func adminClient(kubeconfig string) (kubernetes.Interface, error) {
	restCfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("load admin kubeconfig: %w", err)
	}
	client, err := kubernetes.NewForConfig(restCfg)
	if err != nil {
		return nil, fmt.Errorf("create admin client: %w", err)
	}
	return client, nil
}

// startApprover runs the kubelet serving CSR approver
// (internal/controlplane/csrapprover) with the admin's credentials in
// kubeconfig when other nodes can join (on), and returns how to wait for
// it once ctx is done.
func startApprover(ctx context.Context, kubeconfig string, on bool) (wait func()) {
	if !on {
		return func() {}
	}
	restCfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	var client kubernetes.Interface
	if err == nil {
		client, err = kubernetes.NewForConfig(restCfg)
	}
	if err != nil {
		klog.FromContext(ctx).Error(err, "Kubelet serving CSR approver: admin client")
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		csrapprover.RunUntil(klog.NewContext(ctx, klog.LoggerWithName(klog.FromContext(ctx), "csrapprover")), client)
	}()
	return func() { <-done }
}

// stopped returns nil for the control plane's error when it only says
// that Run stopped it: stopped while it starts, the control plane returns
// the cancellation it was waiting in, and a stop is not a failure.
func stopped(err error) error {
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// part is one of what Run runs, in a goroutine of its own.
type part struct {
	cancel context.CancelFunc
	done   chan struct{} // closed when run has returned
	err    error         // run's error; read after done
}

func start(ctx context.Context, run func(context.Context) error) *part {
	ctx, cancel := context.WithCancel(ctx)
	p := &part{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		p.err = run(ctx)
	}()
	return p
}

// stop cancels the part and waits for it to return.
func (p *part) stop() error {
	p.cancel()
	<-p.done
	return p.err
}

// joinConfig is where other machines join the cluster: the advertised
// address at the API server's port, with DIR/node-token. nil when the API
// server listens on loopback only, where no other machine can reach it.
func joinConfig(cp controlplane.Config, r controlplane.Ready) *bootstrap.Join {
	listen := cp.Listen
	if listen == "" {
		listen = controlplane.DefaultListen
	}
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() || r.AdvertiseAddress == nil || r.AdvertiseAddress.IsLoopback() {
		return nil
	}
	return &bootstrap.Join{
		Server:    "https://" + net.JoinHostPort(r.AdvertiseAddress.String(), port),
		CAFile:    r.CA,
		TokenFile: NodeTokenPath(cp.DataDir),
	}
}

// NodeTokenPath is where `pocketkube up` writes how to join its cluster.
func NodeTokenPath(dataDir string) string { return filepath.Join(dataDir, "node-token") }
