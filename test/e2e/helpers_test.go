//go:build e2e

package e2e

import (
	"context"
	"errors"
	"os/exec"
	"strconv"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
)

func asExit(err error, target **exec.ExitError) bool { return errors.As(err, target) }

func itoa(i int) string { return strconv.Itoa(i) }

// newNamespace creates a namespace of its own for a test (name prefix
// plus random suffix), waits for its default service account, and deletes
// it, with its pods, when the test ends.
func newNamespace(t *testing.T, c kubernetes.Interface, prefix string) string {
	t.Helper()
	ctx := context.Background()
	ns, err := c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{GenerateName: prefix},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	t.Cleanup(func() {
		c.CoreV1().Namespaces().Delete(context.Background(), ns.Name, metav1.DeleteOptions{})
	})
	err = wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, podTimeout, true, func(ctx context.Context) (bool, error) {
		_, err := c.CoreV1().ServiceAccounts(ns.Name).Get(ctx, "default", metav1.GetOptions{})
		return err == nil, nil
	})
	if err != nil {
		t.Fatalf("no default service account in %s: %v", ns.Name, err)
	}
	return ns.Name
}
