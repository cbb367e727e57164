package bootstrap

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2/ktesting"
	"k8s.io/kubernetes/cmd/kubeadm/app/util/pubkeypin"

	"github.com/pocketkube/pocketkube/internal/sharedcerts"
)

// testCA writes a self-signed CA certificate into dir and returns its path
// and the certificate.
func testCA(t *testing.T, dir string) (string, *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test-ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "ca.crt")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	return path, cert
}

func TestRunSetsUpJoining(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	dir := t.TempDir()
	caFile, ca := testCA(t, dir)
	j := &Join{Server: "https://192.0.2.10:6443", CAFile: caFile, TokenFile: filepath.Join(dir, "node-token")}
	client := fake.NewClientset()
	if err := Run(ctx, client, Config{Join: j}); err != nil {
		t.Fatal(err)
	}

	data, err := os.ReadFile(j.TokenFile)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`^--token ([a-z0-9]{6})\.([a-z0-9]{16}) --discovery-token-ca-cert-hash (sha256:[0-9a-f]{64})\n$`).FindStringSubmatch(string(data))
	if m == nil {
		t.Fatalf("node-token %q, want kubeadm join's --token and --discovery-token-ca-cert-hash", data)
	}
	if m[3] != pubkeypin.Hash(ca) {
		t.Errorf("CA hash %s, want %s", m[3], pubkeypin.Hash(ca))
	}
	if fi, err := os.Stat(j.TokenFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("node-token mode %v (%v), want 0600", fi.Mode(), err)
	}

	secret, err := client.CoreV1().Secrets("kube-system").Get(ctx, "bootstrap-token-"+m[1], metav1.GetOptions{})
	if err != nil {
		t.Fatalf("token Secret: %v", err)
	}
	for k, v := range map[string]string{
		"token-id": m[1], "token-secret": m[2], "usage-bootstrap-authentication": "true", "usage-bootstrap-signing": "true",
		"auth-extra-groups": "system:bootstrappers:kubeadm:default-node-token",
	} {
		if got := string(secret.Data[k]); got != v {
			t.Errorf("Secret %s: %s = %q, want %q", secret.Name, k, got, v)
		}
	}
	if _, ok := secret.Data["expiration"]; ok || secret.Type != "bootstrap.kubernetes.io/token" {
		t.Errorf("Secret type %s, data %v: want a bootstrap token without expiration", secret.Type, secret.Data)
	}
	for name, role := range map[string]string{
		"kubeadm:kubelet-bootstrap":                     "system:node-bootstrapper",
		"kubeadm:get-nodes":                             "kubeadm:get-nodes",
		"kubeadm:node-autoapprove-bootstrap":            "system:certificates.k8s.io:certificatesigningrequests:nodeclient",
		"kubeadm:node-autoapprove-certificate-rotation": "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient",
		"pocketkube:node-proxier":                       "system:node-proxier",
	} {
		b, err := client.RbacV1().ClusterRoleBindings().Get(ctx, name, metav1.GetOptions{})
		if err != nil || b.RoleRef.Name != role || len(b.Subjects) != 1 {
			t.Errorf("ClusterRoleBinding %s: %+v, %v; want it bound to %s", name, b, err, role)
		}
	}
	cm, err := client.CoreV1().ConfigMaps("kube-public").Get(ctx, "cluster-info", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	kc, err := clientcmd.Load([]byte(cm.Data["kubeconfig"]))
	if err != nil || kc.Clusters[""] == nil || kc.Clusters[""].Server != j.Server {
		t.Fatalf("cluster-info kubeconfig %q (%v), want server %s", cm.Data["kubeconfig"], err, j.Server)
	}
	rb, err := client.RbacV1().RoleBindings("kube-public").Get(ctx, "kubeadm:bootstrap-signer-clusterinfo", metav1.GetOptions{})
	if err != nil || len(rb.Subjects) != 1 || rb.Subjects[0].Name != "system:anonymous" {
		t.Errorf("cluster-info RoleBinding %+v, %v; want system:anonymous", rb, err)
	}

	// A signature the bootstrapsigner adds stays; a second start keeps the
	// token and writes nothing.
	cm.Data["jws-kubeconfig-"+m[1]] = "signature"
	if _, err := client.CoreV1().ConfigMaps("kube-public").Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	client.ClearActions()
	if err := Run(ctx, client, Config{Join: j}); err != nil {
		t.Fatal(err)
	}
	if w := writes(client); len(w) != 0 {
		t.Errorf("second start wrote %v, want nothing", w)
	}
	if again, _ := os.ReadFile(j.TokenFile); string(again) != string(data) {
		t.Errorf("second start changed node-token to %q", again)
	}

	// A deleted Secret comes back at the next start, with the token of
	// node-token; without node-token, the next start issues a new token.
	if err := client.CoreV1().Secrets("kube-system").Delete(ctx, secret.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := Run(ctx, client, Config{Join: j}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.CoreV1().Secrets("kube-system").Get(ctx, secret.Name, metav1.GetOptions{}); err != nil {
		t.Errorf("token Secret after a restart: %v", err)
	}
	if err := os.Remove(j.TokenFile); err != nil {
		t.Fatal(err)
	}
	if err := Run(ctx, client, Config{Join: j}); err != nil {
		t.Fatal(err)
	}
	if fresh, _ := os.ReadFile(j.TokenFile); len(fresh) == 0 || string(fresh) == string(data) {
		t.Errorf("node-token after its removal: %q, want a new token", fresh)
	}
}

// TestRunJoinedNodesNetworkPolicy checks that joined nodes may run the
// NetworkPolicy enforcer only when the cluster enforces NetworkPolicies.
func TestRunJoinedNodesNetworkPolicy(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	dir := t.TempDir()
	caFile, _ := testCA(t, dir)
	j := &Join{Server: "https://192.0.2.10:6443", CAFile: caFile, TokenFile: filepath.Join(dir, "node-token")}

	client := fake.NewClientset()
	if err := Run(ctx, client, Config{Join: j}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.RbacV1().ClusterRoleBindings().Get(ctx, NodesNetworkPolicyBindingName, metav1.GetOptions{}); err == nil {
		t.Errorf("ClusterRoleBinding %s exists in a cluster that enforces no NetworkPolicies", NodesNetworkPolicyBindingName)
	}

	client = fake.NewClientset()
	if err := Run(ctx, client, Config{Join: j, NetworkPolicyUser: "system:kube-proxy"}); err != nil {
		t.Fatal(err)
	}
	b, err := client.RbacV1().ClusterRoleBindings().Get(ctx, NodesNetworkPolicyBindingName, metav1.GetOptions{})
	if err != nil || b.RoleRef.Name != NetworkPolicyRoleName || len(b.Subjects) != 1 || b.Subjects[0].Kind != "Group" || b.Subjects[0].Name != "system:nodes" {
		t.Errorf("ClusterRoleBinding %s: %+v, %v; want group system:nodes bound to %s", NodesNetworkPolicyBindingName, b, err, NetworkPolicyRoleName)
	}
}

// TestRunSetsUpServerJoining: with ServerTokenFile, the PKI's CAs and
// keys go to kube-system/kubeadm-certs encrypted with the certificate
// key the file holds, which the same key decrypts and another does not.
func TestRunSetsUpServerJoining(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	dir := t.TempDir()
	pkiDir := filepath.Join(dir, "pki")
	for _, f := range sharedcerts.Files {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(pkiDir, f)), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(pkiDir, f), []byte("contents of "+f), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	caFile, ca := testCA(t, dir)
	j := &Join{Server: "https://192.0.2.10:6443", CAFile: caFile, TokenFile: filepath.Join(dir, "node-token"),
		ServerTokenFile: filepath.Join(dir, "server-token"), PKIDir: pkiDir}
	client := fake.NewClientset()
	if err := setUpJoin(ctx, client, *j); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(j.ServerTokenFile)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`^--server https://192.0.2.10:6443 --token [a-z0-9]{6}\.[a-z0-9]{16} --discovery-token-ca-cert-hash (sha256:[0-9a-f]{64}) --certificate-key ([0-9a-f]{64})\n$`).FindStringSubmatch(string(data))
	if m == nil {
		t.Fatalf("server-token %q, want up's --server, --token, --discovery-token-ca-cert-hash and --certificate-key", data)
	}
	if m[1] != pubkeypin.Hash(ca) {
		t.Errorf("CA hash %s, want %s", m[1], pubkeypin.Hash(ca))
	}
	files, err := sharedcerts.Fetch(ctx, client, m[2])
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range sharedcerts.Files {
		if string(files[f]) != "contents of "+f {
			t.Errorf("%s from the Secret: %q", f, files[f])
		}
	}
	other, err := sharedcerts.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sharedcerts.Fetch(ctx, client, other); !errors.Is(err, sharedcerts.ErrWrongKey) {
		t.Errorf("fetch with another key: %v, want ErrWrongKey", err)
	}
	// A second run keeps the key and makes no new Secret.
	if err := setUpJoin(ctx, client, *j); err != nil {
		t.Fatal(err)
	}
	if again, _ := os.ReadFile(j.ServerTokenFile); string(again) != string(data) {
		t.Errorf("server-token changed on the second run: %q, was %q", again, data)
	}
}
