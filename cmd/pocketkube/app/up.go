package app

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"k8s.io/klog/v2"
	evictionapi "k8s.io/kubernetes/pkg/kubelet/eviction/api"

	"github.com/pocketkube/pocketkube/internal/cluster"
	"github.com/pocketkube/pocketkube/internal/controlplane"
	"github.com/pocketkube/pocketkube/internal/controlplane/metricsserver"
	"github.com/pocketkube/pocketkube/internal/logs"
	"github.com/pocketkube/pocketkube/internal/node"
	"github.com/pocketkube/pocketkube/internal/node/eviction"
	"github.com/pocketkube/pocketkube/internal/node/image"
	"github.com/pocketkube/pocketkube/internal/node/pullcreds"
	"github.com/pocketkube/pocketkube/internal/sharedcerts"
	"github.com/pocketkube/pocketkube/internal/version"
)

// DefaultDataDir is where a cluster lives unless --data-dir says otherwise.
const DefaultDataDir = "/var/lib/pocketkube"

type upOptions struct {
	dataDir          string
	listen           string
	advertiseAddress string
	etcdServers      []string
	etcdCAFile       string
	etcdCertFile     string
	etcdKeyFile      string
	disableAgent     bool
	nodeName         string
	kubeletPort      int32
	clusterDNS       []net.IP
	cgroupRoot       string
	disable          []string
	metricsPort      int
	seccompDefault   bool
	ociRuntime       string
	podMaxPids       int64
	evictionHard     string
	evictionSoft     string
	evictionSoftGP   string
	evictionReclaim  string
	evictionMaxGrace int32
	imageGCHigh      int32
	imageGCLow       int32
	pullCredsPolicy  string
	preloadedAllow   []string
	imageMinAge      time.Duration
	kcmArgs          []string
	clusterInit      bool
	server           string
	token            string
	caCertHashes     []string
	certificateKey   string
	// thresholds are the eviction flags parsed by Validate.
	thresholds []evictionapi.Threshold
}

// disableable are the parts of `up` that --disable turns off (k3s's flag:
// a user who brings their own leaves ours out).
var disableable = []string{"servicelb", "storage", "networkpolicy", "metrics"}

