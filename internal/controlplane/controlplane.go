package controlplane

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"

	"github.com/pocketkube/pocketkube/internal/controlplane/apiserver"
	"github.com/pocketkube/pocketkube/internal/controlplane/controllermanager"
	"github.com/pocketkube/pocketkube/internal/controlplane/etcd"
	"github.com/pocketkube/pocketkube/internal/controlplane/metricsserver"
	"github.com/pocketkube/pocketkube/internal/controlplane/scheduler"
	"github.com/pocketkube/pocketkube/internal/controlplane/servicelb"
	"github.com/pocketkube/pocketkube/internal/pki"
	"github.com/pocketkube/pocketkube/internal/sharedcerts"
)

// The cluster's fixed address plan, as kubeadm's defaults.
const (
	ServiceCIDR          = "10.96.0.0/12"
	ClusterCIDR          = "10.244.0.0/16"
	ServiceAccountIssuer = "https://kubernetes.default.svc.cluster.local"
	// DefaultListen is where the API server serves unless told otherwise.
	DefaultListen = "0.0.0.0:6443"
)

// ErrNoAdvertiseAddress is returned by Run when Config.AdvertiseAddress is
// unset and the host has no default route to take it from.
var ErrNoAdvertiseAddress = errors.New("choose an advertise address")

// ListenError is returned by Run when Config.Listen is not IP:port. The
// command line names its flag instead of the field.
type ListenError struct {
	Listen string
	Err    error
}

func (e *ListenError) Error() string { return fmt.Sprintf("listen address %q: %v", e.Listen, e.Err) }
func (e *ListenError) Unwrap() error { return e.Err }

// KubernetesServiceIP is the ClusterIP of default/kubernetes: the first
// address of ServiceCIDR.
var KubernetesServiceIP = net.IPv4(10, 96, 0, 1)

// How long each stage of a stop may take; together under the 10 s a user
// waits for Ctrl-C.
const (
	stopControllersTimeout = 3 * time.Second
	stopAPIServerTimeout   = 5 * time.Second
	stopEtcdTimeout        = 1500 * time.Millisecond
	// etcd refuses to remove a member until the others have been
	// connected for 5 s (etcdserver.HealthInterval), as after a restart.
	leaveEtcdTimeout = 6 * time.Second
	readyTimeout     = 2 * time.Minute
)

// Config says where the cluster lives and how it is reached.
type Config struct {
	// DataDir holds everything the cluster keeps. Required.
	DataDir string
	// Listen is the API server's host:port. Defaults to DefaultListen.
	Listen string
	// AdvertiseAddress is the address the kubernetes Service points at.
	// Defaults to the Listen host when that is a specific non-loopback
	// address, otherwise to the address of the host's default route.
	AdvertiseAddress net.IP
	// EtcdServers, when set, are used instead of the embedded etcd, with
	// the optional TLS files.
	EtcdServers                           []string
	EtcdCAFile, EtcdCertFile, EtcdKeyFile string
	// EtcdLogger receives the embedded etcd's logs. Defaults to none.
	EtcdLogger *zap.Logger
	// NodeName, when set, gives the local node agent its credentials: a
	// kubeconfig for system:node:<NodeName> and a kubelet serving
	// certificate for NodeName and NodeIPs (default: AdvertiseAddress),
	// reported in Ready.
	NodeName string
	NodeIPs  []net.IP
	// OnReady, when set, is called once the API server is ready and the
	// admin kubeconfig is written.
	OnReady func(Ready)
	// DisableServiceLB leaves LoadBalancer Services without an address
	// (no servicelb controller), for a user who brings their own.
	DisableServiceLB bool
	// DisableStorage serves no local-path volumes, for a user who brings
	// a provisioner of their own: internal/cluster then runs no
	// local-path provisioner on the node, and the server grants nodes
	// none of the access it needs and creates no default StorageClass.
	// (The control plane itself runs no provisioner: every node runs its
	// own, internal/node/localpath.)
	DisableStorage bool
	// DisableMetrics leaves metrics.k8s.io unserved (no metrics-server),
	// and removes the APIService an earlier run registered.
	DisableMetrics bool
	// MetricsPort is the host port metrics-server serves on, at
	// AdvertiseAddress; default metricsserver.DefaultPort.
	MetricsPort int
	// ControllerManagerArgs are more kube-controller-manager flags
	// (controllermanager.Config.ExtraArgs).
	ControllerManagerArgs []string
	// Servers, when set, makes this control plane one of several that
	// share an embedded etcd cluster (`up --cluster-init`, `up
	// --server`), or the external etcd of EtcdServers; nil is the single
	// server of a plain `up`.
	Servers *Servers
}

