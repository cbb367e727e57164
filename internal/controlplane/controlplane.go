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
	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/klog/v2"

	"github.com/pocketkube/pocketkube/internal/controlplane/apiserver"
	"github.com/pocketkube/pocketkube/internal/controlplane/controllermanager"
	"github.com/pocketkube/pocketkube/internal/controlplane/etcd"
	"github.com/pocketkube/pocketkube/internal/controlplane/scheduler"
	"github.com/pocketkube/pocketkube/internal/pki"
)

// The cluster's fixed address plan, as kubeadm's defaults.
const (
	ServiceCIDR          = "10.96.0.0/12"
	ClusterCIDR          = "10.244.0.0/16"
	ServiceAccountIssuer = "https://kubernetes.default.svc.cluster.local"
	// DefaultListen is where the API server serves unless told otherwise.
	DefaultListen = "0.0.0.0:6443"
)

// KubernetesServiceIP is the ClusterIP of default/kubernetes: the first
// address of ServiceCIDR.
var KubernetesServiceIP = net.IPv4(10, 96, 0, 1)

// How long each stage of a stop may take; together under the 10 s a user
// waits for Ctrl-C.
const (
	stopControllersTimeout = 3 * time.Second
	stopAPIServerTimeout   = 5 * time.Second
	stopEtcdTimeout        = 1500 * time.Millisecond
	readyTimeout           = 2 * time.Minute
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
}

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
	logger := klog.FromContext(ctx)
	if cfg.DataDir == "" {
		return errors.New("controlplane: DataDir is required")
	}
	if cfg.Listen == "" {
		cfg.Listen = DefaultListen
	}
	bindIP, port, err := parseListen(cfg.Listen)
	if err != nil {
		return err
	}
	if cfg.AdvertiseAddress == nil {
		if cfg.AdvertiseAddress, err = advertiseAddress(bindIP); err != nil {
			return err
		}
	}
	dataDir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	lock, err := lockDir(filepath.Join(dataDir, "lock"))
	if err != nil {
		return err
	}
	defer lock.release()

	if cfg.NodeName != "" && len(cfg.NodeIPs) == 0 {
		cfg.NodeIPs = []net.IP{cfg.AdvertiseAddress}
	}
	if cfg.NodeName != "" && bindIP.IsLoopback() {
		// The kubernetes Service leads to AdvertiseAddress:port, where
		// nothing listens: pods' in-cluster clients cannot connect. Not
		// fatal (the host's clients work), but said at every verbosity.
		logger.Error(nil, "The API server listens on a loopback address only, which pods cannot reach: the kubernetes Service will not work in pods; pass a --listen address of this machine", "listen", cfg.Listen, "advertiseAddress", cfg.AdvertiseAddress)
	}
	hostname, _ := os.Hostname()
	servingIPs := append(hostIPs(), cfg.AdvertiseAddress)
	if !bindIP.IsUnspecified() {
		servingIPs = append(servingIPs, bindIP)
	}
	paths, err := pki.Ensure(pki.Config{
		Dir:             filepath.Join(dataDir, "pki"),
		ServiceIP:       KubernetesServiceIP,
		ServingDNSNames: []string{strings.ToLower(hostname)},
		ServingIPs:      servingIPs,
		NodeName:        cfg.NodeName,
		NodeIPs:         cfg.NodeIPs,
	})
	if err != nil {
		return fmt.Errorf("ensure PKI: %w", err)
	}

	server := "https://" + net.JoinHostPort(dialHost(bindIP).String(), strconv.Itoa(port))
	kubeconfigs := filepath.Join(dataDir, "kubeconfigs")
	if err := os.MkdirAll(kubeconfigs, 0o700); err != nil {
		return fmt.Errorf("create kubeconfigs dir: %w", err)
	}
	cmKubeconfig := filepath.Join(kubeconfigs, "controller-manager.conf")
	schedKubeconfig := filepath.Join(kubeconfigs, "scheduler.conf")
	if err := writeKubeconfig(cmKubeconfig, server, paths.CA, paths.ControllerManager, paths.ControllerManagerKey, pki.ControllerManagerUser); err != nil {
		return err
	}
	if err := writeKubeconfig(schedKubeconfig, server, paths.CA, paths.Scheduler, paths.SchedulerKey, pki.SchedulerUser); err != nil {
		return err
	}

	ready := Ready{Server: server, CA: paths.CA, AdvertiseAddress: cfg.AdvertiseAddress}
	if cfg.NodeName != "" {
		ready.NodeKubeconfig = filepath.Join(kubeconfigs, "node.conf")
		ready.NodeServingCert, ready.NodeServingKey = paths.NodeServing, paths.NodeServingKey
		if err := writeKubeconfig(ready.NodeKubeconfig, server, paths.CA, paths.NodeClient, paths.NodeClientKey, pki.NodeUserPrefix+cfg.NodeName); err != nil {
			return err
		}
		ready.ProxyKubeconfig = filepath.Join(kubeconfigs, "kube-proxy.conf")
		if err := writeKubeconfig(ready.ProxyKubeconfig, server, paths.CA, paths.KubeProxy, paths.KubeProxyKey, pki.KubeProxyUser); err != nil {
			return err
		}
	}

	// Storage.
	etcdServers := cfg.EtcdServers
	if len(etcdServers) == 0 {
		start := time.Now()
		e, err := etcd.Start(ctx, etcd.Config{DataDir: filepath.Join(dataDir, "etcd"), Logger: cfg.EtcdLogger})
		if err != nil {
			return err
		}
		logger.V(1).Info("Etcd ready", "endpoint", e.Endpoint(), "duration", time.Since(start))
		defer stopEtcd(logger, e)
		etcdServers = []string{e.Endpoint()}
	}

	// The API server, then the components that are its clients.
	// The components' contexts keep ctx's values but not its cancellation:
	// on a stop they are cancelled one by one, in reverse start order.
	base := context.WithoutCancel(ctx)
	apiCtx, apiCancel := context.WithCancel(klog.NewContext(base, klog.LoggerWithName(logger, "apiserver")))
	defer apiCancel()
	api := goRun(func() error {
		return apiserver.Run(apiCtx, apiserver.Config{
			BindAddress:           bindIP,
			Port:                  port,
			AdvertiseAddress:      cfg.AdvertiseAddress,
			ServiceClusterIPRange: ServiceCIDR,
			EtcdServers:           etcdServers,
			EtcdCAFile:            cfg.EtcdCAFile,
			EtcdCertFile:          cfg.EtcdCertFile,
			EtcdKeyFile:           cfg.EtcdKeyFile,
			PKI:                   paths,
			ServiceAccountIssuer:  ServiceAccountIssuer,
		})
	})
	defer stop(logger, "kube-apiserver", apiCancel, api, stopAPIServerTimeout)
	if err := waitReady(ctx, server, paths, api); err != nil {
		return err
	}
	admin := KubeconfigPath(dataDir)
	if err := writeKubeconfig(admin, server, paths.CA, paths.Admin, paths.AdminKey, pki.AdminUser); err != nil {
		return err
	}

	ctrlCtx, ctrlCancel := context.WithCancel(base)
	defer ctrlCancel()
	cm := goRun(func() error {
		return controllermanager.Run(klog.NewContext(ctrlCtx, klog.LoggerWithName(logger, "controller-manager")), controllermanager.Config{
			Kubeconfig:            cmKubeconfig,
			PKI:                   paths,
			ServiceClusterIPRange: ServiceCIDR,
			ClusterCIDR:           ClusterCIDR,
			FlexVolumeDir:         filepath.Join(dataDir, "flexvolume"),
		})
	})
	sched := goRun(func() error {
		return scheduler.Run(klog.NewContext(ctrlCtx, klog.LoggerWithName(logger, "scheduler")), scheduler.Config{Kubeconfig: schedKubeconfig})
	})
	defer stopControllers(logger, ctrlCancel, cm, sched)

	if cfg.OnReady != nil {
		ready.Kubeconfig = admin
		cfg.OnReady(ready)
	}

	select {
	case <-ctx.Done():
		logger.Info("Stopping the control plane")
		return nil
	case err := <-api:
		return unexpectedExit("kube-apiserver", err)
	case err := <-cm:
		return unexpectedExit("kube-controller-manager", err)
	case err := <-sched:
		return unexpectedExit("kube-scheduler", err)
	}
}

