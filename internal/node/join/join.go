// Package join makes this machine's node a member of a running cluster
// with the protocols kubeadm and kubelet use, and upstream's own code for
// each step:
//
//   - discovery, as `kubeadm join` does it: kube-public/cluster-info is
//     fetched anonymously, its bootstrapsigner JWS signature is verified
//     with the bootstrap token, and the CA it holds is checked against the
//     --discovery-token-ca-cert-hash pins (kubeadm's
//     discovery/token.RetrieveValidatedConfigInfo). A wrong token or hash
//     is refused before anything is written;
//   - TLS bootstrap, as kubelet does it: a bootstrap kubeconfig with the
//     token, a kubernetes.io/kube-apiserver-client-kubelet CSR for
//     system:node:NAME, which the controller-manager's csrapproving
//     approves (the RBAC of internal/bootstrap), and a kubeconfig that
//     uses the signed certificate (kubelet's
//     certificate/bootstrap.LoadClientCert).
//
// A restart on the same directory finds the kubeconfig and its
// certificate and makes no new CSR, as kubelet does; discovery then does
// not run at all.
//
// Layout under Dir: ca.crt (the cluster CA, as discovered),
// bootstrap-kubeconfig (the token's kubeconfig, 0600, kept as kubelet keeps
// its --bootstrap-kubeconfig for a new bootstrap when the certificate has
// expired), kubelet.conf (the node's kubeconfig) and pki/ (kubelet's
// certificate store: kubelet-client-current.pem and the dated files it
// links to). Dir is 0700.
package join

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	bootstraputil "k8s.io/cluster-bootstrap/token/util"
	"k8s.io/klog/v2"
	kubeadmapi "k8s.io/kubernetes/cmd/kubeadm/app/apis/kubeadm"
	"k8s.io/kubernetes/cmd/kubeadm/app/discovery/token"
	"k8s.io/kubernetes/cmd/kubeadm/app/util/pubkeypin"
	"k8s.io/kubernetes/pkg/kubelet/certificate/bootstrap"

	"github.com/pocketkube/pocketkube/internal/atomicfile"
)

// Config is how to join.
type Config struct {
	// Server is the API server's URL, https://HOST:PORT.
	Server string
	// Token is the bootstrap token, ID.SECRET.
	Token string
	// CACertHashes are the pins of the cluster CA's public key
	// ("sha256:HEX"); the discovered CA must match one.
	CACertHashes []string
	// Dir is where the node's credentials go (see the package doc).
	Dir string
	// NodeName is the Node the certificate is for.
	NodeName string
	// DiscoveryTimeout bounds the wait for cluster-info and its
	// signature; zero means one minute.
	DiscoveryTimeout time.Duration
}

// Credentials are what a joined node uses.
type Credentials struct {
	// Kubeconfig holds system:node:NAME's client certificate.
	Kubeconfig string
	// CAFile is the cluster CA (PEM).
	CAFile string
	// CertDir is kubelet's certificate directory.
	CertDir string
	// Bootstrapped says whether this call made a CSR (false: the
	// credentials of an earlier join were still valid).
	Bootstrapped bool
}

// Paths returns the files of dir.
func Paths(dir string) (kubeconfig, bootstrapKubeconfig, caFile, certDir string) {
	return filepath.Join(dir, "kubelet.conf"), filepath.Join(dir, "bootstrap-kubeconfig"),
		filepath.Join(dir, "ca.crt"), filepath.Join(dir, "pki")
}