// Servers says how this server takes part in a cluster of servers: its
// etcd is a member that serves peers and remote clients at
// AdvertiseAddress (ports 2380 and 2379, mutual TLS from the etcd CA in
// DIR/pki/etcd), unless the servers share an external etcd (EtcdServers:
// then MemberName only names the server, and JoinEtcd and Leave are not
// used), and the controller-manager and the scheduler run under leader
// election.
type Servers struct {
	// MemberName is the etcd member's name; defaults to NodeName, else
	// the lowercase hostname.
	MemberName string
	// JoinEtcd lists client URLs of the running members to join
	// (https://IP:2379); empty starts a new etcd cluster (--cluster-init).
	// Ignored once DIR/etcd holds this member's data.
	JoinEtcd []string
	// SharedCerts, when set, are the cluster's CAs and keys
	// (sharedcerts.Fetch) to write into DIR/pki before anything is
	// generated there; ignored when DIR/pki already holds a CA.
	SharedCerts map[string][]byte
	// Leave, when set, is asked once the API server has stopped after
	// Run's context was cancelled: true removes this server's etcd
	// member from the cluster before etcd stops (etcd.Server.Leave), as
	// a clean stop of `up` does, unless it is the only voting member or
	// etcd refuses because the others would lack a quorum; the member
	// then stays. nil keeps the member.
	Leave func() bool
}

// HasPKI reports whether dataDir already holds a cluster CA, as a server
// that has started once does.
func HasPKI(dataDir string) bool {
	_, err := os.Stat(pki.PathsFor(filepath.Join(dataDir, "pki")).CA)
	return err == nil
}

// PKIDir is where Run keeps the PKI of dataDir.
func PKIDir(dataDir string) string { return filepath.Join(dataDir, "pki") }

// Ready tells a caller how to reach a running control plane.
type Ready struct {
	// Kubeconfig is the admin kubeconfig's path.
	Kubeconfig string
	// Server is the API server's URL as written in Kubeconfig.
	Server string
	// CA is the cluster CA certificate's path.
	CA string
	// AdvertiseAddress is the address pods reach the API server at.
	AdvertiseAddress net.IP
	// NodeKubeconfig, NodeServingCert and NodeServingKey are the node
	// agent's credentials; empty unless Config.NodeName was set.
	NodeKubeconfig                  string
	NodeServingCert, NodeServingKey string
	// ProxyKubeconfig holds the node's service proxy's credentials
	// (system:kube-proxy); empty unless Config.NodeName was set.
	ProxyKubeconfig string
}

// KubeconfigPath returns where Run writes the admin kubeconfig for dataDir.
func KubeconfigPath(dataDir string) string { return filepath.Join(dataDir, "kubeconfig") }

// Run runs the control plane until ctx is cancelled or a component fails,
// then stops every component and returns. The error is nil after a
// cancellation that stopped everything cleanly.
func Run(ctx context.Context, cfg Config) error {
	p, err := prepare(ctx, cfg)
	if err != nil {
		return err
	}
	defer p.lock.release()
	return p.run(ctx)
}

// prepared is a control plane whose data directory is locked and whose PKI
// and components' kubeconfigs are on disk: what run needs to start it.
type prepared struct {
	cfg                           Config // with defaults filled in
	dataDir                       string
	lock                          *dirLock
	bindIP                        net.IP
	port                          int
	paths                         pki.Paths
	cmKubeconfig, schedKubeconfig string
	ready                         Ready // all but Kubeconfig, written by run
}

