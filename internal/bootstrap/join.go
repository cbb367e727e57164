package bootstrap

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	bootstrapapi "k8s.io/cluster-bootstrap/token/api"
	bootstraputil "k8s.io/cluster-bootstrap/token/util"
	bootstraptokenv1 "k8s.io/kubernetes/cmd/kubeadm/app/apis/bootstraptoken/v1"
	kubeadmconstants "k8s.io/kubernetes/cmd/kubeadm/app/constants"
	"k8s.io/kubernetes/cmd/kubeadm/app/util/pubkeypin"

	"github.com/pocketkube/pocketkube/internal/atomicfile"
	"github.com/pocketkube/pocketkube/internal/sharedcerts"
)

// Join is what another machine needs to join the cluster as a node, set up
// as `kubeadm init`'s bootstrap-token phase sets it up, with kubeadm's
// names, so that kubelet's TLS bootstrap and kubeadm's token discovery
// work against it unchanged:
//
//   - a bootstrap token (Secret kube-system/bootstrap-token-ID, usages
//     authentication and signing, extra group
//     system:bootstrappers:kubeadm:default-node-token), kept in TokenFile
//     and reused on every start; it does not expire (kubeadm's default is
//     24 h: a local cluster is joined when its user wants, as k3s's token
//     is); deleting the Secret revokes it, and deleting TokenFile too
//     makes the next start issue a new one (with the file left, the next
//     start restores the same token);
//   - the ClusterRoleBindings that let that group post CSRs and get nodes,
//     and that make the controller-manager's csrapproving controller
//     approve a bootstrapping node's client CSR and a node's renewal of its
//     own (kubeadm:kubelet-bootstrap, kubeadm:get-nodes,
//     kubeadm:node-autoapprove-bootstrap,
//     kubeadm:node-autoapprove-certificate-rotation), and
//     pocketkube:node-proxier, which lets nodes (group system:nodes) run
//     the Service proxy with their own credentials;
//   - the ConfigMap kube-public/cluster-info (the API server's URL and the
//     CA), readable by system:anonymous, which the controller-manager's
//     bootstrapsigner signs with the token, so that a joiner that holds the
//     token and the CA's hash can trust it (kubeadm's
//     --discovery-token-ca-cert-hash).
type Join struct {
	// Server is the API server's URL as other machines reach it.
	Server string
	// CAFile is the cluster CA certificate (PEM).
	CAFile string
	// TokenFile is where the token and the CA's hash are written (0600),
	// as the flags of a join: "--token ID.SECRET
	// --discovery-token-ca-cert-hash sha256:HASH". A valid token already
	// there is kept.
	TokenFile string
	// Token, when set, is the token to keep instead of TokenFile's (a
	// server that joined with it).
	Token string
	// ServerTokenFile, when set, makes other servers able to join
	// (`up --cluster-init`, `up --server`): the PKI's CAs and keys in
	// PKIDir are uploaded to the Secret kube-system/kubeadm-certs,
	// encrypted with the certificate key (package sharedcerts), and
	// ServerTokenFile (0600) gets the flags of `up` that join a server:
	// "--server URL --token ID.SECRET --discovery-token-ca-cert-hash
	// sha256:HASH --certificate-key KEY". The key is CertificateKey when
	// set, else the one already in the file, else a new one.
	ServerTokenFile string
	PKIDir          string
	CertificateKey  string
}

// NodeProxierBindingName names the ClusterRoleBinding that gives group
// system:nodes the ClusterRole NodeProxierRoleName (kube-proxy's upstream
// role: Services, EndpointSlices, Nodes, Events), so that the Service proxy
// of a node that joined with `pocketkube agent` can run with the node's
// own credentials.
const (
	NodeProxierBindingName = "pocketkube:node-proxier"
	NodeProxierRoleName    = "system:node-proxier"
)

// NodesNetworkPolicyBindingName names the ClusterRoleBinding that gives
// group system:nodes the ClusterRole NetworkPolicyRoleName (list and watch
// pods, namespaces and NetworkPolicies), so that the NetworkPolicy
// enforcer of a node that joined with `pocketkube agent` runs with the
// node's own credentials, as its Service proxy does (NodeProxierBindingName).
const NodesNetworkPolicyBindingName = "pocketkube:node-networkpolicy"

// ensureNodesNetworkPolicy creates or restores the ClusterRoleBinding
// NodesNetworkPolicyBindingName.
func ensureNodesNetworkPolicy(ctx context.Context, client kubernetes.Interface) error {
	return ensureClusterRoleBinding(ctx, client, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: NodesNetworkPolicyBindingName},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: NetworkPolicyRoleName},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.GroupKind, Name: kubeadmconstants.NodesGroup}},
	})
}

// clusterInfoRoleName names the Role and RoleBinding that let anyone read
// cluster-info (kubeadm's clusterinfo.BootstrapSignerClusterRoleName).
const clusterInfoRoleName = "kubeadm:bootstrap-signer-clusterinfo"