func (o *upOptions) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.dataDir, "data-dir", DefaultDataDir, "Directory that holds the cluster: PKI, etcd data, kubeconfigs.")
	fs.StringVar(&o.listen, "listen", controlplane.DefaultListen, "Address and port the API server serves on.")
	fs.StringVar(&o.advertiseAddress, "advertise-address", "", "Address pods reach the API server at (the kubernetes Service's endpoint). Defaults to the --listen address, or the address of the default route.")
	fs.StringSliceVar(&o.etcdServers, "etcd-servers", nil, "External etcd endpoints (comma-separated URLs) to use instead of the embedded etcd.")
	fs.StringVar(&o.etcdCAFile, "etcd-cafile", "", "CA bundle that verifies the external etcd servers.")
	fs.StringVar(&o.etcdCertFile, "etcd-certfile", "", "Client certificate for the external etcd servers.")
	fs.StringVar(&o.etcdKeyFile, "etcd-keyfile", "", "Client key for the external etcd servers.")
	fs.BoolVar(&o.disableAgent, "disable-agent", false, "Run only the control plane: no node agent, so pods stay Pending.")
	fs.StringVar(&o.nodeName, "node-name", "", "Name of this machine's Node. Defaults to the lowercase hostname.")
	fs.Int32Var(&o.kubeletPort, "kubelet-port", 10250, "Port of the node agent's kubelet API.")
	fs.StringVar(&o.cgroupRoot, "cgroup-root", "/", "Root cgroup of the pods' cgroups, which go in ROOT/kubepods. Two nodes on one machine need different roots.")
	fs.StringSliceVar(&o.disable, "disable", nil, "Parts not to run (comma-separated): servicelb (addresses for LoadBalancer Services), storage (the local-path StorageClass and its provisioner), networkpolicy (NetworkPolicy enforcement), metrics (metrics-server: metrics.k8s.io for kubectl top and the HorizontalPodAutoscaler).")
	fs.IntVar(&o.metricsPort, "metrics-port", metricsserver.DefaultPort, "Port metrics-server serves metrics.k8s.io on, at the advertise address, for the API server's aggregator.")
	fs.BoolVar(&o.seccompDefault, "seccomp-default", false, "Give containers that set no seccompProfile the runtime's default profile (RuntimeDefault) instead of none, as kubelet's --seccomp-default.")
	fs.StringVar(&o.ociRuntime, "oci-runtime", "runc", "OCI runtime that creates the node's containers: runc (bin/runc beside the binary, else $PATH's) or crun ($PATH's; about a third of runc's CPU per container start). Containers made by the other one keep it.")
	fs.Int64Var(&o.podMaxPids, "pod-max-pids", node.DefaultPodPidsLimit, "Most processes and threads the containers of one pod may run together (kubelet's --pod-max-pids, the pod cgroup's pids.max). -1 means no limit, kubelet's default; pocketkube limits by default so that a fork bomb in a pod cannot use up the machine's PIDs.")
	fs.StringVar(&o.evictionHard, "eviction-hard", eviction.DefaultHard, "Hard eviction thresholds, as kubelet's --eviction-hard: comma-separated signal<quantity or signal<percent% (signals memory.available, nodefs.available, nodefs.inodesFree, imagefs.available, imagefs.inodesFree, pid.available). Crossing one sets the node's MemoryPressure, DiskPressure or PIDPressure condition and evicts pods, one every 10 s. Signals left out have no threshold; an empty value sets none.")
	fs.StringVar(&o.evictionSoft, "eviction-soft", "", "Soft eviction thresholds, as kubelet's --eviction-soft (e.g. memory.available<1.5Gi): crossed for as long as --eviction-soft-grace-period gives their signal, they evict pods as hard ones do, with the pod's terminationGracePeriodSeconds capped at --eviction-max-pod-grace-period.")
	fs.StringVar(&o.evictionSoftGP, "eviction-soft-grace-period", "", "How long each soft eviction threshold must hold before a pod is evicted, as kubelet's --eviction-soft-grace-period (e.g. memory.available=1m30s); every signal of --eviction-soft needs one.")
	fs.StringVar(&o.evictionReclaim, "eviction-minimum-reclaim", "", "How much of a resource under pressure eviction frees beyond its threshold, as kubelet's --eviction-minimum-reclaim (e.g. imagefs.available=2Gi): the condition stays and pods are evicted until the signal is past threshold + minimum.")
	fs.Int32Var(&o.evictionMaxGrace, "eviction-max-pod-grace-period", 0, "Longest grace period (seconds) of a pod evicted for a soft threshold, as kubelet's --eviction-max-pod-grace-period; pods evicted for a hard threshold get 1 s.")
	fs.Int32Var(&o.imageGCHigh, "image-gc-high-threshold", image.DefaultGCHighThresholdPercent, "Percent of the image filesystem's space in use from which image garbage collection runs (every 5 min), as kubelet's --image-gc-high-threshold: unused images are removed, least recently used first, down to --image-gc-low-threshold. 100 turns it off.")
	fs.Int32Var(&o.imageGCLow, "image-gc-low-threshold", image.DefaultGCLowThresholdPercent, "Percent of the image filesystem's space in use that image garbage collection frees down to, as kubelet's --image-gc-low-threshold.")
	fs.DurationVar(&o.imageMinAge, "minimum-image-ttl-duration", image.DefaultGCMinAge, "Minimum age of an unused image (since the node first saw it) before garbage collection, or the eviction manager under imagefs pressure, may remove it, as kubelet's --minimum-image-ttl-duration.")
	fs.StringVar(&o.pullCredsPolicy, "image-pull-credentials-verification-policy", pullcreds.DefaultPolicy, "Who may use an image already on the node, as kubelet's imagePullCredentialsVerificationPolicy: NeverVerify (any pod), NeverVerifyPreloadedImages (an image the node pulled with a pod's pull secret only a pod with the same credentials; others pull it again with their own; images loaded with `pocketkube images import/load` any pod), NeverVerifyAllowlistedImages (as AlwaysVerify but for --preloaded-images-verification-allowlist), AlwaysVerify (preloaded images too).")
	fs.StringArrayVar(&o.kcmArgs, "kube-controller-manager-arg", nil, "A kube-controller-manager flag, as NAME=VALUE, after pocketkube's own (so it overrides them), as k3s's flag; repeat for more, e.g. --kube-controller-manager-arg node-monitor-grace-period=20s for how long a node whose agent stopped stays Ready (upstream's 50s by default).")
	fs.StringSliceVar(&o.preloadedAllow, "preloaded-images-verification-allowlist", nil, "Images that any pod may use without showing credentials under NeverVerifyAllowlistedImages, as kubelet's preloadedImagesVerificationAllowlist: full names without tag or digest (docker.io/library/busybox), or a prefix ending in /* (registry.example/team/*).")
	fs.BoolVar(&o.clusterInit, "cluster-init", false, "Start the first server of a cluster that other servers join: the embedded etcd serves its peers at the advertise address (ports 2380 and 2379, mutual TLS), the controller-manager and the scheduler run under leader election, and DATA_DIR/server-token (0600) gets the flags that join another server. With --etcd-servers, the servers share that etcd instead (each joining one is given the same --etcd-servers).")
	fs.StringVar(&o.server, "server", "", "Join this machine as a server to the cluster of a running server, https://HOST:PORT (with --token, --discovery-token-ca-cert-hash and --certificate-key: DATA_DIR/server-token of a server started with --cluster-init).")
	fs.StringVar(&o.token, "token", "", "Bootstrap token (ID.SECRET) to join a server with (--server).")
	fs.StringSliceVar(&o.caCertHashes, "discovery-token-ca-cert-hash", nil, "Hash of the cluster CA's public key (sha256:HEX), as kubeadm's flag: the server is trusted only if its CA matches (--server).")
	fs.StringVar(&o.certificateKey, "certificate-key", "", "Key that decrypts the cluster's CAs and service-account keys in the Secret kube-system/kubeadm-certs, as kubeadm's flag (--server).")
	fs.IPSliceVar(&o.clusterDNS, "cluster-dns", nil, "Cluster DNS server addresses written into pods' resolv.conf. Empty: the node serves cluster DNS itself, behind the kube-dns Service at 10.96.0.10.")
}

