package app

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"path/filepath"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"
	kubeletconfig "k8s.io/kubernetes/pkg/kubelet/apis/config"
	kubeletcertificate "k8s.io/kubernetes/pkg/kubelet/certificate"

	"github.com/pocketkube/pocketkube/internal/bootstrap"
	"github.com/pocketkube/pocketkube/internal/controlplane"
	"github.com/pocketkube/pocketkube/internal/node"
	"github.com/pocketkube/pocketkube/internal/node/apilb"
	"github.com/pocketkube/pocketkube/internal/node/eviction"
	"github.com/pocketkube/pocketkube/internal/node/join"
	"github.com/pocketkube/pocketkube/internal/node/localpath"
	"github.com/pocketkube/pocketkube/internal/version"
)

// agentOptions are `pocketkube agent`'s flags; those that mean what a flag
// of `up` means have its name.
type agentOptions struct {
	server         string
	token          string
	caCertHashes   []string
	dataDir        string
	nodeName       string
	nodeIP         net.IP
	kubeletPort    int32
	cgroupRoot     string
	clusterDNS     []net.IP
	seccompDefault bool
	ociRuntime     string
	podMaxPids     int64
}

func (o *agentOptions) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.server, "server", "", "URL of the cluster's API server, https://HOST:PORT, as `pocketkube up` prints it.")
	fs.StringVar(&o.token, "token", "", "Bootstrap token (ID.SECRET) to join with: the --token of DATA_DIR/node-token on the server.")
	fs.StringSliceVar(&o.caCertHashes, "discovery-token-ca-cert-hash", nil, "Hash of the cluster CA's public key (sha256:HEX), as kubeadm's flag: the --discovery-token-ca-cert-hash of DATA_DIR/node-token on the server. The server is trusted only if its CA matches.")
	fs.StringVar(&o.dataDir, "data-dir", DefaultDataDir, "Directory that holds the node: its credentials (agent/), images, pods.")
	fs.StringVar(&o.nodeName, "node-name", "", "Name of this machine's Node. Defaults to the lowercase hostname.")
	fs.IPVar(&o.nodeIP, "node-ip", nil, "The node's address (its InternalIP), where the API server reaches its kubelet API. Defaults to the address this machine reaches --server from.")
	fs.Int32Var(&o.kubeletPort, "kubelet-port", 10250, "Port of the node agent's kubelet API.")
	fs.StringVar(&o.cgroupRoot, "cgroup-root", "/", "Root cgroup of the pods' cgroups, which go in ROOT/kubepods. Two nodes on one machine need different roots.")
	fs.IPSliceVar(&o.clusterDNS, "cluster-dns", nil, "Cluster DNS server addresses written into pods' resolv.conf. Empty: the kube-dns Service of `up`, 10.96.0.10.")
	fs.BoolVar(&o.seccompDefault, "seccomp-default", false, "Give containers that set no seccompProfile the runtime's default profile (RuntimeDefault), as kubelet's --seccomp-default.")
	fs.StringVar(&o.ociRuntime, "oci-runtime", "runc", "OCI runtime that creates the node's containers: runc (bin/runc beside the binary, else $PATH's) or crun ($PATH's; about a third of runc's CPU per container start). Containers made by the other one keep it.")
	fs.Int64Var(&o.podMaxPids, "pod-max-pids", node.DefaultPodPidsLimit, "Most processes and threads the containers of one pod may run together (kubelet's --pod-max-pids); -1 means no limit.")
}

func (o *agentOptions) Validate(_ []string) error {
	if o.server == "" {
		return errors.New("--server is required: the API server of a `pocketkube up`, https://HOST:PORT")
	}
	if u, err := url.Parse(o.server); err != nil || u.Scheme != "https" || u.Host == "" {
		return fmt.Errorf("--server %q: want https://HOST:PORT", o.server)
	}
	if o.dataDir == "" {
		return errors.New("--data-dir must not be empty")
	}
	return validateNodeFlags(o.kubeletPort, o.cgroupRoot, o.podMaxPids, o.nodeName, o.ociRuntime)
}

// NewAgentCommand returns `pocketkube agent`.
func NewAgentCommand() *cobra.Command {
	return withOptions(&cobra.Command{
		Use:   "agent",
		Short: "Run a node that joins a running cluster",
		Long: `Run only a node (the node agent, the Service proxy) and join it to the
cluster of a running ` + "`pocketkube up`" + `, with kubeadm's token discovery and
kubelet's TLS bootstrap: --token and --discovery-token-ca-cert-hash are in
DATA_DIR/node-token on the server. Running agent again on the same --data-dir
resumes the same node with its certificates.`,
		Args: cobra.NoArgs,
	}, &agentOptions{})
}