// prepare fills in cfg's defaults, locks the data directory and writes the
// PKI and the kubeconfigs of the components and the node. On success the
// caller releases p.lock.
func prepare(ctx context.Context, cfg Config) (p *prepared, err error) {
	logger := klog.FromContext(ctx)
	if cfg.DataDir == "" {
		return nil, errors.New("controlplane: DataDir is required")
	}
	if cfg.Listen == "" {
		cfg.Listen = DefaultListen
	}
	bindIP, port, err := parseListen(cfg.Listen)
	if err != nil {
		return nil, err
	}
	if cfg.AdvertiseAddress == nil {
		if cfg.AdvertiseAddress, err = advertiseAddress(bindIP); err != nil {
			return nil, err
		}
	}
	dataDir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	lock, err := lockDir(filepath.Join(dataDir, "lock"))
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			lock.release()
		}
	}()

	if cfg.NodeName != "" && len(cfg.NodeIPs) == 0 {
		cfg.NodeIPs = []net.IP{cfg.AdvertiseAddress}
	}
	if cfg.NodeName != "" && bindIP.IsLoopback() {
		// The kubernetes Service leads to AdvertiseAddress:port, where
		// nothing listens: pods' in-cluster clients cannot connect. Not
		// fatal (the host's clients work), but said at every verbosity.
		logger.Error(nil, "The API server listens on a loopback address only, which pods cannot reach: the kubernetes Service will not work in pods; listen on an address of this machine", "listen", cfg.Listen, "advertiseAddress", cfg.AdvertiseAddress)
	}
	hostname, _ := os.Hostname()
	servingIPs := append(hostIPs(), cfg.AdvertiseAddress)
	if !bindIP.IsUnspecified() {
		servingIPs = append(servingIPs, bindIP)
	}
	var member *pki.EtcdMember
	if cfg.Servers != nil {
		if cfg.Servers.MemberName == "" {
			cfg.Servers.MemberName = cfg.NodeName
		}
		if cfg.Servers.MemberName == "" {
			cfg.Servers.MemberName = strings.ToLower(hostname)
		}
		if len(cfg.EtcdServers) == 0 {
			// Servers on an external etcd share it: no member here.
			member = &pki.EtcdMember{Name: cfg.Servers.MemberName, IPs: []net.IP{cfg.AdvertiseAddress}}
		}
		if cfg.Servers.SharedCerts != nil && !HasPKI(dataDir) {
			if err := os.MkdirAll(PKIDir(dataDir), 0o700); err != nil {
				return nil, fmt.Errorf("create pki dir: %w", err)
			}
			if err := sharedcerts.Write(PKIDir(dataDir), cfg.Servers.SharedCerts); err != nil {
				return nil, fmt.Errorf("write the cluster's certificates: %w", err)
			}
		}
	}
	paths, err := pki.Ensure(pki.Config{
		Dir:             PKIDir(dataDir),
		ServiceIP:       KubernetesServiceIP,
		ServingDNSNames: []string{strings.ToLower(hostname)},
		ServingIPs:      servingIPs,
		NodeName:        cfg.NodeName,
		NodeIPs:         cfg.NodeIPs,
		Etcd:            member,
	})
	if err != nil {
		return nil, fmt.Errorf("ensure PKI: %w", err)
	}

	server := "https://" + net.JoinHostPort(dialHost(bindIP).String(), strconv.Itoa(port))
	kubeconfigs := filepath.Join(dataDir, "kubeconfigs")
	if err := os.MkdirAll(kubeconfigs, 0o700); err != nil {
		return nil, fmt.Errorf("create kubeconfigs dir: %w", err)
	}
	p = &prepared{
		cfg: cfg, dataDir: dataDir, lock: lock, bindIP: bindIP, port: port, paths: paths,
		cmKubeconfig:    filepath.Join(kubeconfigs, "controller-manager.conf"),
		schedKubeconfig: filepath.Join(kubeconfigs, "scheduler.conf"),
		ready:           Ready{Server: server, CA: paths.CA, AdvertiseAddress: cfg.AdvertiseAddress},
	}
	if err := writeKubeconfig(p.cmKubeconfig, server, paths.CA, paths.ControllerManager, paths.ControllerManagerKey, pki.ControllerManagerUser); err != nil {
		return nil, err
	}
	if err := writeKubeconfig(p.schedKubeconfig, server, paths.CA, paths.Scheduler, paths.SchedulerKey, pki.SchedulerUser); err != nil {
		return nil, err
	}
	if cfg.NodeName != "" {
		p.ready.NodeKubeconfig = filepath.Join(kubeconfigs, "node.conf")
		p.ready.NodeServingCert, p.ready.NodeServingKey = paths.NodeServing, paths.NodeServingKey
		if err := writeKubeconfig(p.ready.NodeKubeconfig, server, paths.CA, paths.NodeClient, paths.NodeClientKey, pki.NodeUserPrefix+cfg.NodeName); err != nil {
			return nil, err
		}
		p.ready.ProxyKubeconfig = filepath.Join(kubeconfigs, "kube-proxy.conf")
		if err := writeKubeconfig(p.ready.ProxyKubeconfig, server, paths.CA, paths.KubeProxy, paths.KubeProxyKey, pki.KubeProxyUser); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// run starts storage, the API server and, once it is ready, the
// controller-manager and the scheduler, then waits for ctx or a failure.
// It returns after stopping them in reverse order.
func (p *prepared) run(ctx context.Context) error {
	logger := klog.FromContext(ctx)
	etcdServers := p.cfg.EtcdServers
	if len(etcdServers) == 0 {
		start := time.Now()
		ecfg := etcd.Config{DataDir: filepath.Join(p.dataDir, "etcd"), Logger: p.cfg.EtcdLogger}
		if s := p.cfg.Servers; s != nil {
			ecfg.Member = &etcd.Member{
				Name: s.MemberName, IP: p.cfg.AdvertiseAddress, CAFile: p.paths.EtcdCA,
				ServerCertFile: p.paths.EtcdServer, ServerKeyFile: p.paths.EtcdServerKey,
				PeerCertFile: p.paths.EtcdPeer, PeerKeyFile: p.paths.EtcdPeerKey,
				ClientCertFile: p.paths.EtcdClient, ClientKeyFile: p.paths.EtcdClientKey,
				Join: s.JoinEtcd,
			}
		}
		e, err := etcd.Start(ctx, ecfg)
		if err != nil {
			return err
		}
		logger.V(1).Info("Etcd ready", "endpoint", e.Endpoint(), "duration", time.Since(start))
		defer stopEtcd(logger, e)
		if s := p.cfg.Servers; s != nil && s.Leave != nil {
			// Deferred after stopEtcd, so run before it, and before
			// the API server's stop, so run after it.
			defer func() {
				if ctx.Err() != nil && s.Leave() {
					leaveEtcd(ctx, logger, e)
				}
			}()
		}
		etcdServers = []string{e.Endpoint()}
	}

	// The components' contexts keep ctx's values but not its cancellation:
	// on a stop they are cancelled one stage at a time, in reverse start
	// order, so that the API server outlives its clients.
	base := context.WithoutCancel(ctx)
	api := startStage(base, component{name: "kube-apiserver", logName: "apiserver", run: func(ctx context.Context) error {
		return apiserver.Run(ctx, apiserver.Config{
			BindAddress:           p.bindIP,
			Port:                  p.port,
			AdvertiseAddress:      p.cfg.AdvertiseAddress,
			ServiceClusterIPRange: ServiceCIDR,
			EtcdServers:           etcdServers,
			EtcdCAFile:            p.cfg.EtcdCAFile,
			EtcdCertFile:          p.cfg.EtcdCertFile,
			EtcdKeyFile:           p.cfg.EtcdKeyFile,
			PKI:                   p.paths,
			ServiceAccountIssuer:  ServiceAccountIssuer,
		})
	}})
	defer api.stop(logger, stopAPIServerTimeout)
	if p.controllerAccountsAhead() {
		client, err := kubernetes.NewForConfig(&rest.Config{
			Host: p.ready.Server, QPS: controllermanager.KubeAPIQPS, Burst: controllermanager.KubeAPIBurst,
			TLSClientConfig: rest.TLSClientConfig{CAFile: p.paths.CA, CertFile: p.paths.Admin, KeyFile: p.paths.AdminKey},
		})
		if err != nil {
			return err
		}
		saCtx, stopSAs := context.WithTimeout(ctx, readyTimeout)
		defer stopSAs()
		go controllermanager.CreateServiceAccounts(saCtx, client)
	}
	if err := waitReady(ctx, p.ready.Server, p.paths, api); err != nil {
		return err
	}
	admin := KubeconfigPath(p.dataDir)
	if err := writeKubeconfig(admin, p.ready.Server, p.paths.CA, p.paths.Admin, p.paths.AdminKey, pki.AdminUser); err != nil {
		return err
	}

	components := []component{
		{name: "kube-controller-manager", logName: "controller-manager", run: func(ctx context.Context) error {
			return controllermanager.Run(ctx, controllermanager.Config{
				Kubeconfig:            p.cmKubeconfig,
				PKI:                   p.paths,
				ServiceClusterIPRange: ServiceCIDR,
				ClusterCIDR:           ClusterCIDR,
				FlexVolumeDir:         filepath.Join(p.dataDir, "flexvolume"),
				ExtraArgs:             p.cfg.ControllerManagerArgs,
				LeaderElect:           p.cfg.Servers != nil,
			})
		}},
		{name: "kube-scheduler", logName: "scheduler", run: func(ctx context.Context) error {
			return scheduler.Run(ctx, scheduler.Config{Kubeconfig: p.schedKubeconfig, LeaderElect: p.cfg.Servers != nil})
		}},
	}
	if !p.cfg.DisableServiceLB {
		// A controller of the cluster's own, with the admin's
		// credentials as the bootstrap objects: the service controller's
		// bootstrap role cannot add its finalizer to a Service.
		components = append(components, component{name: "servicelb", logName: "controller-manager", run: func(ctx context.Context) error {
			client, err := adminClient(admin)
			if err != nil {
				return err
			}
			// Several servers elect the one that runs it, as they do
			// for the controller-manager and the scheduler.
			lb := servicelb.Config{}
			if s := p.cfg.Servers; s != nil {
				lb.LeaderElect, lb.Identity = true, s.MemberName+"_"+string(uuid.NewUUID())
			}
			return servicelb.Run(ctx, client, lb)
		}})
	}
	if !p.cfg.DisableMetrics {
		components = append(components, component{name: "metrics-server", logName: "metrics-server", run: func(ctx context.Context) error {
			return metricsserver.Run(ctx, metricsserver.Config{
				Kubeconfig: admin,
				Address:    p.cfg.AdvertiseAddress,
				Port:       p.cfg.MetricsPort,
				CertFile:   p.paths.MetricsServing,
				KeyFile:    p.paths.MetricsServingKey,
				CAFile:     p.paths.CA,
				NodeName:   p.cfg.NodeName,
				Several:    p.cfg.Servers != nil && p.cfg.NodeName != "",
			})
		}})
	} else if err := metricsserver.RemoveAPIService(ctx, admin); err != nil {
		return err
	}
	controllers := startStage(base, components...)
	defer controllers.stop(logger, stopControllersTimeout)

	if p.cfg.OnReady != nil {
		ready := p.ready
		ready.Kubeconfig = admin
		p.cfg.OnReady(ready)
	}

	select {
	case <-ctx.Done():
		logger.Info("Stopping the control plane")
		return nil
	case <-api.done:
		return api.err
	case <-controllers.done:
		return controllers.err
	}
}

// controllerAccountsAhead says whether the controllers' ServiceAccounts
// are made while the API server starts (controllermanager.
// CreateServiceAccounts): unless the user's controller-manager flags choose
// other controllers or no per-controller credentials, for which that list
// would be wrong.
func (p *prepared) controllerAccountsAhead() bool {
	for _, a := range p.cfg.ControllerManagerArgs {
		name := strings.TrimPrefix(a, "--")
		if strings.HasPrefix(name, "controllers") || strings.HasPrefix(name, "use-service-account-credentials") {
			return false
		}
	}
	return true
}

// adminClient is a clientset with the credentials of the kubeconfig at path.
func adminClient(path string) (kubernetes.Interface, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		return nil, fmt.Errorf("load admin kubeconfig: %w", err)
	}
	// The controllers run with this client as the controller-manager's
	// do (--kube-api-qps, --kube-api-burst): client-go's default of 5
	// requests a second kept a new LoadBalancer Service waiting ~1 s
	// for its address behind the controller's events.
	cfg.QPS, cfg.Burst = controllermanager.KubeAPIQPS, controllermanager.KubeAPIBurst
	return kubernetes.NewForConfig(cfg)
}