func (o *upOptions) Validate(_ []string) error {
	if o.dataDir == "" {
		return errors.New("--data-dir must not be empty")
	}
	if o.advertiseAddress != "" && net.ParseIP(o.advertiseAddress) == nil {
		return fmt.Errorf("--advertise-address %q is not an IP address", o.advertiseAddress)
	}
	if len(o.etcdServers) == 0 && (o.etcdCAFile != "" || o.etcdCertFile != "" || o.etcdKeyFile != "") {
		return errors.New("--etcd-cafile, --etcd-certfile and --etcd-keyfile need --etcd-servers")
	}
	if (o.etcdCertFile == "") != (o.etcdKeyFile == "") {
		return errors.New("--etcd-certfile and --etcd-keyfile go together")
	}
	if err := validateNodeFlags(o.kubeletPort, o.cgroupRoot, o.podMaxPids, o.nodeName, o.ociRuntime); err != nil {
		return err
	}
	if err := o.validateServers(); err != nil {
		return err
	}
	if o.metricsPort <= 0 || o.metricsPort > 65535 {
		return fmt.Errorf("--metrics-port %d is not a port", o.metricsPort)
	}
	for _, d := range o.disable {
		if !slices.Contains(disableable, d) {
			return fmt.Errorf("--disable %q: not a part of pocketkube that can be disabled (%s)", d, strings.Join(disableable, ", "))
		}
	}
	maps := make([]map[string]string, 4)
	for i, f := range []struct{ name, value, sep string }{
		{"eviction-hard", o.evictionHard, "<"},
		{"eviction-soft", o.evictionSoft, "<"},
		{"eviction-soft-grace-period", o.evictionSoftGP, "="},
		{"eviction-minimum-reclaim", o.evictionReclaim, "="},
	} {
		m, err := eviction.ParseMap(f.value, f.sep)
		if err != nil {
			return fmt.Errorf("--%s %q: %w", f.name, f.value, err)
		}
		maps[i] = m
	}
	// Each flag's errors name it: the hard thresholds alone, then with
	// the soft ones and their grace periods, then with the reclaims.
	if _, err := eviction.ParseThresholds(maps[0], nil, nil, nil); err != nil {
		return fmt.Errorf("--eviction-hard %q: %w", o.evictionHard, err)
	}
	if _, err := eviction.ParseThresholds(maps[0], maps[1], maps[2], nil); err != nil {
		return fmt.Errorf("--eviction-soft %q, --eviction-soft-grace-period %q: %w", o.evictionSoft, o.evictionSoftGP, err)
	}
	thresholds, err := eviction.ParseThresholds(maps[0], maps[1], maps[2], maps[3])
	if err != nil {
		return fmt.Errorf("--eviction-minimum-reclaim %q: %w", o.evictionReclaim, err)
	}
	o.thresholds = thresholds
	// kubelet's ValidateKubeletConfiguration.
	if o.imageGCHigh < 0 || o.imageGCHigh > 100 {
		return fmt.Errorf("--image-gc-high-threshold %d: must be between 0 and 100, inclusive", o.imageGCHigh)
	}
	if o.imageGCLow < 0 || o.imageGCLow > 100 {
		return fmt.Errorf("--image-gc-low-threshold %d: must be between 0 and 100, inclusive", o.imageGCLow)
	}
	if o.imageGCLow > o.imageGCHigh {
		return fmt.Errorf("--image-gc-low-threshold %d must be less than or equal to --image-gc-high-threshold %d", o.imageGCLow, o.imageGCHigh)
	}
	if err := pullcreds.Validate(o.pullCredsPolicy, o.preloadedAllow); err != nil {
		return err
	}
	for _, a := range o.kcmArgs {
		if name, _, _ := strings.Cut(strings.TrimPrefix(a, "--"), "="); name == "" || strings.HasPrefix(name, "-") {
			return fmt.Errorf("--kube-controller-manager-arg %q: want NAME=VALUE", a)
		}
	}
	if o.imageMinAge < 0 {
		return fmt.Errorf("--minimum-image-ttl-duration %s: must not be negative", o.imageMinAge)
	}
	return nil
}

