// Package node runs one Kubernetes node in this process: the agent (a
// small kubelet, internal/node/agent) over the runtime, image store, pod
// network and volumes, the eviction manager (internal/node/eviction),
// the kubelet API (internal/node/kubeletapi) and the node services: the
// routes to the other nodes' pods (internal/node/hostgw), the local-path
// provisioner of the node's volumes (internal/node/localpath, with the
// node's credentials), the Service proxy (internal/node/serviceproxy, upstream
// kube-proxy, with system:kube-proxy's credentials), the NetworkPolicy
// enforcer (internal/node/netpol, same credentials) and, when DNSListen is
// set, the cluster DNS server (internal/node/coredns). It talks to the
// control plane only through the API server, so the same code runs the node
// of `pocketkube up` and, later, a node on another machine.
//
// Layout under DataDir: images/ (the image store, shared with `pocketkube
// images`), node/runtime (bundles, runc state), node/network (netns, CNI
// state), node/pods (volumes, /etc files), node/logs (container logs),
// node/seccomp (Localhost seccomp profiles, as kubelet's
// <root-dir>/seccomp; the admin puts them there).
// node/ is kept 0700: Run makes it so when it is looser.
//
// Outside DataDir a node uses the pods' cgroups under CgroupRoot/kubepods
// and, in the network namespace it runs in, names that upstream or the
// plugins fix: the pod bridge pk0 with its iptables masquerade rule and
// CNI chains, the routes of protocol 112 and the nat chain PK-HOSTGW
// (internal/node/hostgw), kube-proxy's nftables table "kube-proxy" (which a starting
// node deletes as a leftover), the NetworkPolicy table "inet
// pocketkube-netpol" (likewise), the kubelet port, cluster DNS on port 53
// of the node address, hostPorts and NodePorts. Two nodes on one machine
// therefore need a network namespace and a CgroupRoot each; the pod
// network namespaces, the CNI cache and IPAM state, runc's state and the
// shims' sockets are under DataDir.
package node

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
	v1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"
	evictionapi "k8s.io/kubernetes/pkg/kubelet/eviction/api"
	kubeletqos "k8s.io/kubernetes/pkg/kubelet/qos"
	"k8s.io/kubernetes/pkg/util/oom"

	"github.com/pocketkube/pocketkube/internal/node/agent"
	"github.com/pocketkube/pocketkube/internal/node/eviction"
	"github.com/pocketkube/pocketkube/internal/node/image"
	"github.com/pocketkube/pocketkube/internal/node/kubeletapi"
	"github.com/pocketkube/pocketkube/internal/node/localpath"
	"github.com/pocketkube/pocketkube/internal/node/machine"
	"github.com/pocketkube/pocketkube/internal/node/netpol"
	"github.com/pocketkube/pocketkube/internal/node/network"
	"github.com/pocketkube/pocketkube/internal/node/pullcreds"
	"github.com/pocketkube/pocketkube/internal/node/runtime"
	"github.com/pocketkube/pocketkube/internal/node/volume"
)

// The runtime resizes pods in place for the agent.
var _ agent.Resizer = (*runtime.Runtime)(nil)