// component is one upstream component as a stage runs it.
type component struct {
	name    string // in errors: "kube-apiserver"
	logName string // its logger's name: "apiserver"
	run     func(context.Context) error
}

// stage is components that start together and stop together, run under an
// errgroup: the first that fails, or returns before the stage is stopped,
// stops the others.
type stage struct {
	cancel context.CancelFunc
	done   chan struct{} // closed when every component has returned
	err    error         // the first failure; read after done
}

func startStage(parent context.Context, components ...component) *stage {
	ctx, cancel := context.WithCancel(parent)
	g, gctx := errgroup.WithContext(ctx)
	for _, c := range components {
		cctx := klog.NewContext(gctx, klog.LoggerWithName(klog.FromContext(parent), c.logName))
		g.Go(func() error {
			err := c.run(cctx)
			if err == nil && ctx.Err() == nil {
				err = fmt.Errorf("%s stopped unexpectedly", c.name)
			}
			if err != nil {
				err = fmt.Errorf("%s: %w", c.name, err)
			}
			return err
		})
	}
	s := &stage{cancel: cancel, done: make(chan struct{})}
	go func() {
		s.err = g.Wait()
		close(s.done)
	}()
	return s
}

// stop cancels the stage and waits up to timeout for its components to
// return. Upstream components do not always return promptly; one that
// outlives timeout is left running, which the process exit then ends.
func (s *stage) stop(logger klog.Logger, timeout time.Duration) {
	s.cancel()
	select {
	case <-s.done:
		if s.err != nil {
			logger.Error(s.err, "Component stopped with an error")
		}
	case <-time.After(timeout):
		// Shown at -v 0: it makes the stop take the whole timeout.
		logger.Error(nil, "Component did not stop in time; leaving it", "timeout", timeout)
	}
}

