//go:build e2e

package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/pocketkube/pocketkube/test/framework"
)

// The default StorageClass pocketkube creates, as k3s's and kind's.
const (
	localPathClass       = "local-path"
	localPathProvisioner = "rancher.io/local-path"
)

// provisionTimeout bounds a claim's wait from its pod's scheduling to
// Bound: the provisioner acts on the scheduler's selected-node
// annotation, the PV controller binds the new PV, the scheduler's binding
// waits for both.
const provisionTimeout = 60 * time.Second

// classlessClaim is a claim that names no StorageClass: the API server's
// DefaultStorageClass admission gives it the default one.
func classlessClaim(ns, name string) *corev1.PersistentVolumeClaim {
	return &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("64Mi")}},
		},
	}
}

// waitClaimBound waits until the claim ns/name is Bound and returns it
// with its PV.
func waitClaimBound(t *testing.T, c kubernetes.Interface, ns, name string) (*corev1.PersistentVolumeClaim, *corev1.PersistentVolume) {
	t.Helper()
	var pvc *corev1.PersistentVolumeClaim
	err := wait.PollUntilContextTimeout(t.Context(), 100*time.Millisecond, provisionTimeout, true, func(ctx context.Context) (bool, error) {
		var err error
		pvc, err = c.CoreV1().PersistentVolumeClaims(ns).Get(ctx, name, metav1.GetOptions{})
		return err == nil && pvc.Status.Phase == corev1.ClaimBound, nil
	})
	if err != nil {
		t.Fatalf("claim %s/%s never bound: %+v (%v)", ns, name, pvc.Status, err)
	}
	pv, err := c.CoreV1().PersistentVolumes().Get(t.Context(), pvc.Spec.VolumeName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return pvc, pv
}

// waitGone polls until get says NotFound.
func waitGone(t *testing.T, what string, get func(ctx context.Context) error) {
	t.Helper()
	err := wait.PollUntilContextTimeout(t.Context(), 100*time.Millisecond, provisionTimeout, true, func(ctx context.Context) (bool, error) {
		return apierrors.IsNotFound(get(ctx)), nil
	})
	if err != nil {
		t.Fatalf("%s still there: %v", what, err)
	}
}

// The default StorageClass local-path, as k3s's: a claim that names no
// class gets it and stays Pending until a pod uses it
// (WaitForFirstConsumer); then the provisioner makes a hostPath PV under
// DATA_DIR/storage with node affinity to the pod's node, the pod writes,
// a later pod reads the same data, and deleting the claim deletes the PV
// and its directory (reclaimPolicy Delete). A class with reclaimPolicy
// Retain keeps both.
func TestLocalPathProvisioner(t *testing.T) {
	t.Parallel()
	c, ns := busyboxNamespace(t, "local-path-")
	ctx := t.Context()
	storageDir := filepath.Join(shared.DataDir, "storage")

	sc, err := c.StorageV1().StorageClasses().Get(ctx, localPathClass, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if sc.Annotations["storageclass.kubernetes.io/is-default-class"] != "true" || sc.Provisioner != localPathProvisioner ||
		*sc.VolumeBindingMode != storagev1.VolumeBindingWaitForFirstConsumer || *sc.ReclaimPolicy != corev1.PersistentVolumeReclaimDelete {
		t.Errorf("StorageClass %s: annotations %v, provisioner %s, binding %s, reclaim %s; want the default, %s, WaitForFirstConsumer, Delete",
			sc.Name, sc.Annotations, sc.Provisioner, *sc.VolumeBindingMode, *sc.ReclaimPolicy, localPathProvisioner)
	}
	for _, v := range framework.KubectlVersions {
		// The API server marks the default in lists only (the
		// effective default among the classes).
		out, err := shared.Kubectl(ctx, v, "get", "storageclass")
		if err != nil || !strings.Contains(out, "local-path (default)   rancher.io/local-path   Delete          WaitForFirstConsumer") {
			t.Errorf("kubectl %s get storageclass: %v\n%s", v, err, out)
		}
	}

	if _, err := c.CoreV1().PersistentVolumeClaims(ns).Create(ctx, classlessClaim(ns, "data"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	pvc, err := c.CoreV1().PersistentVolumeClaims(ns).Get(ctx, "data", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if pvc.Status.Phase != corev1.ClaimPending || pvc.Spec.VolumeName != "" || pvc.Spec.StorageClassName == nil || *pvc.Spec.StorageClassName != localPathClass {
		t.Fatalf("claim before any pod: phase %s, volume %q, class %v; want Pending, none, %s", pvc.Status.Phase, pvc.Spec.VolumeName, pvc.Spec.StorageClassName, localPathClass)
	}

	writer := claimPod(ns, "writer", "data", false)
	writer.Spec.Containers[0].Command = []string{"sh", "-c", "echo kept > /data/file && sleep 3600"}
	framework.RunPods(t, c, writer)
	pvc, pv := waitClaimBound(t, c, ns, "data")
	dir := filepath.Join(storageDir, pv.Name+"_"+ns+"_data")
	if pv.Spec.HostPath == nil || pv.Spec.HostPath.Path != dir || pv.Spec.StorageClassName != localPathClass ||
		pv.Spec.PersistentVolumeReclaimPolicy != corev1.PersistentVolumeReclaimDelete || pv.Annotations["pv.kubernetes.io/provisioned-by"] != localPathProvisioner {
		t.Errorf("PV %s: source %+v, class %q, reclaim %s, annotations %v; want hostPath %s of %s, Delete",
			pv.Name, pv.Spec.PersistentVolumeSource, pv.Spec.StorageClassName, pv.Spec.PersistentVolumeReclaimPolicy, pv.Annotations, dir, localPathClass)
	}
	node := nodeName(t, c)
	if a := pv.Spec.NodeAffinity; a == nil || len(a.Required.NodeSelectorTerms) != 1 ||
		a.Required.NodeSelectorTerms[0].MatchExpressions[0].Values[0] != node || pvc.Annotations["volume.kubernetes.io/selected-node"] != node {
		t.Errorf("PV node affinity %+v, claim annotations %v; want node %s", a, pvc.Annotations, node)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "file")); err != nil || string(b) != "kept\n" {
		t.Errorf("the volume's directory on the host: %q (%v)", b, err)
	}

	// A later pod sees the data.
	if err := c.CoreV1().Pods(ns).Delete(ctx, "writer", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitGone(t, "pod writer", func(ctx context.Context) error {
		_, err := c.CoreV1().Pods(ns).Get(ctx, "writer", metav1.GetOptions{})
		return err
	})
	framework.RunPods(t, c, claimPod(ns, "reader", "data", false))
	if out, err := shared.PodExec(ctx, ns, "reader", "cat", "/data/file"); err != nil || out != "kept\n" {
		t.Errorf("the second pod reads %q (%v), want kept", out, err)
	}

	// Deleting the claim (once no pod uses it) deletes the PV and its
	// directory.
	if err := c.CoreV1().Pods(ns).Delete(ctx, "reader", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := c.CoreV1().PersistentVolumeClaims(ns).Delete(ctx, "data", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitGone(t, "PV "+pv.Name, func(ctx context.Context) error {
		_, err := c.CoreV1().PersistentVolumes().Get(ctx, pv.Name, metav1.GetOptions{})
		return err
	})
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("after the PV's deletion, stat %s: %v; want it gone", dir, err)
	}

	// A Retain class of the same provisioner keeps the PV and the data.
	retain := corev1.PersistentVolumeReclaimRetain
	wffc := storagev1.VolumeBindingWaitForFirstConsumer
	class := &storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: ns + "-retain"},
		Provisioner: localPathProvisioner, ReclaimPolicy: &retain, VolumeBindingMode: &wffc}
	if _, err := c.StorageV1().StorageClasses().Create(ctx, class, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.StorageV1().StorageClasses().Delete(context.Background(), class.Name, metav1.DeleteOptions{})
	})
	kept := classlessClaim(ns, "kept")
	kept.Spec.StorageClassName = &class.Name
	if _, err := c.CoreV1().PersistentVolumeClaims(ns).Create(ctx, kept, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	p := claimPod(ns, "retained", "kept", false)
	p.Spec.Containers[0].Command = []string{"sh", "-c", "echo retained > /data/file && sleep 3600"}
	framework.RunPods(t, c, p)
	_, pv = waitClaimBound(t, c, ns, "kept")
	t.Cleanup(func() {
		c.CoreV1().PersistentVolumes().Delete(context.Background(), pv.Name, metav1.DeleteOptions{})
		os.RemoveAll(pv.Spec.HostPath.Path)
	})
	if err := c.CoreV1().Pods(ns).Delete(ctx, "retained", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := c.CoreV1().PersistentVolumeClaims(ns).Delete(ctx, "kept", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, provisionTimeout, true, func(ctx context.Context) (bool, error) {
		pv, err = c.CoreV1().PersistentVolumes().Get(ctx, pv.Name, metav1.GetOptions{})
		return err == nil && pv.Status.Phase == corev1.VolumeReleased, nil
	})
	if err != nil {
		t.Fatalf("PV %s of a Retain class: %v, want Released", pv.Name, err)
	}
	if b, err := os.ReadFile(filepath.Join(pv.Spec.HostPath.Path, "file")); err != nil || string(b) != "retained\n" {
		t.Errorf("the retained volume's directory: %q (%v)", b, err)
	}
}

// A StatefulSet whose volumeClaimTemplates name no StorageClass gets a
// provisioned volume per replica, kept across the replica's deletion.
func TestStatefulSetLocalPath(t *testing.T) {
	t.Parallel()
	c, ns := busyboxNamespace(t, "sts-local-path-")
	sts := hostnameStatefulSet(ns, 2)
	if _, err := c.AppsV1().StatefulSets(ns).Create(t.Context(), sts, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	uids := map[string]string{}
	for _, name := range []string{"web-0", "web-1"} {
		p, err := framework.WaitPodIn(t.Context(), c, ns, name, provisionTimeout, func(p *corev1.Pod) (bool, error) { return framework.Running(p), nil })
		if err != nil {
			t.Fatal(err)
		}
		uids[name] = string(p.UID)
		pvc, pv := waitClaimBound(t, c, ns, "data-"+name)
		if *pvc.Spec.StorageClassName != localPathClass || pv.Spec.HostPath == nil ||
			!strings.HasPrefix(pv.Spec.HostPath.Path, filepath.Join(shared.DataDir, "storage")+"/") {
			t.Errorf("claim %s: class %s, PV %s source %+v; want a local-path volume", pvc.Name, *pvc.Spec.StorageClassName, pv.Name, pv.Spec.PersistentVolumeSource)
		}
	}
	checkReplacedKeepsData(t, c, ns, uids["web-0"], provisionTimeout)
}

// hostnameStatefulSet is the StatefulSet "web" of busybox sleepers whose
// volumeClaimTemplate "data" names no StorageClass. The first start of
// each replica stamps the volume with its hostname; later starts append.
func hostnameStatefulSet(ns string, replicas int32) *appsv1.StatefulSet {
	labels := map[string]string{"app": "web"}
	tmpl := busyboxSleeper(ns, "")
	tmpl.Labels = labels
	tmpl.Spec.Containers[0].Command = []string{"sh", "-c", "test -f /data/first || hostname > /data/first; echo start >> /data/starts; sleep 3600"}
	tmpl.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "data", MountPath: "/data"}}
	claim := classlessClaim(ns, "data")
	return &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
		Spec: appsv1.StatefulSetSpec{
			Replicas:             &replicas,
			Selector:             &metav1.LabelSelector{MatchLabels: labels},
			ServiceName:          "web",
			Template:             corev1.PodTemplateSpec{ObjectMeta: tmpl.ObjectMeta, Spec: tmpl.Spec},
			VolumeClaimTemplates: []corev1.PersistentVolumeClaim{{ObjectMeta: metav1.ObjectMeta{Name: "data"}, Spec: claim.Spec}},
		},
	}
}

// A StatefulSet's provisioned volume keeps its data across `up`
// restarts; `up --disable storage` runs without the default StorageClass
// (it deletes the one it made) while the volumes already bound still
// mount.
func TestLocalPathRestartAndDisable(t *testing.T) {
	c := startNodeCluster(t)
	c.ImportBusybox(t, "busybox")
	client := c.Client(t)
	if _, err := client.AppsV1().StatefulSets("default").Create(t.Context(), hostnameStatefulSet("default", 1), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	framework.WaitPod(t, client, "default", "web-0", "Running", framework.Running)

	stopCleanly(t, c)
	c = restartNode(t, c)
	client = c.Client(t)
	pod := framework.WaitPod(t, client, "default", "web-0", "running again", func(p *corev1.Pod) bool {
		return framework.Running(p) && p.Status.ContainerStatuses[0].RestartCount >= 1
	})
	if out, err := c.PodExec(t.Context(), "default", "web-0", "cat", "/data/first", "/data/starts"); err != nil || out != "web-0\nstart\nstart\n" {
		t.Errorf("after a restart of up, web-0 (restarts %d) reads %q (%v), want its first start and two starts", pod.Status.ContainerStatuses[0].RestartCount, out, err)
	}

	stopCleanly(t, c)
	n, err := c.RestartWith("--disable", "storage")
	if err != nil {
		t.Fatal(err)
	}
	client = n.Client(t)
	waitGone(t, "StorageClass "+localPathClass, func(ctx context.Context) error {
		_, err := client.StorageV1().StorageClasses().Get(ctx, localPathClass, metav1.GetOptions{})
		return err
	})
	classes, err := client.StorageV1().StorageClasses().List(t.Context(), metav1.ListOptions{})
	if err != nil || len(classes.Items) != 0 {
		t.Errorf("StorageClasses with --disable storage: %v (%v), want none", classes, err)
	}
	framework.WaitPod(t, client, "default", "web-0", "running again", func(p *corev1.Pod) bool {
		return framework.Running(p) && p.Status.ContainerStatuses[0].RestartCount >= 2
	})
	if out, err := n.PodExec(t.Context(), "default", "web-0", "cat", "/data/first"); err != nil || out != "web-0\n" {
		t.Errorf("with --disable storage, web-0 reads %q (%v), want its data", out, err)
	}
}