// Config is what a node needs. Every field but ClusterDNS, KubeletPort,
// CgroupRoot, ProxyKubeconfig and ClusterCIDR is required.
type Config struct {
	// DataDir is the cluster's data directory.
	DataDir string
	// Kubeconfig holds the node's credentials (system:node:<NodeName>).
	Kubeconfig string
	// RESTConfig, when set, is the node's client configuration instead of
	// Kubeconfig's (a joined node's, with its rotating client
	// certificate: internal/node/join).
	RESTConfig *rest.Config
	NodeName   string
	NodeIPs    []net.IP
	// KubeletPort is the kubelet API's port; default 10250.
	KubeletPort int32
	// ServingCert and ServingKey serve the kubelet API; ClientCA verifies
	// its clients (the API server).
	ServingCert, ServingKey, ClientCA string
	// ServingCertificate, when set, replaces ServingCert and ServingKey:
	// the kubelet API serves what it returns (a certificate manager's
	// current certificate; nil until it has one).
	ServingCertificate func() *tls.Certificate
	// KubeletVersion is reported in the Node's nodeInfo.
	KubeletVersion string
	// CgroupRoot is the cgroup (cgroupfs path) the pods' cgroups go under,
	// in CgroupRoot/kubepods as with kubelet's --cgroup-root; empty means
	// "/". Two nodes on one machine need different roots: a pod's cgroup
	// is named for its UID only, and the QoS-level cgroups are shared.
	CgroupRoot string
	// ClusterDNS goes into pods' resolv.conf.
	ClusterDNS []net.IP
	// SeccompDefault is kubelet's --seccomp-default (see agent.Config).
	SeccompDefault bool
	// OCIRuntime is the OCI runtime that creates containers, runtime.Runc
	// ("" too) or runtime.Crun (--oci-runtime).
	OCIRuntime string
	// PodPidsLimit is kubelet's podPidsLimit: the most processes and
	// threads a pod's containers may run together (pids.max of the pod
	// cgroup); zero or negative means no limit, as kubelet's default -1.
	// `up` passes DefaultPodPidsLimit unless told otherwise.
	PodPidsLimit int64
	// ProxyKubeconfig holds the Service proxy's credentials
	// (system:kube-proxy). Empty runs no Service proxy: ClusterIPs and
	// NodePorts then lead nowhere.
	ProxyKubeconfig string
	// ClusterCIDR is the cluster's pod address range; required with
	// ProxyKubeconfig. With it, the node keeps routes to the other nodes'
	// pod CIDRs and pod traffic within the cluster unmasqueraded
	// (internal/node/hostgw), with the Service proxy's credentials.
	ClusterCIDR string
	// EvictionThresholds are kubelet's eviction thresholds
	// (eviction.ParseThresholds of --eviction-hard, --eviction-soft,
	// --eviction-soft-grace-period and --eviction-minimum-reclaim); none
	// means no node-pressure eviction and no pressure condition ever
	// True. `up` passes kubelet's hard defaults unless told otherwise.
	EvictionThresholds []evictionapi.Threshold
	// ImageGCHighThresholdPercent, ImageGCLowThresholdPercent and
	// ImageMinimumGCAge are kubelet's --image-gc-high-threshold,
	// --image-gc-low-threshold and --minimum-image-ttl-duration (see
	// image.GCConfig: zero takes kubelet's defaults, a negative age none).
	ImageGCHighThresholdPercent, ImageGCLowThresholdPercent int
	ImageMinimumGCAge                                       time.Duration
	// ImagePullCredentialsVerificationPolicy and
	// PreloadedImagesVerificationAllowlist are kubelet's
	// imagePullCredentialsVerificationPolicy (empty: its default,
	// NeverVerifyPreloadedImages) and preloadedImagesVerificationAllowlist.
	ImagePullCredentialsVerificationPolicy string
	PreloadedImagesVerificationAllowlist   []string
	// EvictionMaxPodGracePeriod is kubelet's --eviction-max-pod-grace-period
	// (seconds): the longest grace period of a pod evicted for a soft
	// threshold.
	EvictionMaxPodGracePeriod int64
	// DNSListen, with ProxyKubeconfig, is the address this node serves
	// cluster DNS on (port 53), the endpoint of the kube-dns Service. nil
	// serves none.
	DNSListen net.IP
	// LocalPathDir, when set, runs the node's local-path provisioner
	// (internal/node/localpath) with the node's credentials: claims of
	// the StorageClasses of provisioner localpath.ProvisionerName whose
	// selected node is this one get a directory here, removed when its
	// PV is released with reclaim policy Delete. LocalPathUnselected says
	// what it does with claims no node was selected for.
	LocalPathDir        string
	LocalPathUnselected localpath.Unselected
	// NetworkPolicy, with ProxyKubeconfig, enforces NetworkPolicies on
	// the node's pods (internal/node/netpol), with the Service proxy's
	// credentials, which the control plane binds to the ClusterRole
	// system:kube-network-policies. Off, the node deletes a table a
	// run with it on may have left.
	NetworkPolicy bool
}

// privateDir creates dir 0700, or makes it 0700 when it exists with a
// looser mode: it holds the pods' secrets (volumes, bundles with their
// env), their logs and the runtime's sockets, which no other local user
// may read. MkdirAll alone keeps the mode of a directory that exists.
// As etcd's data directory (internal/controlplane/etcd) and kubelet's.
func privateDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(dir, 0o700); err != nil {
			return fmt.Errorf("restrict %s: %w", dir, err)
		}
	}
	return nil
}