func (o *agentOptions) Run(cmd *cobra.Command, _ []string) error {
	ctx := cmd.Context()
	logger := klog.FromContext(ctx)
	name, err := nodeName(o.nodeName)
	if err != nil {
		return err
	}
	nodeIP := o.nodeIP
	if nodeIP == nil {
		ip, err := sourceAddress(o.server)
		if err != nil {
			return fmt.Errorf("no --node-ip, and %w", err)
		}
		nodeIP = ip
	}
	agentDir := filepath.Join(o.dataDir, "agent")
	creds, err := join.Join(ctx, join.Config{
		Server: o.server, Token: o.token, CACertHashes: o.caCertHashes,
		Dir: agentDir, NodeName: name,
	})
	if err != nil {
		return err
	}
	// The node's clients reach the API servers through a load balancer
	// on loopback, which goes on to another server when the one it
	// used stops (internal/node/apilb). It serves until the node has
	// stopped, which may still write to the API.
	lbCtx, stopLB := context.WithCancel(context.WithoutCancel(ctx))
	defer stopLB()
	lb, err := apiBalancer(lbCtx, creds, agentDir)
	if err != nil {
		return err
	}
	// The kubelet API's certificate, as kubelet's serverTLSBootstrap gets
	// it: a kubernetes.io/kubelet-serving CSR for the node's name and
	// address, which the server's csrapprover approves, renewed by
	// kubelet's certificate manager.
	restCfg, _, err := join.RotatingClient(ctx, creds, name)
	if err != nil {
		return fmt.Errorf("client certificate manager: %w", err)
	}
	client, err := kubernetes.NewForConfig(restCfg)
	if err != nil {
		return err
	}
	addresses := []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: nodeIP.String()}, {Type: corev1.NodeHostName, Address: name}}
	serving, err := kubeletcertificate.NewKubeletServerCertificateManager(client, &kubeletconfig.KubeletConfiguration{}, types.NodeName(name),
		func() []corev1.NodeAddress { return addresses }, creds.CertDir)
	if err != nil {
		return fmt.Errorf("serving certificate: %w", err)
	}
	serving.Start()
	defer serving.Stop()
	go func() {
		if err := apilb.Keep(ctx, client, lb, filepath.Join(agentDir, apiServersFile)); err != nil {
			logger.Error(err, "Keeping the API servers of the load balancer")
		}
	}()
	hard, err := eviction.ParseMap(eviction.DefaultHard, "<")
	if err != nil {
		return err
	}
	thresholds, err := eviction.ParseThresholds(hard, nil, nil, nil)
	if err != nil {
		return err
	}
	clusterDNS := o.clusterDNS
	if len(clusterDNS) == 0 {
		clusterDNS = []net.IP{bootstrap.DNSServiceIP}
	}
	how := "with a new client certificate"
	if !creds.Bootstrapped {
		how = "with the certificates of an earlier join"
	}
	fmt.Fprintf(cmd.OutOrStdout(), "pocketkube agent joined %s as node %s (%s), %s\n", o.server, name, nodeIP, how)
	logger.Info("Starting pocketkube agent", "dataDir", o.dataDir, "server", o.server, "node", name, "nodeIP", nodeIP, "bootstrapped", creds.Bootstrapped)
	go trimGoMemory(ctx, trimInterval, trimThreshold)
	return node.Run(klog.NewContext(ctx, klog.LoggerWithName(logger, "node")), node.Config{
		DataDir:            o.dataDir,
		RESTConfig:         restCfg,
		NodeName:           name,
		NodeIPs:            []net.IP{nodeIP},
		KubeletPort:        o.kubeletPort,
		ServingCertificate: serving.Current,
		ClientCA:           creds.CAFile,
		KubeletVersion:     version.Kubernetes(),
		CgroupRoot:         o.cgroupRoot,
		ClusterDNS:         clusterDNS,
		SeccompDefault:     o.seccompDefault,
		PodPidsLimit:       o.podMaxPids,
		OCIRuntime:         o.ociRuntime,
		EvictionThresholds: thresholds,
		// The Service proxy runs as the node (system:nodes is bound to
		// system:node-proxier: internal/bootstrap).
		ProxyKubeconfig: creds.Kubeconfig,
		ClusterCIDR:     controlplane.ClusterCIDR,
		// So does the NetworkPolicy enforcer, once the server grants
		// system:nodes its access (internal/bootstrap: only while the
		// server enforces NetworkPolicies; until then it waits).
		NetworkPolicy: true,
		// The node makes and removes its own local-path volumes, with
		// its own credentials, once the server grants nodes that
		// access (internal/bootstrap: only while it serves storage).
		// Claims for no node are the servers' nodes' to answer.
		LocalPathDir:        localpath.StorageDir(o.dataDir),
		LocalPathUnselected: localpath.IgnoreUnselected,
	})
}

// apiServersFile, in the agent's directory, holds the API servers the
// load balancer learnt from the `kubernetes` endpoints, for the next start.
const apiServersFile = "apiservers"

// apiBalancer starts the node's API server load balancer, which tries the
// server of creds' kubeconfig and those an earlier run saved, and points
// creds.Kubeconfig at a copy of it that names the balancer. The balancer
// serves until ctx is done.
func apiBalancer(ctx context.Context, creds *join.Credentials, agentDir string) (*apilb.LB, error) {
	joined, err := apilb.ServerOf(creds.Kubeconfig)
	if err != nil {
		return nil, err
	}
	lb, err := apilb.New("127.0.0.1:0", joined, apilb.Saved(filepath.Join(agentDir, apiServersFile)))
	if err != nil {
		return nil, err
	}
	go lb.Serve(ctx)
	kubeconfig := filepath.Join(agentDir, "kubelet-lb.conf")
	if err := lb.WriteKubeconfig(creds.Kubeconfig, kubeconfig); err != nil {
		return nil, err
	}
	creds.Kubeconfig = kubeconfig
	return lb, nil
}

// sourceAddress is the address of this machine that packets to server's
// host leave from.
func sourceAddress(server string) (net.IP, error) {
	u, err := url.Parse(server)
	if err != nil {
		return nil, err
	}
	host := u.Hostname()
	c, err := net.Dial("udp", net.JoinHostPort(host, "6443"))
	if err != nil {
		return nil, fmt.Errorf("no route to %s: %w", host, err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).IP, nil
}
