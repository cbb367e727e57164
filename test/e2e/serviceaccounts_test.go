//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pocketkube/pocketkube/test/framework"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
)

// A legacy service-account token Secret that a user creates is filled by
// the upstream token controller and mounts like any other Secret; the token
// in the pod authenticates as the service account.
func TestLegacyServiceAccountTokenSecret(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	c := shared.Client(t)
	// The token controller deletes a token Secret whose service account
	// does not exist (yet): wait for the namespace's default one.
	framework.WaitServiceAccount(t, c, "default")
	secrets := c.CoreV1().Secrets("default")
	_, err := secrets.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "legacy-token", Annotations: map[string]string{corev1.ServiceAccountNameKey: "default"}},
		Type:       corev1.SecretTypeServiceAccountToken,
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = secrets.Delete(context.Background(), "legacy-token", metav1.DeleteOptions{}) })
	var token string
	if err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		s, err := secrets.Get(ctx, "legacy-token", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		token = string(s.Data[corev1.ServiceAccountTokenKey])
		return token != "" && len(s.Data[corev1.ServiceAccountRootCAKey]) > 0 && string(s.Data[corev1.ServiceAccountNamespaceKey]) == "default", nil
	}); err != nil {
		t.Fatalf("the token controller did not fill the secret: %v", err)
	}
	shared.ApplyPod(t, "legacy-token", podYAML("legacy-token", 1, `  automountServiceAccountToken: false
  containers:
  - name: main
    image: busybox
    command: ["sleep", "3600"]
    volumeMounts:
    - {name: token, mountPath: /var/run/secrets/legacy, readOnly: true}
  volumes:
  - name: token
    secret: {secretName: legacy-token}
`))
	framework.WaitPod(t, c, "default", "legacy-token", "Running", framework.Running)
	out, err := shared.Kubectl(ctx, framework.Newest(), "exec", "legacy-token", "--", "cat", "/var/run/secrets/legacy/token")
	if err != nil || out != token {
		t.Fatalf("token in the pod = %q, %v; want the secret's", out, err)
	}
	out, err = shared.Kubectl(ctx, framework.Newest(), "exec", "legacy-token", "--", "ls", "/var/run/secrets/legacy")
	if err != nil || strings.Fields(out)[0] != "ca.crt" || len(strings.Fields(out)) != 3 {
		t.Errorf("ls = %q, %v; want ca.crt namespace token", out, err)
	}
	// Authenticated as the service account: RBAC, not authentication, says no.
	body, status, err := framework.Curl(ctx, "--cacert", shared.DataDir+"/pki/ca.crt", "-H", "Authorization: Bearer "+token, shared.Server+"/api/v1/namespaces/default/secrets")
	if err != nil || status != 403 || !strings.Contains(body, `secrets is forbidden: User \"system:serviceaccount:default:default\" cannot list resource \"secrets\" in API group \"\" in the namespace \"default\"`) {
		t.Errorf("list secrets with the legacy token: %d %s %v", status, body, err)
	}
}

// TestServiceAccountFaults: a pod naming a service account that does not
// exist is refused by upstream ServiceAccount admission, and a pod's
// bound token stops authenticating once the pod is deleted.
func TestServiceAccountFaults(t *testing.T) {
	t.Parallel()
	c, ns := busyboxNamespace(t, "sa-faults-")

	for _, v := range framework.KubectlVersions {
		t.Run("missing service account kubectl-"+v, func(t *testing.T) {
			name := "no-sa-" + framework.Dashed(v)
			manifest := fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: %s
  namespace: %s
spec:
  serviceAccountName: nope
  containers:
  - name: main
    image: busybox
    command: ["sleep", "3600"]
`, name, ns)
			out, err := shared.KubectlStdin(t.Context(), v, manifest, "apply", "-f", "-")
			want := fmt.Sprintf(`Error from server (Forbidden): error when creating "STDIN": pods "%s" is forbidden: error looking up service account %s/nope: serviceaccount "nope" not found`, name, ns)
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("kubectl apply: %q, %v\nwant the error %s", out, err, want)
			}
			if _, err := c.CoreV1().Pods(ns).Get(t.Context(), name, metav1.GetOptions{}); err == nil {
				t.Errorf("pod %s was created", name)
			}
		})
	}

	t.Run("deleted pod's token is rejected", func(t *testing.T) {
		framework.RunPods(t, c, dnsPod(ns, "holder", "busybox", nil))
		ctx := t.Context()
		token, err := shared.PodExec(ctx, ns, "holder", "cat", saDir+"/token")
		if err != nil {
			t.Fatal(err)
		}
		ca, err := shared.PodExec(ctx, ns, "holder", "cat", saDir+"/ca.crt")
		if err != nil {
			t.Fatal(err)
		}
		caFile := filepath.Join(t.TempDir(), "ca.crt")
		if err := os.WriteFile(caFile, []byte(ca), 0o600); err != nil {
			t.Fatal(err)
		}
		url := shared.Server + "/api/v1/namespaces/" + ns + "/pods"
		get := func(ctx context.Context) (map[string]any, int, error) {
			body, status, err := framework.Curl(ctx, "--cacert", caFile, "-H", "Authorization: Bearer "+token, url)
			if err != nil {
				return nil, 0, err
			}
			var st map[string]any
			if err := json.Unmarshal([]byte(body), &st); err != nil {
				return nil, status, fmt.Errorf("body %q: %w", body, err)
			}
			return st, status, nil
		}
		// Authenticated as the pod's service account: RBAC forbids, 403.
		st, status, err := get(ctx)
		wantMsg := fmt.Sprintf(`pods is forbidden: User "system:serviceaccount:%[1]s:default" cannot list resource "pods" in API group "" in the namespace "%[1]s"`, ns)
		if err != nil || status != 403 || st["reason"] != "Forbidden" || st["message"] != wantMsg {
			t.Fatalf("with the live pod's token: %d %v (%v)\nwant 403 %s", status, st, err, wantMsg)
		}

		if err := c.CoreV1().Pods(ns).Delete(ctx, "holder", metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil {
			t.Fatal(err)
		}
		framework.WaitGone(t, c, ns, "holder")
		// Upstream's Status for a rejected token.
		want := map[string]any{
			"kind": "Status", "apiVersion": "v1", "metadata": map[string]any{}, "status": "Failure",
			"message": "Unauthorized", "reason": "Unauthorized", "code": float64(401),
		}
		// The API server caches a token's authentication for 10 s
		// (tokenSuccessCacheTTL), so the answer may take that long to change.
		pollErr := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
			st, status, err = get(ctx)
			return err == nil && status == 401, nil
		})
		if pollErr != nil {
			t.Fatalf("the deleted pod's token still gets %d %v (%v), want 401", status, st, err)
		}
		if fmt.Sprint(st) != fmt.Sprint(want) {
			t.Errorf("401 body %v, want %v", st, want)
		}
	})
}
