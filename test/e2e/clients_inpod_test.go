//go:build e2e

package e2e

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/pocketkube/pocketkube/test/framework"
)

// clientGoImage is the image with busybox and the client-go example at
// /bin/client-go; its tag is not "latest", so the pull policy is
// IfNotPresent and the imported image is used.
const clientGoImage = "pocketkube.test/client-go-example:e2e"

// importClientGoImage builds a rootfs tar of busybox (as the busybox
// image) plus the statically built client-go example, and imports it into
// the shared cluster with `pocketkube images import`.
func importClientGoImage(t *testing.T) {
	t.Helper()
	binary := buildClientGoExample(t)
	dir := t.TempDir()
	base := filepath.Join(dir, "busybox.tar")
	if err := framework.BusyboxTar(base, nil); err != nil {
		t.Fatalf("busybox rootfs: %v", err)
	}
	rootfs := filepath.Join(dir, "client-go.tar")
	if err := appendFileToTar(base, rootfs, binary, "bin/client-go"); err != nil {
		t.Fatalf("image rootfs: %v", err)
	}
	if _, err := framework.Run(context.Background(), nil, Binary, "images", "import", "--data-dir", shared.DataDir, "--name", clientGoImage, rootfs); err != nil {
		t.Fatalf("import %s: %v", clientGoImage, err)
	}
}

// appendFileToTar writes to dst the entries of the tar src followed by the
// executable file as name.
func appendFileToTar(src, dst, file, name string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	defer out.Close()
	tr, tw := tar.NewReader(in), tar.NewWriter(out)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if _, err := io.Copy(tw, tr); err != nil {
			return err
		}
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o755, Size: int64(len(data)), ModTime: time.Now()}); err != nil {
		return err
	}
	if _, err := tw.Write(data); err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return out.Close()
}

// grantPodReader creates the service account pod-reader in ns and a Role
// and RoleBinding that let it get, list and watch the namespace's pods:
// what `kubectl create role pod-reader --verb=get,list,watch
// --resource=pods` and `kubectl create rolebinding` make.
func grantPodReader(t *testing.T, c kubernetes.Interface, ns string) {
	t.Helper()
	ctx := context.Background()
	if _, err := c.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{
		ObjectMeta: metav1.ObjectMeta{Name: "pod-reader"},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create service account: %v", err)
	}
	if _, err := c.RbacV1().Roles(ns).Create(ctx, &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "pod-reader"},
		Rules: []rbacv1.PolicyRule{{
			APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list", "watch"},
		}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create role: %v", err)
	}
	if _, err := c.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "pod-reader"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "pod-reader"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "pod-reader", Namespace: ns}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create role binding: %v", err)
	}
}

// clientGoPod runs the client-go example with the in-cluster config (no
// --kubeconfig) as service account sa; it lists and watches only the pods
// labelled app=listed, so its own pod's status changes are not among the
// events it counts.
func clientGoPod(ns, name, sa string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: corev1.PodSpec{
			ServiceAccountName:            sa,
			RestartPolicy:                 corev1.RestartPolicyNever,
			TerminationGracePeriodSeconds: new(int64),
			Containers: []corev1.Container{{
				Name:    "main",
				Image:   clientGoImage,
				Command: []string{"/bin/client-go", "--selector", "app=listed", "--watch-for", "4", "--timeout", "60"},
			}},
		},
	}
}

// waitPodLogs polls the logs of the pod's only container until done says
// so, or the pod has terminated, and returns them with the pod.
func waitPodLogs(t *testing.T, c kubernetes.Interface, ns, name string, timeout time.Duration, done func(logs string) bool) (string, *corev1.Pod) {
	t.Helper()
	var logs string
	var pod *corev1.Pod
	err := wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		p, err := c.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		pod = p
		b, err := c.CoreV1().Pods(ns).GetLogs(name, &corev1.PodLogOptions{}).DoRaw(ctx)
		if err == nil {
			logs = string(b)
		}
		// The logs were read after the phase: once it is final, they are whole.
		finished := p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed
		return (finished && err == nil) || (err == nil && done(logs)), nil
	})
	if err != nil {
		t.Fatalf("pod %s/%s: %v; status: %s\nlogs:\n%s", ns, name, err, framework.PodStatus(pod), logs)
	}
	return logs, pod
}