// validateServers checks the flags of a cluster of servers.
func (o *upOptions) validateServers() error {
	if o.server == "" {
		if o.token != "" || len(o.caCertHashes) > 0 || o.certificateKey != "" {
			return errors.New("--token, --discovery-token-ca-cert-hash and --certificate-key join a server: they need --server")
		}
		return nil
	}
	if o.clusterInit {
		return errors.New("--cluster-init starts a new cluster and --server joins one: give one of them")
	}
	if u, err := url.Parse(o.server); err != nil || u.Scheme != "https" || u.Host == "" {
		return fmt.Errorf("--server %q: want https://HOST:PORT", o.server)
	}
	if o.token == "" || len(o.caCertHashes) == 0 || o.certificateKey == "" {
		return errors.New("--server needs --token, --discovery-token-ca-cert-hash and --certificate-key: the flags in DATA_DIR/server-token of a running server")
	}
	if !sharedcerts.ValidKey(o.certificateKey) {
		return errors.New("--certificate-key: want 64 hex digits (DATA_DIR/server-token of a running server)")
	}
	return nil
}

// NewUpCommand returns `pocketkube up`.
func NewUpCommand() *cobra.Command {
	return withOptions(&cobra.Command{
		Use:   "up",
		Short: "Run a whole single-node cluster in the foreground",
		Long: `Run a whole single-node cluster in the foreground: etcd, kube-apiserver,
kube-controller-manager and kube-scheduler. The admin kubeconfig is written to
DATA_DIR/kubeconfig once the API server is ready. Ctrl-C stops everything;
running up again on the same --data-dir resumes the same cluster.`,
		Args: cobra.NoArgs,
	}, &upOptions{})
}

