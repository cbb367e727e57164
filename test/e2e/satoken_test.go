//go:build e2e

package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/pocketkube/pocketkube/test/framework"
)

// A legacy service-account token Secret that a user creates is filled by
// the upstream token controller and mounts like any other Secret; the token
// in the pod authenticates as the service account.
func TestLegacyServiceAccountTokenSecret(t *testing.T) {
	ctx := context.Background()
	c := shared.Client(t)
	// The token controller deletes a token Secret whose service account
	// does not exist (yet): wait for the namespace's default one.
	if err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		_, err := c.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{})
		return err == nil, nil
	}); err != nil {
		t.Fatal("no default service account")
	}
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
	applyPod(t, shared, "legacy-token", `apiVersion: v1
kind: Pod
metadata:
  name: legacy-token
spec:
  terminationGracePeriodSeconds: 1
  automountServiceAccountToken: false
  containers:
  - name: main
    image: busybox
    command: ["sleep", "3600"]
    volumeMounts:
    - {name: token, mountPath: /var/run/secrets/legacy, readOnly: true}
  volumes:
  - name: token
    secret: {secretName: legacy-token}
`)
	waitPod(t, c, "legacy-token", "Running", framework.Running)
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