// leaveEtcd removes this server's etcd member from its cluster
// (Servers.Leave) within leaveEtcdTimeout.
func leaveEtcd(ctx context.Context, logger klog.Logger, e *etcd.Server) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), leaveEtcdTimeout)
	defer cancel()
	switch err := e.Leave(ctx); {
	case err == nil:
		logger.Info("Left the cluster of servers: this server's etcd member is removed; started again on this data dir, it joins as a new member")
	case errors.Is(err, etcd.ErrLastMember):
		logger.Info("Keeping this server's etcd member: it is the cluster's only voting member")
	default:
		logger.Error(err, "Keeping this server's etcd member: etcd did not remove it (the others would lack a quorum of started members); `pocketkube etcd remove-member` removes it once they have one")
	}
}

func stopEtcd(logger klog.Logger, e *etcd.Server) {
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		e.Close()
	}()
	select {
	case <-closed:
	case <-time.After(stopEtcdTimeout):
		logger.Error(nil, "Etcd did not close in time", "timeout", stopEtcdTimeout)
	}
}

// waitReady polls the API server's /readyz as the admin until it answers
// 200, the API server exits, or ctx ends.
func waitReady(ctx context.Context, server string, paths pki.Paths, api *stage) error {
	client, err := adminHTTPClient(paths)
	if err != nil {
		return err
	}
	defer client.CloseIdleConnections()
	deadline := time.Now().Add(readyTimeout)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		resp, err := client.Get(server + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("kube-apiserver at %s not ready after %s", server, readyTimeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-api.done:
			return api.err
		case <-tick.C:
		}
	}
}