func (o *upOptions) Run(cmd *cobra.Command, _ []string) error {
	ctx := cmd.Context()
	verbosity := 0
	if f := cmd.Flags().Lookup("v"); f != nil {
		fmt.Sscan(f.Value.String(), &verbosity)
	}
	cfg := cluster.Config{
		ControlPlane: controlplane.Config{
			DataDir:               o.dataDir,
			Listen:                o.listen,
			AdvertiseAddress:      net.ParseIP(o.advertiseAddress),
			EtcdServers:           o.etcdServers,
			EtcdCAFile:            o.etcdCAFile,
			EtcdCertFile:          o.etcdCertFile,
			EtcdKeyFile:           o.etcdKeyFile,
			EtcdLogger:            logs.Zap(cmd.ErrOrStderr(), verbosity),
			DisableServiceLB:      slices.Contains(o.disable, "servicelb"),
			DisableStorage:        slices.Contains(o.disable, "storage"),
			DisableMetrics:        slices.Contains(o.disable, "metrics"),
			MetricsPort:           o.metricsPort,
			ControllerManagerArgs: o.kcmArgs,
		},
		OnReady: func(r controlplane.Ready) {
			printReady(cmd.OutOrStdout(), r)
			if o.clusterInit || o.server != "" {
				etcdFlags := ""
				if len(o.etcdServers) > 0 {
					// Each server names the shared etcd, with TLS
					// files of its own.
					etcdFlags = " --etcd-servers " + strings.Join(o.etcdServers, ",")
				}
				fmt.Fprintf(cmd.OutOrStdout(), "other servers join with: pocketkube up%s $(cat %s)\n", etcdFlags, cluster.ServerTokenPath(o.dataDir))
			}
		},
		ClusterInit: o.clusterInit,
	}
	if o.clusterInit || o.server != "" {
		// The etcd member is named as the node, with or without an agent.
		name, err := nodeName(o.nodeName)
		if err != nil {
			return err
		}
		cfg.ServerName = name
	}
	if o.server != "" {
		cfg.Join = &cluster.JoinServer{Server: o.server, Token: o.token, CACertHashes: o.caCertHashes, CertificateKey: o.certificateKey}
	}
	if !o.disableAgent {
		name, err := nodeName(o.nodeName)
		if err != nil {
			return err
		}
		// --minimum-image-ttl-duration=0 is no minimum age, which
		// image.GCConfig spells as a negative one (its zero is the default).
		minAge := o.imageMinAge
		if minAge == 0 {
			minAge = -1
		}
		cfg.Node = &node.Config{
			DataDir:                                o.dataDir,
			NodeName:                               name,
			KubeletPort:                            o.kubeletPort,
			KubeletVersion:                         version.Kubernetes(),
			ClusterDNS:                             o.clusterDNS,
			CgroupRoot:                             o.cgroupRoot,
			SeccompDefault:                         o.seccompDefault,
			PodPidsLimit:                           o.podMaxPids,
			OCIRuntime:                             o.ociRuntime,
			EvictionThresholds:                     o.thresholds,
			EvictionMaxPodGracePeriod:              int64(o.evictionMaxGrace),
			ImageGCHighThresholdPercent:            int(o.imageGCHigh),
			ImageGCLowThresholdPercent:             int(o.imageGCLow),
			ImageMinimumGCAge:                      minAge,
			ImagePullCredentialsVerificationPolicy: o.pullCredsPolicy,
			PreloadedImagesVerificationAllowlist:   o.preloadedAllow,
			NetworkPolicy:                          !slices.Contains(o.disable, "networkpolicy"),
		}
	}
	klog.FromContext(ctx).Info("Starting pocketkube", "dataDir", o.dataDir, "listen", o.listen)
	go trimGoMemory(ctx, trimInterval, trimThreshold)
	return withFlagNames(cluster.Run(ctx, cfg))
}

// withFlagNames says which flag an error of the cluster's configuration
// comes from; the internal packages know the fields, not the flags.
func withFlagNames(err error) error {
	if le := (*controlplane.ListenError)(nil); errors.As(err, &le) {
		return fmt.Errorf("--listen %q: %w", le.Listen, le.Err)
	}
	if errors.Is(err, controlplane.ErrNoAdvertiseAddress) {
		return fmt.Errorf("%w (pass --advertise-address)", err)
	}
	return err
}

func printReady(w io.Writer, r controlplane.Ready) {
	fmt.Fprintf(w, "pocketkube is up at %s; use it with: export KUBECONFIG=%s; kubectl get nodes\n", r.Server, r.Kubeconfig)
}

type kubeconfigOptions struct{ dataDir string }

// NewKubeconfigCommand returns `pocketkube kubeconfig`.
func NewKubeconfigCommand() *cobra.Command {
	o := &kubeconfigOptions{}
	cmd := &cobra.Command{
		Use:   "kubeconfig",
		Short: "Print the admin kubeconfig of a cluster",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			data, err := os.ReadFile(controlplane.KubeconfigPath(o.dataDir))
			if errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("no kubeconfig in %s: has `pocketkube up --data-dir %s` run?", o.dataDir, o.dataDir)
			}
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(data)
			return err
		},
	}
	cmd.Flags().StringVar(&o.dataDir, "data-dir", DefaultDataDir, "Directory that holds the cluster.")
	return cmd
}
