//go:build e2e

package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/pocketkube/pocketkube/internal/pki"
	"github.com/pocketkube/pocketkube/test/framework"
)

// The kubelet API of the real binary, on the node's address and
// --kubelet-port, as kubelet serves it with anonymous authentication off
// and the Webhook authorizer (pkg/kubelet/server/server.go
// InstallAuthFilter): 401 "Unauthorized" for a request nobody vouches for
// (no credentials, a client certificate of another CA, a bad token), 403
// with kubelet's "Forbidden (user=…, verb=…, resource=nodes,
// subresource(s)=[…])" for a user RBAC does not allow, and the answer
// itself for the API server's kubelet client certificate.

// kubeletRequest is one call of the kubelet API.
type kubeletRequest struct {
	method, path string
	// subresources are those kubelet's authorizer tries, in order
	// (KubeletFineGrainedAuthz, locked on).
	subresources string
	verb         string
}

// kubeletClient returns an HTTPS client that trusts the cluster CA and
// presents cert (none when nil), and the kubelet API's base URL.
func kubeletClient(t *testing.T, nodeIP string, cert *tls.Certificate) (*http.Client, string) {
	t.Helper()
	caPEM, err := os.ReadFile(filepath.Join(shared.DataDir, "pki", "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		t.Fatal("no certificate in the cluster CA file")
	}
	cfg := &tls.Config{RootCAs: pool}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
	t.Cleanup(client.CloseIdleConnections)
	return client, "https://" + net.JoinHostPort(nodeIP, strconv.Itoa(shared.KubeletPort))
}

// kubeletDo sends r and returns the status and body.
func kubeletDo(t *testing.T, client *http.Client, base string, r kubeletRequest, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), r.method, base+r.path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", r.method, r.path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", r.method, r.path, err)
	}
	return resp.StatusCode, string(body)
}