func unexpectedExit(component string, err error) error {
	if err == nil {
		return fmt.Errorf("%s stopped unexpectedly", component)
	}
	return err
}

// goRun runs f in a goroutine and delivers its result on the returned
// channel, which is then closed.
func goRun(f func() error) chan error {
	done := make(chan error, 1)
	go func() {
		defer close(done)
		done <- f()
	}()
	return done
}

// stop cancels one component and waits up to timeout for it to return.
func stop(logger klog.Logger, name string, cancel context.CancelFunc, done <-chan error, timeout time.Duration) {
	cancel()
	select {
	case err, ok := <-done:
		if ok && err != nil {
			logger.Error(err, "Component stopped with an error", "component", name)
		}
	case <-time.After(timeout):
		logger.Info("Component did not stop in time; leaving it", "component", name, "timeout", timeout)
	}
}

func stopControllers(logger klog.Logger, cancel context.CancelFunc, cm, sched <-chan error) {
	cancel()
	deadline := time.After(stopControllersTimeout)
	for name, done := range map[string]<-chan error{"kube-controller-manager": cm, "kube-scheduler": sched} {
		select {
		case err, ok := <-done:
			if ok && err != nil {
				logger.Error(err, "Component stopped with an error", "component", name)
			}
		case <-deadline:
			logger.Info("Component did not stop in time; leaving it", "component", name)
		}
	}
}

func stopEtcd(logger klog.Logger, e *etcd.Server) {
	closed := goRun(func() error { e.Close(); return nil })
	select {
	case <-closed:
	case <-time.After(stopEtcdTimeout):
		logger.Info("Etcd did not close in time", "timeout", stopEtcdTimeout)
	}
}

// waitReady polls the API server's /readyz as the admin until it answers
// 200, the API server exits, or ctx ends.
func waitReady(ctx context.Context, server string, paths pki.Paths, api <-chan error) error {
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
		case err := <-api:
			return unexpectedExit("kube-apiserver", err)
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
		return nil, 0, fmt.Errorf("--listen %q: %w", listen, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port <= 0 || port > 65535 {
		return nil, 0, fmt.Errorf("--listen %q: port must be 1-65535", listen)
	}
	if host == "" {
		return net.IPv4zero, port, nil
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return nil, 0, fmt.Errorf("--listen %q: host must be an IP address", listen)
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
		return nil, fmt.Errorf("choose an advertise address (pass --advertise-address): %w", err)
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