// nodeTokenGroups and nodeTokenUsages are kubeadm's defaults for a node
// join token.
var (
	nodeTokenGroups = []string{kubeadmconstants.NodeBootstrapTokenAuthGroup}
	nodeTokenUsages = []string{"signing", "authentication"}
)

// setUpJoin makes sure every object of j is in place and TokenFile holds
// the token, making no write where they are.
func setUpJoin(ctx context.Context, client kubernetes.Interface, j Join) error {
	caPEM, err := os.ReadFile(j.CAFile)
	if err != nil {
		return err
	}
	block, _ := pem.Decode(caPEM)
	if block == nil {
		return fmt.Errorf("%s: no PEM certificate", j.CAFile)
	}
	ca, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return fmt.Errorf("%s: %w", j.CAFile, err)
	}
	token := j.Token
	if token == "" {
		if token, err = readToken(j.TokenFile); err != nil {
			return err
		}
	}
	if err := ensureTokenSecret(ctx, client, token); err != nil {
		return err
	}
	group := []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.GroupKind, Name: kubeadmconstants.NodeBootstrapTokenAuthGroup}}
	if err := ensureClusterRole(ctx, client, &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: kubeadmconstants.GetNodesClusterRoleName},
		Rules:      []rbacv1.PolicyRule{{Verbs: []string{"get"}, APIGroups: []string{""}, Resources: []string{"nodes"}}},
	}); err != nil {
		return err
	}
	for _, b := range []struct {
		name, role string
		subjects   []rbacv1.Subject
	}{
		{kubeadmconstants.NodeKubeletBootstrap, kubeadmconstants.NodeBootstrapperClusterRoleName, group},
		{kubeadmconstants.GetNodesClusterRoleName, kubeadmconstants.GetNodesClusterRoleName, group},
		{kubeadmconstants.NodeAutoApproveBootstrapClusterRoleBinding, kubeadmconstants.CSRAutoApprovalClusterRoleName, group},
		{kubeadmconstants.NodeAutoApproveCertificateRotationClusterRoleBinding, kubeadmconstants.NodeSelfCSRAutoApprovalClusterRoleName,
			[]rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.GroupKind, Name: kubeadmconstants.NodesGroup}}},
		// A joined node's Service proxy runs with the node's own
		// credentials (pocketkube agent).
		{NodeProxierBindingName, NodeProxierRoleName,
			[]rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.GroupKind, Name: kubeadmconstants.NodesGroup}}},
	} {
		if err := ensureClusterRoleBinding(ctx, client, &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: b.name},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: b.role},
			Subjects:   b.subjects,
		}); err != nil {
			return err
		}
	}
	if err := ensureClusterInfo(ctx, client, j.Server, caPEM); err != nil {
		return err
	}
	content := fmt.Sprintf("--token %s --discovery-token-ca-cert-hash %s\n", token, pubkeypin.Hash(ca))
	if err := writeIfChanged(j.TokenFile, content); err != nil {
		return err
	}
	if j.ServerTokenFile == "" {
		return nil
	}
	key := j.CertificateKey
	if key == "" {
		if key, err = readFlag(j.ServerTokenFile, "--certificate-key", sharedcerts.ValidKey); err != nil {
			return err
		}
	}
	if key == "" {
		if key, err = sharedcerts.NewKey(); err != nil {
			return err
		}
	}
	if err := sharedcerts.Upload(ctx, client, j.PKIDir, key); err != nil {
		return err
	}
	return writeIfChanged(j.ServerTokenFile, fmt.Sprintf("--server %s --token %s --discovery-token-ca-cert-hash %s --certificate-key %s\n", j.Server, token, pubkeypin.Hash(ca), key))
}

func writeIfChanged(file, content string) error {
	if old, err := os.ReadFile(file); err == nil && string(old) == content {
		return nil
	}
	return atomicfile.Write(file, []byte(content), 0o600)
}

// readFlag returns the value of flag in file when valid says it is one,
// or "" (no file, no flag, an invalid value).
func readFlag(file, flag string, valid func(string) bool) (string, error) {
	data, err := os.ReadFile(file)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	fields := strings.Fields(string(data))
	for i, f := range fields {
		if f == flag && i+1 < len(fields) && valid(fields[i+1]) {
			return fields[i+1], nil
		}
	}
	return "", nil
}

// readToken returns the token in file, or a new one when file does not
// exist or holds no valid token.
func readToken(file string) (string, error) {
	data, err := os.ReadFile(file)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	fields := strings.Fields(string(data))
	for i, f := range fields {
		if f == "--token" && i+1 < len(fields) && bootstraputil.IsValidBootstrapToken(fields[i+1]) {
			return fields[i+1], nil
		}
	}
	return bootstraputil.GenerateBootstrapToken()
}