// The client-go example runs in a pod with rest.InClusterConfig(): it
// reaches the API server through the `kubernetes` Service with the pod's
// service account token, lists and watches pods as a Role allows, and is
// refused (upstream's 403) with the default service account.
func TestClientGoInPod(t *testing.T) {
	c := shared.Client(t)
	importClientGoImage(t)

	t.Run("role allows list and watch", func(t *testing.T) {
		ns := framework.NewNamespace(t, c, "clients-inpod-")
		grantPodReader(t, c, ns)
		startSleepers(t, c, ns, "listed-1", "listed-2")
		if _, err := c.CoreV1().Pods(ns).Create(context.Background(), clientGoPod(ns, "client-go", "pod-reader"), metav1.CreateOptions{}); err != nil {
			t.Fatalf("create pod: %v", err)
		}
		logs, pod := waitPodLogs(t, c, ns, "client-go", 90*time.Second, func(logs string) bool {
			return strings.Contains(logs, "Watching for 4 events")
		})
		// The container may print before the agent has written phase
		// Running: wait for the status to catch up (a finished pod fails).
		if err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
			p, err := c.CoreV1().Pods(ns).Get(ctx, "client-go", metav1.GetOptions{})
			if err != nil {
				return false, nil
			}
			pod = p
			return p.Status.Phase != corev1.PodPending, nil
		}); err != nil {
			t.Fatalf("pod still Pending after its container printed; status: %s", framework.PodStatus(pod))
		}
		if pod.Status.Phase != corev1.PodRunning {
			t.Fatalf("pod is %s before the watch, want Running; status: %s\nlogs:\n%s", pod.Status.Phase, framework.PodStatus(pod), logs)
		}
		churnPod(t, c, ns, "watched")
		logs, pod = waitPodLogs(t, c, ns, "client-go", 90*time.Second, func(string) bool { return false })
		if pod.Status.Phase != corev1.PodSucceeded {
			t.Fatalf("pod is %s, want Succeeded; status: %s\nlogs:\n%s", pod.Status.Phase, framework.PodStatus(pod), logs)
		}
		want := fmt.Sprintf(`Pods in namespace %s:
  listed-1
  listed-2
Watching for 4 events from resourceVersion RV
ADDED watched
MODIFIED watched
MODIFIED watched
DELETED watched
`, ns)
		if got := maskRV(logs); got != want {
			t.Errorf("logs:\n%s\nwant:\n%s", got, want)
		}
	})

	t.Run("default service account is forbidden", func(t *testing.T) {
		ns := framework.NewNamespace(t, c, "clients-inpod-")
		if _, err := c.CoreV1().Pods(ns).Create(context.Background(), clientGoPod(ns, "client-go", "default"), metav1.CreateOptions{}); err != nil {
			t.Fatalf("create pod: %v", err)
		}
		logs, pod := waitPodLogs(t, c, ns, "client-go", 90*time.Second, func(string) bool { return false })
		if pod.Status.Phase != corev1.PodFailed {
			t.Fatalf("pod is %s, want Failed; status: %s\nlogs:\n%s", pod.Status.Phase, framework.PodStatus(pod), logs)
		}
		want := fmt.Sprintf(`error: list pods in namespace %[1]s: pods is forbidden: User "system:serviceaccount:%[1]s:default" cannot list resource "pods" in API group "" in the namespace "%[1]s"`+"\n", ns)
		if logs != want {
			t.Errorf("logs:\n%s\nwant:\n%s", logs, want)
		}
	})
}