// DefaultPodPidsLimit is the PodPidsLimit of `up`. Kubelet's default is
// no limit, for nodes whose pods are trusted; pocketkube assumes pods
// that may be hostile on a shared machine, where a fork bomb in one pod
// must not use up the host's PIDs (kernel.pid_max, often 32768 or
// 4194304) and leave the node unable to start a process. 4096 is the
// podPidsLimit OpenShift sets: far above what a pod usually runs (a JVM or
// a Go server runs tens to hundreds of threads; a build with parallel
// compilers a few hundred processes), and one pod cannot take more than
// an eighth of a 32768 pid_max.
const DefaultPodPidsLimit = 4096

// lateAgent is the agent for the eviction manager, which is made before
// it: the agent asks the manager about pressure, the manager asks the
// agent for pods and to kill them, and does so only once it runs.
type lateAgent struct{ p *atomic.Pointer[agent.Agent] }

func (l lateAgent) ActivePods() ([]*v1.Pod, error) {
	if a := l.p.Load(); a != nil {
		return a.ActivePods()
	}
	return nil, nil
}

// podImages returns the images the active pods' containers name: they
// are in use for image GC even while no container of theirs runs.
func (l lateAgent) podImages() ([]string, error) {
	if l.p.Load() == nil {
		return nil, errors.New("node agent not started")
	}
	pods, err := l.ActivePods()
	if err != nil {
		return nil, err
	}
	var refs []string
	for _, p := range pods {
		for _, c := range p.Spec.InitContainers {
			refs = append(refs, c.Image)
		}
		for _, c := range p.Spec.Containers {
			refs = append(refs, c.Image)
		}
		for _, c := range p.Spec.EphemeralContainers {
			refs = append(refs, c.Image)
		}
		for _, v := range p.Spec.Volumes {
			if v.Image != nil {
				refs = append(refs, v.Image.Reference)
			}
		}
	}
	return refs, nil
}

func (l lateAgent) KillEvicted(ctx context.Context, pod *v1.Pod, message string, condition *v1.PodCondition, grace time.Duration) {
	if a := l.p.Load(); a != nil {
		a.KillEvicted(ctx, pod, message, condition, grace)
	}
}

func (l lateAgent) PodCleanedUp(pod *v1.Pod) bool {
	a := l.p.Load()
	return a == nil || a.PodCleanedUp(pod)
}

// runningContainers lists the running containers of every pod: pod UID →
// name → ID, from the runtime's own records (the summary's listing).
func runningContainers(rt *runtime.Runtime) func(ctx context.Context) (map[string]map[string]string, error) {
	return func(context.Context) (map[string]map[string]string, error) {
		return rt.RunningContainers()
	}
}

// podsCgroup is the cgroup under Config.CgroupRoot that holds the pods,
// kubelet's node allocatable cgroup (pkg/kubelet/cm,
// defaultNodeAllocatableCgroupName).
const podsCgroup = "kubepods"