// ensureTokenSecret creates token's Secret, or restores its data.
func ensureTokenSecret(ctx context.Context, client kubernetes.Interface, token string) error {
	ts, err := bootstraptokenv1.NewBootstrapTokenString(token)
	if err != nil {
		return err
	}
	want := bootstraptokenv1.BootstrapTokenToSecret(&bootstraptokenv1.BootstrapToken{
		Token:       ts,
		Description: "The token `pocketkube up` made for nodes to join with (DIR/node-token).",
		Usages:      nodeTokenUsages,
		Groups:      nodeTokenGroups,
	})
	secrets := client.CoreV1().Secrets(metav1.NamespaceSystem)
	got, err := secrets.Get(ctx, want.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		if _, err := secrets.Create(ctx, want, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create Secret %s: %w", want.Name, err)
		}
	case err != nil:
		return fmt.Errorf("get Secret %s: %w", want.Name, err)
	case got.Type != want.Type:
		// type is immutable.
		if err := secrets.Delete(ctx, want.Name, metav1.DeleteOptions{}); err != nil {
			return fmt.Errorf("delete Secret %s: %w", want.Name, err)
		}
		if _, err := secrets.Create(ctx, want, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("create Secret %s: %w", want.Name, err)
		}
	case !reflect.DeepEqual(got.Data, want.Data):
		got = got.DeepCopy()
		got.Data = want.Data
		if _, err := secrets.Update(ctx, got, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("update Secret %s: %w", want.Name, err)
		}
	}
	return nil
}

// ensureClusterInfo creates or restores kube-public/cluster-info's
// kubeconfig (as kubeadm writes it: one cluster named "", its server and
// CA) and the Role and RoleBinding that let system:anonymous get it. The
// bootstrapsigner's signatures in the same ConfigMap are left alone.
func ensureClusterInfo(ctx context.Context, client kubernetes.Interface, server string, caPEM []byte) error {
	kubeconfig, err := clientcmd.Write(clientcmdapi.Config{Clusters: map[string]*clientcmdapi.Cluster{
		"": {Server: server, CertificateAuthorityData: caPEM},
	}})
	if err != nil {
		return err
	}
	cms := client.CoreV1().ConfigMaps(metav1.NamespacePublic)
	got, err := cms.Get(ctx, bootstrapapi.ConfigMapClusterInfo, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		cm := &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: bootstrapapi.ConfigMapClusterInfo, Namespace: metav1.NamespacePublic},
			Data:       map[string]string{bootstrapapi.KubeConfigKey: string(kubeconfig)},
		}
		if _, err := cms.Create(ctx, cm, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create ConfigMap %s/%s: %w", metav1.NamespacePublic, cm.Name, err)
		}
	case err != nil:
		return fmt.Errorf("get ConfigMap %s/%s: %w", metav1.NamespacePublic, bootstrapapi.ConfigMapClusterInfo, err)
	case got.Data[bootstrapapi.KubeConfigKey] != string(kubeconfig):
		got = got.DeepCopy()
		if got.Data == nil {
			got.Data = map[string]string{}
		}
		got.Data[bootstrapapi.KubeConfigKey] = string(kubeconfig)
		if _, err := cms.Update(ctx, got, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("update ConfigMap %s/%s: %w", metav1.NamespacePublic, got.Name, err)
		}
	}

	name := clusterInfoRoleName
	role := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: metav1.NamespacePublic},
		Rules: []rbacv1.PolicyRule{{
			Verbs: []string{"get"}, APIGroups: []string{""}, Resources: []string{"configmaps"},
			ResourceNames: []string{bootstrapapi.ConfigMapClusterInfo},
		}},
	}
	roles := client.RbacV1().Roles(metav1.NamespacePublic)
	if gotRole, err := roles.Get(ctx, name, metav1.GetOptions{}); apierrors.IsNotFound(err) {
		if _, err := roles.Create(ctx, role, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create Role %s/%s: %w", metav1.NamespacePublic, name, err)
		}
	} else if err != nil {
		return fmt.Errorf("get Role %s/%s: %w", metav1.NamespacePublic, name, err)
	} else if !reflect.DeepEqual(gotRole.Rules, role.Rules) {
		gotRole = gotRole.DeepCopy()
		gotRole.Rules = role.Rules
		if _, err := roles.Update(ctx, gotRole, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("update Role %s/%s: %w", metav1.NamespacePublic, name, err)
		}
	}
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: metav1.NamespacePublic},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: name},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: user.Anonymous}},
	}
	bindings := client.RbacV1().RoleBindings(metav1.NamespacePublic)
	gotBinding, err := bindings.Get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		if _, err := bindings.Create(ctx, binding, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create RoleBinding %s/%s: %w", metav1.NamespacePublic, name, err)
		}
	case err != nil:
		return fmt.Errorf("get RoleBinding %s/%s: %w", metav1.NamespacePublic, name, err)
	case gotBinding.RoleRef != binding.RoleRef || !reflect.DeepEqual(gotBinding.Subjects, binding.Subjects):
		// roleRef is immutable: make it again.
		if err := bindings.Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
			return fmt.Errorf("delete RoleBinding %s/%s: %w", metav1.NamespacePublic, name, err)
		}
		if _, err := bindings.Create(ctx, binding, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("create RoleBinding %s/%s: %w", metav1.NamespacePublic, name, err)
		}
	}
	return nil
}
