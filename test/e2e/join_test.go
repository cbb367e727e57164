//go:build e2e

package e2e

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	certificatesv1 "k8s.io/api/certificates/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	kubeadmapi "k8s.io/kubernetes/cmd/kubeadm/app/apis/kubeadm"
	"k8s.io/kubernetes/cmd/kubeadm/app/discovery/token"
	"k8s.io/kubernetes/pkg/kubelet/certificate/bootstrap"

	"github.com/pocketkube/pocketkube/test/framework"
)

// TestJoinTLSBootstrap joins the shared cluster as a new node would, with
// upstream's own code for each step: kubeadm's token discovery (the
// bootstrap token and the CA hash of DIR/node-token against the
// bootstrapsigner's signature of kube-public/cluster-info), then kubelet's
// TLS bootstrap (a kubernetes.io/kube-apiserver-client-kubelet CSR, which
// the controller-manager approves and signs). It does not start a second
// node; it proves that `up` is ready for one.
func TestJoinTLSBootstrap(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	file := filepath.Join(shared.DataDir, "node-token")
	var flags []string
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, framework.PodTimeout, true, func(context.Context) (bool, error) {
		data, err := os.ReadFile(file)
		flags = strings.Fields(string(data))
		return err == nil && len(flags) == 4, nil
	})
	if err != nil || flags[0] != "--token" || flags[2] != "--discovery-token-ca-cert-hash" {
		t.Fatalf("%s: %q (%v), want --token T --discovery-token-ca-cert-hash H", file, flags, err)
	}
	if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("%s mode %v (%v), want 0600", file, fi.Mode(), err)
	}
	tok, hash := flags[1], flags[3]
	endpoint := net.JoinHostPort(shared.Host, strconv.Itoa(shared.Port))
	discover := func(tok, hash string, timeout time.Duration) (*clientcmdapi.Config, error) {
		return token.RetrieveValidatedConfigInfo(nil, &kubeadmapi.Discovery{BootstrapToken: &kubeadmapi.BootstrapTokenDiscovery{
			Token: tok, APIServerEndpoint: endpoint, CACertHashes: []string{hash},
		}}, timeout)
	}

	// A joiner with a wrong CA hash or a wrong token secret trusts nothing.
	if _, err := discover(tok, "sha256:"+strings.Repeat("0", 64), 10*time.Second); err == nil || !strings.Contains(err.Error(), "none of the public keys") {
		t.Errorf("discovery with a wrong CA hash: %v, want kubeadm's refusal", err)
	}
	id, _, _ := strings.Cut(tok, ".")
	if _, err := discover(id+".0123456789abcdef", hash, 10*time.Second); err == nil || !strings.Contains(err.Error(), "failed to verify JWS signature") {
		t.Errorf("discovery with a wrong token secret: %v, want kubeadm's refusal", err)
	}

	cfg, err := discover(tok, hash, framework.PodTimeout)
	if err != nil {
		t.Fatalf("discovery with %s: %v", file, err)
	}
	// cluster-info holds one cluster and no context, as kubeadm writes it.
	var cluster *clientcmdapi.Cluster
	for _, c := range cfg.Clusters {
		cluster = c
	}
	if len(cfg.Clusters) != 1 {
		t.Fatalf("discovered clusters %v, want one", cfg.Clusters)
	}
	ca, err := os.ReadFile(filepath.Join(shared.DataDir, "pki", "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	if cluster.Server != "https://"+endpoint || string(cluster.CertificateAuthorityData) != string(ca) {
		t.Fatalf("discovered server %s and CA %q, want https://%s and the cluster's CA", cluster.Server, cluster.CertificateAuthorityData, endpoint)
	}

	// kubelet's TLS bootstrap with the token.
	dir := t.TempDir()
	nodeName := "join-test-node"
	bootstrapKubeconfig := filepath.Join(dir, "bootstrap-kubeconfig")
	bootstrapCfg := clientcmdapi.NewConfig()
	bootstrapCfg.Clusters["pocketkube"] = cluster
	bootstrapCfg.AuthInfos["tls-bootstrap-token-user"] = &clientcmdapi.AuthInfo{Token: tok}
	bootstrapCfg.Contexts["tls-bootstrap"] = &clientcmdapi.Context{Cluster: "pocketkube", AuthInfo: "tls-bootstrap-token-user"}
	bootstrapCfg.CurrentContext = "tls-bootstrap"
	if err := clientcmd.WriteToFile(*bootstrapCfg, bootstrapKubeconfig); err != nil {
		t.Fatal(err)
	}
	kubeconfig := filepath.Join(dir, "kubeconfig")
	bctx, cancel := context.WithTimeout(ctx, framework.PodTimeout)
	defer cancel()
	if err := bootstrap.LoadClientCert(bctx, kubeconfig, bootstrapKubeconfig, filepath.Join(dir, "pki"), types.NodeName(nodeName)); err != nil {
		t.Fatalf("kubelet's TLS bootstrap: %v", err)
	}
	admin := shared.Client(t)
	t.Cleanup(func() { cleanupCSRs(t, admin, id) })
	rest, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	nodeClient, err := kubernetes.NewForConfig(rest)
	if err != nil {
		t.Fatal(err)
	}
	review, err := nodeClient.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("whoami with the bootstrapped certificate: %v", err)
	}
	if u := review.Status.UserInfo; u.Username != "system:node:"+nodeName || !contains(u.Groups, "system:nodes") {
		t.Errorf("bootstrapped identity %s %v, want system:node:%s in system:nodes", u.Username, u.Groups, nodeName)
	}
	csrs, err := admin.CertificatesV1().CertificateSigningRequests().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	approved := false
	for _, csr := range csrs.Items {
		if csr.Spec.SignerName != certificatesv1.KubeAPIServerClientKubeletSignerName || csr.Spec.Username != "system:bootstrap:"+id {
			continue
		}
		for _, c := range csr.Status.Conditions {
			approved = approved || c.Type == certificatesv1.CertificateApproved && c.Reason == "AutoApproved"
		}
	}
	if !approved {
		t.Errorf("no CSR of system:bootstrap:%s auto-approved by the controller-manager", id)
	}
}

// cleanupCSRs deletes the client CSRs that token id's bootstrap made.
func cleanupCSRs(t *testing.T, admin kubernetes.Interface, id string) {
	csrs, err := admin.CertificatesV1().CertificateSigningRequests().List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Logf("list CSRs: %v", err)
		return
	}
	for _, csr := range csrs.Items {
		if csr.Spec.SignerName == certificatesv1.KubeAPIServerClientKubeletSignerName && csr.Spec.Username == "system:bootstrap:"+id {
			_ = admin.CertificatesV1().CertificateSigningRequests().Delete(context.Background(), csr.Name, metav1.DeleteOptions{})
		}
	}
}
