// Package sharedcerts hands a cluster's CAs and service-account keys to a
// server that joins it (`pocketkube up --server`), as `kubeadm init
// --upload-certs` and `kubeadm join --control-plane --certificate-key` do,
// in kubeadm's format: the Secret kube-system/kubeadm-certs holds each file
// (ca.crt, ca.key, front-proxy-ca.*, sa.key, sa.pub, and etcd/ca.* for
// an embedded etcd, under
// kubeadm's names with "/" as "-") encrypted with AES-GCM under the
// certificate key (32 random bytes, hex), with kubeadm's own crypto code.
// The Role and RoleBinding kubeadm:kubeadm-certs let the holders of a
// node bootstrap token read it; without the certificate key it is of no
// use to them.
//
// Unlike kubeadm's, the Secret does not expire after two hours (kubeadm
// owns it by a short-lived token): a local cluster gains a server when its
// user wants, as it gains a node with the node token that does not expire
// either. Deleting the Secret revokes it until the next start of a server
// that holds the certificate key, which uploads it again.
package sharedcerts

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	kubeadmconstants "k8s.io/kubernetes/cmd/kubeadm/app/constants"
	cryptoutil "k8s.io/kubernetes/cmd/kubeadm/app/util/crypto"

	"github.com/pocketkube/pocketkube/internal/atomicfile"
)

// Files are the files of the PKI directory a joining server gets, as
// kubeadm's certsToTransfer names them for a local etcd.
var Files = []string{"ca.crt", "ca.key", "front-proxy-ca.crt", "front-proxy-ca.key", "sa.key", "sa.pub", EtcdCA, "etcd/ca.key"}

// EtcdCA is the embedded etcd's CA among Files. It and its key are there
// only when the servers share an embedded etcd: servers on an external
// etcd have none (kubeadm transfers no etcd CA for an external etcd either).
const EtcdCA = "etcd/ca.crt"

// optional says whether Files' file f may be missing.
func optional(f string) bool { return strings.HasPrefix(f, "etcd/") }

// ErrWrongKey is returned by Fetch when the certificate key does not
// decrypt the Secret.
var ErrWrongKey = errors.New("the certificate key does not decrypt the cluster's kubeadm-certs Secret")

// NewKey returns a new certificate key (hex, as kubeadm's).
func NewKey() (string, error) {
	b, err := cryptoutil.CreateRandBytes(kubeadmconstants.CertificateKeySize)
	if err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

// ValidKey reports whether key looks like a certificate key.
func ValidKey(key string) bool {
	b, err := hex.DecodeString(key)
	return err == nil && len(b) == kubeadmconstants.CertificateKeySize
}

func secretName(file string) string { return strings.ReplaceAll(file, "/", "-") }

// Upload stores the Files of pkiDir in the Secret, encrypted with key, and
// makes sure bootstrap token holders may read it. It writes nothing when
// the Secret already holds the same files under the same key.
func Upload(ctx context.Context, client kubernetes.Interface, pkiDir, key string) error {
	k, err := hex.DecodeString(key)
	if err != nil || len(k) != kubeadmconstants.CertificateKeySize {
		return errors.New("certificate key: want 64 hex digits")
	}
	plain := map[string][]byte{}
	for _, f := range Files {
		b, err := os.ReadFile(filepath.Join(pkiDir, f))
		if errors.Is(err, os.ErrNotExist) && optional(f) {
			continue
		}
		if err != nil {
			return fmt.Errorf("read %s for Secret %s: %w", f, kubeadmconstants.KubeadmCertsSecret, err)
		}
		plain[secretName(f)] = b
	}
	secrets := client.CoreV1().Secrets(metav1.NamespaceSystem)
	got, err := secrets.Get(ctx, kubeadmconstants.KubeadmCertsSecret, metav1.GetOptions{})
	notFound := apierrors.IsNotFound(err)
	if err != nil && !notFound {
		return fmt.Errorf("get Secret %s: %w", kubeadmconstants.KubeadmCertsSecret, err)
	}
	if !notFound {
		if old, derr := decrypt(got.Data, k); derr == nil && maps.EqualFunc(old, plain, bytes.Equal) {
			return ensureRBAC(ctx, client)
		}
	}
	data := map[string][]byte{}
	for name, b := range plain {
		if data[name], err = cryptoutil.EncryptBytes(b, k); err != nil {
			return fmt.Errorf("encrypt %s: %w", name, err)
		}
	}
	want := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: kubeadmconstants.KubeadmCertsSecret, Namespace: metav1.NamespaceSystem},
		Data:       data,
	}
	if notFound {
		if _, err := secrets.Create(ctx, want, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("create Secret %s: %w", kubeadmconstants.KubeadmCertsSecret, err)
		}
	} else {
		got = got.DeepCopy()
		got.Data = data
		if _, err := secrets.Update(ctx, got, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("update Secret %s: %w", kubeadmconstants.KubeadmCertsSecret, err)
		}
	}
	return ensureRBAC(ctx, client)
}