func adminHTTPClient(paths pki.Paths) (*http.Client, error) {
	caPEM, err := os.ReadFile(paths.CA)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	cert, err := tls.LoadX509KeyPair(paths.Admin, paths.AdminKey)
	if err != nil {
		return nil, fmt.Errorf("load admin certificate: %w", err)
	}
	return &http.Client{
		Timeout:   2 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}}},
	}, nil
}

// parseListen splits host:port; an empty host means every address.
func parseListen(listen string) (net.IP, int, error) {
	host, portStr, err := net.SplitHostPort(listen)
	if err != nil {
		return nil, 0, &ListenError{Listen: listen, Err: err}
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port <= 0 || port > 65535 {
		return nil, 0, &ListenError{Listen: listen, Err: errors.New("port must be 1-65535")}
	}
	if host == "" {
		return net.IPv4zero, port, nil
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return nil, 0, &ListenError{Listen: listen, Err: errors.New("host must be an IP address")}
	}
	return ip, port, nil
}

// dialHost is the address local clients use to reach a server bound to ip.
func dialHost(ip net.IP) net.IP {
	switch {
	case ip.Equal(net.IPv4zero):
		return net.IPv4(127, 0, 0, 1)
	case ip.Equal(net.IPv6unspecified):
		return net.IPv6loopback
	}
	return ip
}

// advertiseAddress picks the address pods will reach the API server at, as
// kube-apiserver itself picks one for an unspecified bind address.
func advertiseAddress(bindIP net.IP) (net.IP, error) {
	if !bindIP.IsUnspecified() && !bindIP.IsLoopback() {
		return bindIP, nil
	}
	ip, err := utilnet.ResolveBindAddress(net.IPv4zero)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNoAdvertiseAddress, err)
	}
	return ip, nil
}

// hostIPs returns the machine's global unicast addresses, for the serving
// certificate.
func hostIPs() []net.IP {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	var ips []net.IP
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.IsGlobalUnicast() {
			ips = append(ips, n.IP)
		}
	}
	return ips
}