// Join returns the node's credentials, joining the cluster unless an
// earlier join left them in Dir.
func Join(ctx context.Context, cfg Config) (*Credentials, error) {
	logger := klog.FromContext(ctx)
	kubeconfig, bootstrapPath, caFile, certDir := Paths(cfg.Dir)
	creds := &Credentials{Kubeconfig: kubeconfig, CAFile: caFile, CertDir: certDir}
	if cfg.NodeName == "" {
		return nil, errors.New("join: no node name")
	}
	_, errKC := os.Stat(kubeconfig)
	_, errCA := os.Stat(caFile)
	_, errBK := os.Stat(bootstrapPath)
	if errKC == nil && errCA == nil && errBK == nil {
		// A join of an earlier run: kubelet's LoadClientCert keeps a
		// valid kubeconfig and bootstraps again with the stored
		// bootstrap kubeconfig only when its certificate has expired.
		logger.Info("Using the credentials of an earlier join", "dir", cfg.Dir)
		if err := bootstrap.LoadClientCert(ctx, kubeconfig, bootstrapPath, certDir, types.NodeName(cfg.NodeName)); err != nil {
			return nil, fmt.Errorf("TLS bootstrap: %w", err)
		}
		return creds, nil
	}

	server, caPEM, err := Discover(ctx, cfg.Server, cfg.Token, cfg.CACertHashes, cfg.DiscoveryTimeout)
	if err != nil {
		return nil, err
	}
	// Trusted: from here on, write.
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, err
	}
	if err := atomicfile.Write(caFile, caPEM, 0o644); err != nil {
		return nil, err
	}
	bootstrapCfg := clientcmdapi.NewConfig()
	bootstrapCfg.Clusters["pocketkube"] = &clientcmdapi.Cluster{Server: server, CertificateAuthority: caFile}
	bootstrapCfg.AuthInfos["tls-bootstrap-token-user"] = &clientcmdapi.AuthInfo{Token: cfg.Token}
	bootstrapCfg.Contexts["tls-bootstrap"] = &clientcmdapi.Context{Cluster: "pocketkube", AuthInfo: "tls-bootstrap-token-user"}
	bootstrapCfg.CurrentContext = "tls-bootstrap"
	data, err := clientcmd.Write(*bootstrapCfg)
	if err != nil {
		return nil, err
	}
	if err := atomicfile.Write(bootstrapPath, data, 0o600); err != nil {
		return nil, err
	}
	logger.Info("Requesting the node's client certificate", "node", cfg.NodeName, "server", server)
	if err := bootstrap.LoadClientCert(ctx, kubeconfig, bootstrapPath, certDir, types.NodeName(cfg.NodeName)); err != nil {
		return nil, fmt.Errorf("TLS bootstrap: %w", err)
	}
	creds.Bootstrapped = true
	return creds, nil
}

// Discover finds the cluster behind server as `kubeadm join` does (token
// discovery of kube-public/cluster-info, verified with token and pinned by
// caCertHashes) and returns the API server's URL it names and the cluster
// CA. It writes nothing. A zero timeout means one minute.
func Discover(ctx context.Context, server, tok string, caCertHashes []string, timeout time.Duration) (string, []byte, error) {
	logger := klog.FromContext(ctx)
	endpoint, err := endpointOf(server)
	if err != nil {
		return "", nil, err
	}
	if !bootstraputil.IsValidBootstrapToken(tok) {
		return "", nil, errors.New("--token: not a bootstrap token (ID.SECRET, [a-z0-9]{6}.[a-z0-9]{16}); `pocketkube up` writes the cluster's in DATA_DIR/node-token")
	}
	if len(caCertHashes) == 0 {
		return "", nil, errors.New("--discovery-token-ca-cert-hash is required (DATA_DIR/node-token of `pocketkube up`): without it the server cannot be trusted")
	}
	if err := pubkeypin.NewSet().Allow(caCertHashes...); err != nil {
		return "", nil, fmt.Errorf("--discovery-token-ca-cert-hash: %w", err)
	}
	if timeout == 0 {
		timeout = time.Minute
	}
	logger.Info("Discovering the cluster", "server", server)
	// kubeadm's discovery retries until its timeout and takes no
	// context: a stop does not wait for it.
	type discovered struct {
		info *clientcmdapi.Config
		err  error
	}
	result := make(chan discovered, 1)
	go func() {
		info, err := token.RetrieveValidatedConfigInfo(nil, &kubeadmapi.Discovery{BootstrapToken: &kubeadmapi.BootstrapTokenDiscovery{
			Token: tok, APIServerEndpoint: endpoint, CACertHashes: caCertHashes,
		}}, timeout)
		result <- discovered{info, err}
	}()
	var info *clientcmdapi.Config
	select {
	case r := <-result:
		info, err = r.info, r.err
	case <-ctx.Done():
		return "", nil, ctx.Err()
	}
	if err != nil {
		return "", nil, fmt.Errorf("refused to join %s (token discovery of kube-public/cluster-info): %w", server, err)
	}
	var cluster *clientcmdapi.Cluster
	for _, c := range info.Clusters {
		cluster = c
	}
	if len(info.Clusters) != 1 || cluster.Server == "" || len(cluster.CertificateAuthorityData) == 0 {
		return "", nil, fmt.Errorf("refused to join %s: cluster-info holds %d clusters, want one with a server and a CA", server, len(info.Clusters))
	}
	return cluster.Server, cluster.CertificateAuthorityData, nil
}

// endpointOf returns HOST:PORT of an https URL.
func endpointOf(server string) (string, error) {
	u, err := url.Parse(server)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.Path != "" && u.Path != "/" {
		return "", fmt.Errorf("--server %q: want https://HOST:PORT", server)
	}
	if _, _, err := net.SplitHostPort(u.Host); err != nil {
		return net.JoinHostPort(u.Host, "6443"), nil
	}
	return u.Host, nil
}