// Fetch reads the Secret with client (a bootstrap token's) and decrypts
// it with key. It returns the files by their name in Files, or
// ErrWrongKey; it writes nothing.
func Fetch(ctx context.Context, client kubernetes.Interface, key string) (map[string][]byte, error) {
	k, err := hex.DecodeString(key)
	if err != nil || len(k) != kubeadmconstants.CertificateKeySize {
		return nil, errors.New("--certificate-key: want 64 hex digits (the --certificate-key of DATA_DIR/server-token on the first server)")
	}
	s, err := client.CoreV1().Secrets(metav1.NamespaceSystem).Get(ctx, kubeadmconstants.KubeadmCertsSecret, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("get Secret %s/%s (is the first server running with --cluster-init?): %w", metav1.NamespaceSystem, kubeadmconstants.KubeadmCertsSecret, err)
	}
	plain, err := decrypt(s.Data, k)
	if err != nil {
		return nil, err
	}
	files := map[string][]byte{}
	for _, f := range Files {
		b, ok := plain[secretName(f)]
		if !ok && optional(f) {
			continue
		}
		if !ok || len(b) == 0 {
			return nil, fmt.Errorf("Secret %s holds no %s", kubeadmconstants.KubeadmCertsSecret, f)
		}
		files[f] = b
	}
	return files, nil
}

// Write writes files (from Fetch) into pkiDir: keys 0600, the rest 0644.
func Write(pkiDir string, files map[string][]byte) error {
	for name, b := range files {
		path := filepath.Join(pkiDir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return err
		}
		mode := os.FileMode(0o644)
		if strings.HasSuffix(name, ".key") {
			mode = 0o600
		}
		if err := atomicfile.Write(path, b, mode); err != nil {
			return err
		}
	}
	return nil
}

func decrypt(data map[string][]byte, key []byte) (map[string][]byte, error) {
	out := map[string][]byte{}
	for name, b := range data {
		p, err := cryptoutil.DecryptBytes(b, key)
		if err != nil {
			return nil, ErrWrongKey
		}
		out[name] = p
	}
	return out, nil
}

// ensureRBAC creates kubeadm's Role and RoleBinding that let bootstrap
// token holders get the Secret.
func ensureRBAC(ctx context.Context, client kubernetes.Interface) error {
	name := kubeadmconstants.KubeadmCertsClusterRoleName
	role := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: metav1.NamespaceSystem},
		Rules: []rbacv1.PolicyRule{{
			Verbs: []string{"get"}, APIGroups: []string{""}, Resources: []string{"secrets"},
			ResourceNames: []string{kubeadmconstants.KubeadmCertsSecret},
		}},
	}
	if _, err := client.RbacV1().Roles(metav1.NamespaceSystem).Create(ctx, role, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create Role %s: %w", name, err)
	}
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: metav1.NamespaceSystem},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: name},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.GroupKind, Name: kubeadmconstants.NodeBootstrapTokenAuthGroup}},
	}
	if _, err := client.RbacV1().RoleBindings(metav1.NamespaceSystem).Create(ctx, binding, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create RoleBinding %s: %w", name, err)
	}
	return nil
}