// issueCert signs a client certificate for user with the CA in dir.
func issueCert(t *testing.T, dir, user string) *tls.Certificate {
	t.Helper()
	ca, err := pki.LoadAuthority(filepath.Join(dir, "ca.crt"), filepath.Join(dir, "ca.key"))
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := ca.Issue(pki.Spec{CommonName: user}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return &cert
}

func TestKubeletAPIAuth(t *testing.T) {
	t.Parallel()
	c, ns := busyboxNamespace(t, "kubelet-auth-")
	nodeIP := nodeInternalIP(t, c)
	pod := busyboxSleeper(ns, "talker")
	pod.Spec.Containers[0].Command = []string{"sh", "-c", "echo hello from talker; exec sleep 3600"}
	framework.RunPods(t, c, pod)

	requests := []kubeletRequest{
		{"GET", "/pods", "[pods proxy]", "get"},
		{"GET", "/runningpods/", "[pods proxy]", "get"},
		{"GET", "/healthz", "[healthz proxy]", "get"},
		{"GET", "/logs/", "[log]", "get"},
		{"GET", "/containerLogs/" + ns + "/talker/main", "[proxy]", "get"},
		{"POST", "/exec/" + ns + "/talker/main?command=true&output=1", "[proxy]", "create"},
	}
	pkiDir := filepath.Join(shared.DataDir, "pki")

	t.Run("anonymous", func(t *testing.T) {
		client, base := kubeletClient(t, nodeIP, nil)
		for _, r := range requests {
			if code, body := kubeletDo(t, client, base, r, ""); code != http.StatusUnauthorized || body != "Unauthorized" {
				t.Errorf("%s %s without credentials: %d %q, want 401 \"Unauthorized\"", r.method, r.path, code, body)
			}
		}
	})

	t.Run("certificate of another CA", func(t *testing.T) {
		other := t.TempDir()
		if _, err := pki.Ensure(pki.Config{Dir: other, ServiceIP: net.IPv4(10, 96, 0, 1)}); err != nil {
			t.Fatal(err)
		}
		// The same name as the API server's own client: only the CA
		// differs. Kubelet asks for client certificates without
		// requiring them (tls.RequestClientCert), so the handshake
		// succeeds and its x509 authenticator refuses.
		client, base := kubeletClient(t, nodeIP, issueCert(t, other, pki.KubeletClientUser))
		for _, r := range requests {
			if code, body := kubeletDo(t, client, base, r, ""); code != http.StatusUnauthorized || body != "Unauthorized" {
				t.Errorf("%s %s with a foreign certificate: %d %q, want 401 \"Unauthorized\"", r.method, r.path, code, body)
			}
		}
	})

	t.Run("bad token", func(t *testing.T) {
		client, base := kubeletClient(t, nodeIP, nil)
		if code, body := kubeletDo(t, client, base, requests[0], "not-a-token"); code != http.StatusUnauthorized || body != "Unauthorized" {
			t.Errorf("GET /pods with a bad token: %d %q, want 401 \"Unauthorized\"", code, body)
		}
	})

	t.Run("user without RBAC", func(t *testing.T) {
		user := "negcases-nobody-" + rand.String(6)
		client, base := kubeletClient(t, nodeIP, issueCert(t, pkiDir, user))
		for _, r := range requests {
			want := "Forbidden (user=" + user + ", verb=" + r.verb + ", resource=nodes, subresource(s)=" + r.subresources + ")\n"
			if code, body := kubeletDo(t, client, base, r, ""); code != http.StatusForbidden || body != want {
				t.Errorf("%s %s as %s: %d %q, want 403 %q", r.method, r.path, user, code, body, want)
			}
		}
	})

	t.Run("service account token without RBAC", func(t *testing.T) {
		tr, err := c.CoreV1().ServiceAccounts(ns).CreateToken(t.Context(), "default", &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		client, base := kubeletClient(t, nodeIP, nil)
		want := "Forbidden (user=system:serviceaccount:" + ns + ":default, verb=get, resource=nodes, subresource(s)=[pods proxy])\n"
		if code, body := kubeletDo(t, client, base, requests[0], tr.Status.Token); code != http.StatusForbidden || body != want {
			t.Errorf("GET /pods with a service account token: %d %q, want 403 %q", code, body, want)
		}
	})

	t.Run("user allowed nodes/pods only", func(t *testing.T) {
		// The fine-grained subresource allows /pods; the rest still
		// needs nodes/proxy.
		user := "negcases-pods-reader-" + rand.String(6)
		role := &rbacv1.ClusterRole{
			ObjectMeta: metav1.ObjectMeta{Name: user},
			Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"nodes/pods"}, Verbs: []string{"get"}}},
		}
		binding := &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: user},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: user},
			Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: user}},
		}
		if _, err := c.RbacV1().ClusterRoles().Create(t.Context(), role, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			// t.Context() is canceled before cleanups run.
			c.RbacV1().ClusterRoleBindings().Delete(context.Background(), user, metav1.DeleteOptions{})
			c.RbacV1().ClusterRoles().Delete(context.Background(), user, metav1.DeleteOptions{})
		})
		if _, err := c.RbacV1().ClusterRoleBindings().Create(t.Context(), binding, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		client, base := kubeletClient(t, nodeIP, issueCert(t, pkiDir, user))
		// The API server's RBAC informer may lag the binding by a moment,
		// and the kubelet API caches a denial (30 s upstream).
		var code int
		var body string
		err := wait.PollUntilContextTimeout(t.Context(), 200*time.Millisecond, 40*time.Second, true, func(context.Context) (bool, error) {
			code, body = kubeletDo(t, client, base, requests[0], "")
			return code == http.StatusOK, nil
		})
		if err != nil {
			t.Errorf("GET /pods as %s with nodes/pods: %d %q, want 200", user, code, body)
		}
		r := requests[4]
		want := "Forbidden (user=" + user + ", verb=get, resource=nodes, subresource(s)=[proxy])\n"
		if code, body := kubeletDo(t, client, base, r, ""); code != http.StatusForbidden || body != want {
			t.Errorf("GET %s as %s: %d %q, want 403 %q", r.path, user, code, body, want)
		}
	})

	t.Run("API server client certificate", func(t *testing.T) {
		cert, err := tls.LoadX509KeyPair(filepath.Join(pkiDir, "apiserver-kubelet-client.crt"), filepath.Join(pkiDir, "apiserver-kubelet-client.key"))
		if err != nil {
			t.Fatal(err)
		}
		client, base := kubeletClient(t, nodeIP, &cert)
		code, body := kubeletDo(t, client, base, requests[0], "")
		var pods corev1.PodList
		if code != http.StatusOK || json.Unmarshal([]byte(body), &pods) != nil {
			t.Fatalf("GET /pods as the API server: %d %.200q, want 200 and a PodList", code, body)
		}
		found := false
		for _, p := range pods.Items {
			found = found || (p.Namespace == ns && p.Name == "talker")
		}
		if !found {
			t.Errorf("GET /pods as the API server: no %s/talker among %d pods", ns, len(pods.Items))
		}
		if code, body := kubeletDo(t, client, base, requests[4], ""); code != http.StatusOK || body != "hello from talker\n" {
			t.Errorf("GET %s as the API server: %d %q, want 200 \"hello from talker\\n\"", requests[4].path, code, body)
		}
		if code, body := kubeletDo(t, client, base, requests[2], ""); code != http.StatusOK || body != "ok" {
			t.Errorf("GET /healthz as the API server: %d %q, want 200 \"ok\"", code, body)
		}
	})
}