// Run runs the node until ctx is done, then stops its pods and returns.
func Run(ctx context.Context, cfg Config) error {
	if cfg.DataDir == "" || cfg.Kubeconfig == "" && cfg.RESTConfig == nil || cfg.NodeName == "" || len(cfg.NodeIPs) == 0 {
		return errors.New("node: DataDir, Kubeconfig or RESTConfig, NodeName and NodeIPs are required")
	}
	if cfg.KubeletPort == 0 {
		cfg.KubeletPort = 10250
	}
	logger := klog.FromContext(ctx)
	if err := privateDir(filepath.Join(cfg.DataDir, "node")); err != nil {
		return err
	}
	// The node is kubelet here: the OOM killer takes any pod before it
	// (kubelet's own score; pods get theirs per QoS class). As kubelet, a
	// failure is logged, not fatal: without CAP_SYS_RESOURCE the runtime
	// then gives no container a score below this process's.
	if err := oom.NewOOMAdjuster().ApplyOOMScoreAdj(0, kubeletqos.KubeletOOMScoreAdj); err != nil {
		logger.Info("Failed to apply the node's oom_score_adj", "err", err, "oomScoreAdj", kubeletqos.KubeletOOMScoreAdj)
	}
	// Stopped while starting, a step fails with what the stop did to it
	// (a command killed by ctx's end): a stop, with nothing to stop yet.
	startErr := func(err error) error {
		if ctx.Err() != nil {
			logger.V(2).Info("Node stopped while starting", "err", err)
			return nil
		}
		return err
	}
	var restCfg *rest.Config
	if cfg.RESTConfig != nil {
		restCfg = rest.CopyConfig(cfg.RESTConfig)
	} else {
		var err error
		if restCfg, err = clientcmd.BuildConfigFromFlags("", cfg.Kubeconfig); err != nil {
			return fmt.Errorf("load node kubeconfig: %w", err)
		}
	}
	restCfg.QPS, restCfg.Burst = 50, 100 // kubelet's kubeAPIQPS and kubeAPIBurst
	restCfg.UserAgent = "pocketkube-node"
	client, err := kubernetes.NewForConfig(restCfg)
	if err != nil {
		return err
	}
	// Events go through a client of their own, as kubelet's do
	// (eventRecordQPS, eventBurst): its own rate limiter, so that a burst
	// of pod starts does not queue the pods' status writes behind their
	// events (docs/BENCHMARKS.md, "100 pods: where the CPU goes").
	eventCfg := rest.CopyConfig(restCfg)
	eventCfg.RateLimiter, eventCfg.QPS, eventCfg.Burst = nil, 50, 100
	eventClient, err := kubernetes.NewForConfig(eventCfg)
	if err != nil {
		return err
	}
	machine, err := machine.Read(cfg.DataDir)
	if err != nil {
		return fmt.Errorf("read machine: %w", err)
	}
	images, err := image.Open(ctx, image.Config{Dir: filepath.Join(cfg.DataDir, "images")})
	if err != nil {
		return startErr(err)
	}
	vols, err := volume.New(volume.Config{
		PodsDir:               filepath.Join(cfg.DataDir, "node", "pods"),
		NodeAllocatableMemory: machine.MemoryBytes,
	})
	if err != nil {
		return err
	}
	// Container exits sync their pod; exits seen while the runtime adopts
	// the containers of an earlier run, before the agent exists, need no
	// sync: the agent syncs every pod when it starts.
	var current atomic.Pointer[agent.Agent]
	var rt *runtime.Runtime
	rt, err = runtime.New(ctx, runtime.Config{
		StateDir:     filepath.Join(cfg.DataDir, "node", "runtime"),
		CgroupRoot:   path.Join("/", cfg.CgroupRoot, podsCgroup),
		PodPidsLimit: cfg.PodPidsLimit,
		OCIRuntime:   cfg.OCIRuntime,
		OnExit: func(containerID string) {
			a := current.Load()
			if a == nil {
				return
			}
			if s, err := rt.ContainerStatus(context.WithoutCancel(ctx), containerID); err == nil {
				a.EnqueueUID(s.PodUID)
			}
		},
	})
	if err != nil {
		return startErr(err)
	}
	late := lateAgent{&current}
	// kubelet's KubeletEnsureSecretPulledImages: records of who pulled
	// which image with which secret, under DIR/node/image_manager.
	pullCreds, err := pullcreds.New(ctx, pullcreds.Config{
		Dir:        filepath.Join(cfg.DataDir, "node"),
		Policy:     cfg.ImagePullCredentialsVerificationPolicy,
		Allowlist:  cfg.PreloadedImagesVerificationAllowlist,
		ListImages: pullCredsImages(images),
	})
	if err != nil {
		return err
	}
	// kubelet's image GC: every 5 min above 85 % of the image
	// filesystem, and for the eviction manager under imagefs pressure.
	imageGC, err := image.NewGC(images, image.GCConfig{
		HighThresholdPercent: cfg.ImageGCHighThresholdPercent,
		LowThresholdPercent:  cfg.ImageGCLowThresholdPercent,
		MinAge:               cfg.ImageMinimumGCAge,
		PodImages:            late.podImages,
		PostGC:               pullCreds.PostGC,
	})
	if err != nil {
		return err
	}
	netStateDir := filepath.Join(cfg.DataDir, "node", "network")
	// One summary for the eviction manager and /stats/summary, as
	// kubelet's: they share its CPU samples.
	summary := &eviction.Summary{
		NodeName:      cfg.NodeName,
		NodeFsDir:     filepath.Join(cfg.DataDir, "node"),
		ImageFsDir:    images.Dir(),
		Cgroups:       rt,
		Pods:          late.ActivePods,
		Containers:    runningContainers(rt),
		EmptyDirUsage: vols.EmptyDirUsage,
		PodFs: eviction.PodFs{
			Interfaces: func(uid string, pid int) ([]network.Interface, error) {
				return network.Interfaces(network.NetNSPathIn(netStateDir, uid), pid)
			},
			VolumePath: vols.VolumePath,
			Claim:      vols.Claim,
			LayerDir:   rt.LayerDir,
			LogDir: func(pod *v1.Pod, container string) string {
				return agent.ContainerLogDir(filepath.Join(cfg.DataDir, "node"), pod, container)
			},
		},
	}
	pressure, err := eviction.NewPressure(ctx, eviction.PressureConfig{
		Thresholds:               cfg.EvictionThresholds,
		MaxPodGracePeriodSeconds: cfg.EvictionMaxPodGracePeriod,
		NodeName:                 cfg.NodeName,
		Client:                   client,
		Summary:                  summary,
		Killer:                   late,
		ImageGC:                  imageGC.DeleteUnusedImages,
	})
	if err != nil {
		return err
	}
	a, err := agent.New(agent.Config{
		Client:         client,
		EventClient:    eventClient,
		NodeName:       cfg.NodeName,
		NodeIPs:        cfg.NodeIPs,
		KubeletPort:    cfg.KubeletPort,
		KubeletVersion: cfg.KubeletVersion,
		Machine:        machine,
		DataDir:        filepath.Join(cfg.DataDir, "node"),
		Runtime:        rt,
		Images:         images,
		Volumes:        vols,
		NewNetwork: func(ctx context.Context, podCIDR string) (agent.Network, error) {
			return network.New(ctx, network.Config{StateDir: netStateDir, PodCIDR: podCIDR})
		},
		ClusterDNS:      cfg.ClusterDNS,
		SeccompDefault:  cfg.SeccompDefault,
		Pressure:        pressure,
		PullCredentials: pullCreds,
	})
	if err != nil {
		return err
	}
	current.Store(a)
	api, err := kubeletapi.New(kubeletapi.Config{
		Addr:           net.JoinHostPort("", strconv.Itoa(int(cfg.KubeletPort))),
		CertFile:       cfg.ServingCert,
		KeyFile:        cfg.ServingKey,
		GetCertificate: cfg.ServingCertificate,
		ClientCAFile:   cfg.ClientCA,
		Client:         client,
		NodeName:       cfg.NodeName,
		Provider:       a.Provider(rt),
		Stats:          cgroupStats{rt: rt, machine: machine, netStateDir: netStateDir, nodeFsDir: filepath.Join(cfg.DataDir, "node")},
		Summary:        summary,
	})
	if err != nil {
		return err
	}
	evictions, err := eviction.New(eviction.Config{Pods: a.ActivePods, EmptyDirUsage: vols.EmptyDirUsage, Evicter: a})
	if err != nil {
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return a.Run(gctx) })
	g.Go(func() error {
		evictions.Run(klog.NewContext(gctx, klog.LoggerWithName(logger, "eviction")))
		return nil
	})
	g.Go(func() error {
		pressure.Run(klog.NewContext(gctx, klog.LoggerWithName(logger, "eviction")))
		return nil
	})
	g.Go(func() error {
		imageGC.Run(klog.NewContext(gctx, klog.LoggerWithName(logger, "image-gc")), image.DefaultGCPeriod)
		return nil
	})
	g.Go(func() error {
		if err := api.Run(gctx); err != nil {
			return fmt.Errorf("kubelet API: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		// As kubelet, which logs a healthz listener it cannot open and
		// runs on: the node does not depend on it.
		hctx := klog.NewContext(gctx, klog.LoggerWithName(logger, "healthz"))
		if err := kubeletapi.RunHealthz(hctx, kubeletapi.DefaultHealthzAddr); err != nil {
			logger.Error(err, "Failed to start healthz server")
		}
		return nil
	})
	if cfg.ProxyKubeconfig != "" {
		g.Go(func() error {
			pctx := klog.NewContext(gctx, klog.LoggerWithName(logger, "kube-proxy"))
			if err := runServiceProxy(pctx, cfg); err != nil {
				return fmt.Errorf("service proxy: %w", err)
			}
			return nil
		})
	}
	if cfg.ProxyKubeconfig != "" {
		g.Go(func() error {
			hctx := klog.NewContext(gctx, klog.LoggerWithName(logger, "hostgw"))
			if err := runHostGW(hctx, cfg); err != nil {
				return fmt.Errorf("pod routes: %w", err)
			}
			return nil
		})
	}
	if cfg.ProxyKubeconfig != "" && cfg.NetworkPolicy {
		g.Go(func() error {
			nctx := klog.NewContext(gctx, klog.LoggerWithName(logger, "netpol"))
			if err := netpol.Run(nctx, netpol.Config{Kubeconfig: cfg.ProxyKubeconfig, NodeName: cfg.NodeName}); err != nil {
				return fmt.Errorf("NetworkPolicy enforcer: %w", err)
			}
			return nil
		})
	} else if err := netpol.Cleanup(ctx); err != nil {
		logger.Info("Failed to delete a leftover NetworkPolicy table", "err", err, "table", "inet "+netpol.TableName)
	}
	if cfg.LocalPathDir != "" {
		g.Go(func() error {
			lctx := klog.NewContext(gctx, klog.LoggerWithName(logger, "local-path"))
			lp := localpath.Config{Dir: cfg.LocalPathDir, Node: cfg.NodeName, Unselected: cfg.LocalPathUnselected}
			if err := localpath.Run(lctx, client, lp); err != nil {
				return fmt.Errorf("local-path provisioner: %w", err)
			}
			return nil
		})
	}
	if cfg.ProxyKubeconfig != "" && cfg.DNSListen != nil {
		g.Go(func() error {
			dctx := klog.NewContext(gctx, klog.LoggerWithName(logger, "dns"))
			if err := runClusterDNS(dctx, cfg); err != nil {
				return fmt.Errorf("cluster DNS: %w", err)
			}
			return nil
		})
	}
	err = g.Wait()
	if ctx.Err() != nil && errors.Is(err, context.Canceled) {
		// Stopped while a part was starting: it returned the
		// cancellation it was waiting in. A stop is not a failure.
		logger.V(2).Info("Node stopped while starting", "err", err)
		err = nil
	}
	logger.Info("Node stopped", "node", cfg.NodeName)
	return err
}

// cgroupStats reads the runtime's cgroups for the kubelet API's
// /metrics/resource and /metrics/cadvisor.
type cgroupStats struct {
	rt      *runtime.Runtime
	machine machine.Machine
	// netStateDir is the network manager's state directory, which holds
	// the pods' namespaces; nodeFsDir the node's directory (nodefs).
	netStateDir, nodeFsDir string
}

func cpuMemory(s runtime.CgroupStats, err error) (kubeletapi.CPUMemory, error) {
	return kubeletapi.CPUMemory{
		Cgroup: s.Cgroup, Time: s.Time,
		CPUUsageNanoSeconds: s.CPUUsageNanoSeconds,
		MemoryUsageBytes:    s.MemoryUsageBytes, MemoryWorkingSetBytes: s.MemoryWorkingSetBytes,
		MemoryRSSBytes: s.MemoryRSSBytes, MemoryLimitBytes: s.MemoryLimitBytes,
		Pids:      s.Pids,
		CPUPeriod: s.CPUPeriod, CPUQuota: s.CPUQuota, CPUShares: s.CPUShares,
	}, err
}

func (c cgroupStats) NodeCPUMemory() (kubeletapi.CPUMemory, error) {
	return cpuMemory(c.rt.NodeStats())
}

func (c cgroupStats) PodCPUMemory(podUID string) (kubeletapi.CPUMemory, error) {
	return cpuMemory(c.rt.PodStats(podUID))
}

func (c cgroupStats) ContainerCPUMemory(podUID, id string) (kubeletapi.CPUMemory, error) {
	return cpuMemory(c.rt.ContainerStats(podUID, id))
}

// MachineInfo is the machine as read at start, as kubelet's cached
// machine info.
func (c cgroupStats) MachineInfo() (kubeletapi.MachineInfo, error) {
	m := c.machine
	return kubeletapi.MachineInfo{
		NumCores: m.NumCPU, MemoryCapacity: uint64(m.MemoryBytes),
		MachineID: m.MachineID, SystemUUID: m.SystemUUID, BootID: m.BootID, BootTime: m.BootTime,
	}, nil
}

// pullCredsImages lists the store's images for the pull manager, one
// per ID with the names it goes by.
func pullCredsImages(store *image.Store) func(ctx context.Context) ([]pullcreds.Image, error) {
	return func(ctx context.Context) ([]pullcreds.Image, error) {
		imgs, err := store.List(ctx)
		if err != nil {
			return nil, err
		}
		byID := map[string]*pullcreds.Image{}
		var out []*pullcreds.Image
		for _, img := range imgs {
			p := byID[img.ID]
			if p == nil {
				p = &pullcreds.Image{ID: img.ID}
				byID[img.ID] = p
				out = append(out, p)
			}
			p.RepoTags = append(p.RepoTags, img.Name)
			p.RepoDigests = append(p.RepoDigests, img.RepoDigest())
		}
		list := make([]pullcreds.Image, 0, len(out))
		for _, p := range out {
			list = append(list, *p)
		}
		return list, nil
	}
}
