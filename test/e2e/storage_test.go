//go:build e2e

package e2e

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/pocketkube/pocketkube/test/framework"
)

// claimTimeout bounds a wait that includes the PV controller's binding,
// which can take one claim resync (15 s) after a PV appears, plus the
// agent's retry (at most 10 s).
const claimTimeout = 90 * time.Second

// createPV creates the PV, deleted when the test ends. Its storage class is
// the test's namespace, so no other test's claim can bind it.
func createPV(t *testing.T, c kubernetes.Interface, name, class string, src corev1.PersistentVolumeSource, affinity *corev1.VolumeNodeAffinity) {
	t.Helper()
	pv := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:                      corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")},
			AccessModes:                   []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimRetain,
			StorageClassName:              class,
			PersistentVolumeSource:        src,
			NodeAffinity:                  affinity,
		},
	}
	if _, err := c.CoreV1().PersistentVolumes().Create(t.Context(), pv, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create PV %s: %v", name, err)
	}
	t.Cleanup(func() { c.CoreV1().PersistentVolumes().Delete(context.Background(), name, metav1.DeleteOptions{}) })
}

func claimSpec(class string) corev1.PersistentVolumeClaimSpec {
	return corev1.PersistentVolumeClaimSpec{
		AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
		StorageClassName: &class,
		Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("100Mi")}},
	}
}

func createPVC(t *testing.T, c kubernetes.Interface, ns, name, class string) {
	t.Helper()
	pvc := &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Spec: claimSpec(class)}
	if _, err := c.CoreV1().PersistentVolumeClaims(ns).Create(t.Context(), pvc, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create PVC %s: %v", name, err)
	}
}

// claimPod is a busybox sleeper with claim mounted at /data (readOnly as
// the claim volume says).
func claimPod(ns, name, claim string, readOnly bool) *corev1.Pod {
	p := busyboxSleeper(ns, name)
	p.Spec.Volumes = []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{
		PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: claim, ReadOnly: readOnly}}}}
	p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "data", MountPath: "/data"}}
	return p
}

func nodeName(t *testing.T, c kubernetes.Interface) string {
	t.Helper()
	nodes, err := c.CoreV1().Nodes().List(t.Context(), metav1.ListOptions{})
	if err != nil || len(nodes.Items) != 1 {
		t.Fatalf("nodes: %v (%v)", nodes, err)
	}
	return nodes.Items[0].Name
}

// A hostPath PV bound to a claim: a pod writes through it to the host
// directory, a second pod reads it through a subPath, a read-only claim
// volume refuses writes; the PV's type is checked as a hostPath volume's.
func TestPersistentVolumeHostPath(t *testing.T) {
	t.Parallel()
	c, ns := busyboxNamespace(t, "pv-hostpath-")
	hostDir := filepath.Join(t.TempDir(), "pv")
	createPV(t, c, ns+"-hostpath", ns, corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{
		Path: hostDir, Type: ptrTo(corev1.HostPathDirectoryOrCreate)}}, nil)
	createPVC(t, c, ns, "claim", ns)

	writer := claimPod(ns, "writer", "claim", false)
	writer.Spec.Containers[0].Command = []string{"sh", "-c", "mkdir -p /data/sub && echo written > /data/sub/file && sleep 3600"}
	framework.RunPods(t, c, writer)
	if _, err := framework.WaitPodIn(t.Context(), c, ns, "writer", framework.PodTimeout, func(*corev1.Pod) (bool, error) {
		b, err := os.ReadFile(filepath.Join(hostDir, "sub", "file"))
		return err == nil && string(b) == "written\n", nil
	}); err != nil {
		t.Fatalf("the pod's write never reached %s: %v", hostDir, err)
	}

	reader := claimPod(ns, "reader", "claim", true)
	reader.Spec.Containers[0].VolumeMounts = append(reader.Spec.Containers[0].VolumeMounts,
		corev1.VolumeMount{Name: "data", MountPath: "/sub", SubPath: "sub"})
	framework.RunPods(t, c, reader)
	for _, tc := range []struct{ cmd, want string }{
		{"cat /data/sub/file", "written\n"},
		{"cat /sub/file", "written\n"},
		{"touch /data/x 2>/dev/null && echo writable || echo read-only", "read-only\n"},
	} {
		out, err := shared.PodExec(t.Context(), ns, "reader", "sh", "-c", tc.cmd)
		if err != nil || out != tc.want {
			t.Errorf("%s: %q (%v), want %q", tc.cmd, out, err, tc.want)
		}
	}

	// A PV whose hostPath type does not match: the hostPath plugin's
	// check and text, named after the PV.
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, nil, 0o644)
	createPV(t, c, ns+"-notdir", ns+"-notdir", corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{
		Path: file, Type: ptrTo(corev1.HostPathDirectory)}}, nil)
	createPVC(t, c, ns, "notdir", ns+"-notdir")
	framework.CreatePod(t, c, claimPod(ns, "notdir", "notdir", false))
	want := `MountVolume.SetUp failed for volume "` + ns + `-notdir" : hostPath type check failed: ` + file + ` is not a directory, it's a File`
	ev := waitEvent(t, c, ns, "notdir", "FailedMount", claimTimeout, func(e *corev1.Event) bool { return e.Message == want })
	if ev.Type != corev1.EventTypeWarning || ev.Source.Component != "kubelet" {
		t.Errorf("event %s from %q, want Warning from kubelet", ev.Type, ev.Source.Component)
	}
}

// A hostPath volume without a type whose path does not exist: kubelet
// checks nothing, and containerd's CRI makes the path a directory (0755)
// when it creates the container, so the pod runs with an empty directory
// there; a container create must not fail over it.
func TestHostPathMissingIsCreated(t *testing.T) {
	t.Parallel()
	c, ns := busyboxNamespace(t, "hostpath-missing-")
	hostDir := filepath.Join(t.TempDir(), "missing", "dir")
	p := busyboxSleeper(ns, "writer")
	p.Spec.Volumes = []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{
		HostPath: &corev1.HostPathVolumeSource{Path: hostDir}}}}
	p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "data", MountPath: "/data"}}
	p.Spec.Containers[0].Command = []string{"sh", "-c", "echo written > /data/file && sleep 3600"}
	framework.RunPods(t, c, p)
	if _, err := framework.WaitPodIn(t.Context(), c, ns, "writer", framework.PodTimeout, func(*corev1.Pod) (bool, error) {
		b, err := os.ReadFile(filepath.Join(hostDir, "file"))
		return err == nil && string(b) == "written\n", nil
	}); err != nil {
		t.Fatalf("the pod's write never reached %s: %v", hostDir, err)
	}
	fi, err := os.Stat(hostDir)
	if err != nil {
		t.Fatal(err)
	}
	if !fi.IsDir() || fi.Mode().Perm() != 0o755 {
		t.Errorf("%s: mode %v, want a directory with mode 0755", hostDir, fi.Mode())
	}
}

// A local PV with node affinity to the node, behind a WaitForFirstConsumer
// class: the scheduler binds the claim when it places the pod, the agent
// bind-mounts the directory, and the data stays on the host after the pod.
// A local PV whose directory is gone fails as kubelet's local plugin does.
func TestPersistentVolumeLocal(t *testing.T) {
	t.Parallel()
	c, ns := busyboxNamespace(t, "pv-local-")
	node := nodeName(t, c)
	wffc := storagev1.VolumeBindingWaitForFirstConsumer
	class := &storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: ns},
		Provisioner: "kubernetes.io/no-provisioner", VolumeBindingMode: &wffc}
	if _, err := c.StorageV1().StorageClasses().Create(t.Context(), class, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.StorageV1().StorageClasses().Delete(context.Background(), ns, metav1.DeleteOptions{}) })
	affinity := func(node string) *corev1.VolumeNodeAffinity {
		return &corev1.VolumeNodeAffinity{Required: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{
			MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "kubernetes.io/hostname", Operator: corev1.NodeSelectorOpIn, Values: []string{node}}},
		}}}}
	}
	dir := t.TempDir()
	createPV(t, c, ns+"-local", ns, corev1.PersistentVolumeSource{Local: &corev1.LocalVolumeSource{Path: dir}}, affinity(node))
	createPVC(t, c, ns, "claim", ns)
	// WaitForFirstConsumer: no binding before a pod uses the claim.
	time.Sleep(2 * time.Second)
	if pvc, err := c.CoreV1().PersistentVolumeClaims(ns).Get(t.Context(), "claim", metav1.GetOptions{}); err != nil || pvc.Status.Phase != corev1.ClaimPending {
		t.Fatalf("claim before any pod: %v (%v), want Pending", pvc.Status.Phase, err)
	}

	p := claimPod(ns, "writer", "claim", false)
	p.Spec.SecurityContext = &corev1.PodSecurityContext{FSGroup: ptrTo(int64(2345))}
	p.Spec.Containers[0].Command = []string{"sh", "-c", "echo local > /data/file && sleep 3600"}
	framework.RunPods(t, c, p)
	out, err := shared.PodExec(t.Context(), ns, "writer", "sh", "-c", "cat /data/file; grep ' /data ' /proc/mounts | cut -d' ' -f4 | cut -d, -f1; stat -c %g /data")
	if err != nil || out != "local\nrw\n2345\n" {
		t.Errorf("in the pod: %q (%v), want the file, a rw mount and the fsGroup", out, err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "file")); err != nil || string(b) != "local\n" {
		t.Errorf("host directory: %q (%v)", b, err)
	}
	pvc, err := c.CoreV1().PersistentVolumeClaims(ns).Get(t.Context(), "claim", metav1.GetOptions{})
	if err != nil || pvc.Spec.VolumeName != ns+"-local" {
		t.Errorf("claim bound to %q (%v), want %s", pvc.Spec.VolumeName, err, ns+"-local")
	}

	// A local PV with affinity to no node: the scheduler leaves its pod
	// Pending (upstream's volume binding plugin).
	createPV(t, c, ns+"-elsewhere", ns, corev1.PersistentVolumeSource{Local: &corev1.LocalVolumeSource{Path: dir}}, affinity("no-such-node"))
	createPVC(t, c, ns, "elsewhere", ns)
	framework.CreatePod(t, c, claimPod(ns, "elsewhere", "elsewhere", false))
	waitEvent(t, c, ns, "elsewhere", "FailedScheduling", framework.PodTimeout, func(e *corev1.Event) bool {
		return strings.Contains(e.Message, "didn't find available persistent volumes to bind")
	})

	// A local PV whose directory does not exist, bound by hand.
	missing := filepath.Join(t.TempDir(), "missing")
	createPV(t, c, ns+"-missing", ns+"-missing", corev1.PersistentVolumeSource{Local: &corev1.LocalVolumeSource{Path: missing}}, affinity(node))
	createPVC(t, c, ns, "missing", ns+"-missing")
	framework.CreatePod(t, c, claimPod(ns, "missing", "missing", false))
	want := `MountVolume.GetDeviceMountPath failed for volume "` + ns + `-missing" : path "` + missing + `" does not exist`
	waitEvent(t, c, ns, "missing", "FailedMount", claimTimeout, func(e *corev1.Event) bool { return e.Message == want })
}

// A pod placed on the node by hand (spec.nodeName) whose claim does not
// exist, then is not bound: kubelet's volume manager events, the pod
// ContainerCreating; it starts once a PV binds the claim.
func TestPersistentVolumeClaimUnbound(t *testing.T) {
	t.Parallel()
	c, ns := busyboxNamespace(t, "pvc-unbound-")
	p := claimPod(ns, "waiter", "late", false)
	p.Spec.NodeName = nodeName(t, c)
	framework.CreatePod(t, c, p)
	prefix := "Unable to attach or mount volumes: unmounted volumes=[data], unattached volumes=[], failed to process volumes=[data]: error processing PVC " + ns + "/late: "
	want := prefix + `failed to fetch PVC from API server: persistentvolumeclaims "late" not found`
	waitEvent(t, c, ns, "waiter", "FailedMount", framework.PodTimeout, func(e *corev1.Event) bool { return e.Message == want })

	createPVC(t, c, ns, "late", ns)
	want = prefix + "PVC is not bound"
	ev := waitEvent(t, c, ns, "waiter", "FailedMount", claimTimeout, func(e *corev1.Event) bool { return e.Message == want })
	if ev.Type != corev1.EventTypeWarning || ev.Source.Component != "kubelet" {
		t.Errorf("event %s from %q, want Warning from kubelet", ev.Type, ev.Source.Component)
	}
	stillPending(t, c, ns, "waiter", "ContainerCreating", 2*time.Second)

	hostDir := t.TempDir()
	os.WriteFile(filepath.Join(hostDir, "ready"), []byte("bound\n"), 0o644)
	createPV(t, c, ns+"-late", ns, corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: hostDir}}, nil)
	if _, err := framework.WaitPodIn(t.Context(), c, ns, "waiter", claimTimeout, func(p *corev1.Pod) (bool, error) {
		return framework.Running(p), nil
	}); err != nil {
		t.Fatalf("after the PV: %v", err)
	}
	if out, err := shared.PodExec(t.Context(), ns, "waiter", "cat", "/data/ready"); err != nil || out != "bound\n" {
		t.Errorf("cat /data/ready: %q (%v)", out, err)
	}

	// A claim no container mounts is skipped, as kubelet's volume manager
	// skips unused volumes: the pod runs although the claim is missing.
	unused := claimPod(ns, "unused", "absent", false)
	unused.Spec.NodeName = p.Spec.NodeName
	unused.Spec.Containers[0].VolumeMounts = nil
	framework.RunPods(t, c, unused)
}

// A generic ephemeral volume: the controller manager's ephemeral-volume
// controller creates the pod's claim (owned by the pod), it binds to a
// pre-made PV, the agent mounts it; the claim goes with the pod.
func TestEphemeralVolume(t *testing.T) {
	t.Parallel()
	c, ns := busyboxNamespace(t, "ephemeral-")
	hostDir := t.TempDir()
	createPV(t, c, ns+"-eph", ns, corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: hostDir}}, nil)
	p := busyboxSleeper(ns, "eph")
	p.Spec.Volumes = []corev1.Volume{{Name: "scratch", VolumeSource: corev1.VolumeSource{Ephemeral: &corev1.EphemeralVolumeSource{
		VolumeClaimTemplate: &corev1.PersistentVolumeClaimTemplate{Spec: claimSpec(ns)}}}}}
	p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "scratch", MountPath: "/scratch"}}
	p.Spec.Containers[0].Command = []string{"sh", "-c", "echo ephemeral > /scratch/f && sleep 3600"}
	if _, err := c.CoreV1().Pods(ns).Create(t.Context(), p, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pod, err := framework.WaitPodIn(t.Context(), c, ns, "eph", claimTimeout, func(p *corev1.Pod) (bool, error) { return framework.Running(p), nil })
	if err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(hostDir, "f")); err != nil || string(b) != "ephemeral\n" {
		t.Errorf("host directory of the PV: %q (%v)", b, err)
	}
	pvc, err := c.CoreV1().PersistentVolumeClaims(ns).Get(t.Context(), "eph-scratch", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !metav1.IsControlledBy(pvc, pod) || pvc.Spec.VolumeName != ns+"-eph" {
		t.Errorf("claim %s: owners %v, volume %q; want controlled by the pod, bound to %s", pvc.Name, pvc.OwnerReferences, pvc.Spec.VolumeName, ns+"-eph")
	}
}

// A StatefulSet whose volumeClaimTemplates bind pre-made PVs: each
// replica's data survives its pod's deletion, since the replacement pod
// mounts the same claim.
func TestStatefulSetVolumeClaims(t *testing.T) {
	t.Parallel()
	c, ns := busyboxNamespace(t, "sts-claims-")
	for _, i := range []string{"0", "1"} {
		createPV(t, c, ns+"-"+i, ns, corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: t.TempDir()}}, nil)
	}
	labels := map[string]string{"app": "web"}
	tmpl := busyboxSleeper(ns, "")
	tmpl.Labels = labels
	// The first start of each replica stamps the volume with its
	// hostname; later starts only append.
	tmpl.Spec.Containers[0].Command = []string{"sh", "-c", "test -f /data/first || hostname > /data/first; echo start >> /data/starts; sleep 3600"}
	tmpl.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "data", MountPath: "/data"}}
	sts := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
		Spec: appsv1.StatefulSetSpec{
			Replicas:    ptrTo(int32(2)),
			Selector:    &metav1.LabelSelector{MatchLabels: labels},
			ServiceName: "web",
			Template:    corev1.PodTemplateSpec{ObjectMeta: tmpl.ObjectMeta, Spec: tmpl.Spec},
			VolumeClaimTemplates: []corev1.PersistentVolumeClaim{{
				ObjectMeta: metav1.ObjectMeta{Name: "data"}, Spec: claimSpec(ns)}},
		},
	}
	if _, err := c.AppsV1().StatefulSets(ns).Create(t.Context(), sts, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	uids := map[string]string{}
	for _, name := range []string{"web-0", "web-1"} {
		p, err := framework.WaitPodIn(t.Context(), c, ns, name, claimTimeout, func(p *corev1.Pod) (bool, error) { return framework.Running(p), nil })
		if err != nil {
			t.Fatal(err)
		}
		uids[name] = string(p.UID)
	}
	checkReplacedKeepsData(t, c, ns, uids["web-0"], claimTimeout)
}

// checkReplacedKeepsData deletes pod web-0 of hostnameStatefulSet (UID
// uid), waits up to timeout for its replacement to run, and checks that
// both replicas' volumes kept their data: web-0's two starts, web-1's one.
func checkReplacedKeepsData(t *testing.T, c kubernetes.Interface, ns, uid string, timeout time.Duration) {
	t.Helper()
	if err := c.CoreV1().Pods(ns).Delete(t.Context(), "web-0", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	err := wait.PollUntilContextTimeout(t.Context(), 200*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		p, err := c.CoreV1().Pods(ns).Get(ctx, "web-0", metav1.GetOptions{})
		return err == nil && string(p.UID) != uid && framework.Running(p), nil
	})
	if err != nil {
		t.Fatalf("web-0 not replaced: %v", err)
	}
	for name, want := range map[string]string{"web-0": "web-0\nstart\nstart\n", "web-1": "web-1\nstart\n"} {
		out, err := shared.PodExec(t.Context(), ns, name, "sh", "-c", "cat /data/first /data/starts")
		if err != nil || out != want {
			t.Errorf("%s: %q (%v), want %q", name, out, err, want)
		}
	}
}

func ptrTo[T any](v T) *T { return &v }

// imageVolumeImage is the image the image volume tests mount: busybox
// with the files upstream's test image (kitten) is checked for, imported
// under a name at an unreachable registry so that pullPolicy Always falls
// back to it offline.
const imageVolumeImage = "127.0.0.1:1/e2e/image-volume:v1"

func importImageVolumeImage(t *testing.T) {
	t.Helper()
	importImageVolumeImageInto(t, shared)
}

func importImageVolumeImageInto(t *testing.T, c *framework.Cluster) {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{"data.json": `{"file": "kitten.jpg"}` + "\n", "etc/os-release": "NAME=\"Alpine Linux\"\nID=alpine\n"}
	extra := map[string]string{}
	for name, data := range files {
		p := filepath.Join(dir, filepath.Base(name))
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		extra[name] = p
	}
	tar := filepath.Join(dir, "image.tar")
	if err := framework.BusyboxTar(tar, extra); err != nil {
		t.Fatal(err)
	}
	if err := c.ImportImage(t.Context(), imageVolumeImage, tar); err != nil {
		t.Fatal(err)
	}
}

// imageVolumePod is upstream's ImageVolume test pod (test/e2e_node/image_volume.go):
// a busybox sleeper with the volumes and mounts given.
func imageVolumePod(ns, name string, volumes []corev1.Volume, mounts []corev1.VolumeMount) *corev1.Pod {
	p := busyboxSleeper(ns, name)
	p.Spec.Volumes = volumes
	p.Spec.Containers[0].VolumeMounts = mounts
	return p
}

func imageVolume(name, ref string, policy corev1.PullPolicy) corev1.Volume {
	return corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{Image: &corev1.ImageVolumeSource{Reference: ref, PullPolicy: policy}}}
}

// verifyImageVolume is upstream's verifyFileContents.
func verifyImageVolume(t *testing.T, ns, pod, dir string) {
	t.Helper()
	for file, want := range map[string]string{"data.json": "kitten.jpg", "etc/os-release": "Alpine Linux"} {
		out, err := shared.PodExec(t.Context(), ns, pod, "cat", dir+"/"+file)
		if err != nil || !strings.Contains(out, want) {
			t.Errorf("pod %s: cat %s/%s: %q (%v), want it to contain %q", pod, dir, file, out, err, want)
		}
	}
}

// waitContainerWaiting waits until the pod's first container waits with reason.
func waitContainerWaiting(t *testing.T, c kubernetes.Interface, ns, name, reason string) *corev1.Pod {
	t.Helper()
	p, err := framework.WaitPodIn(t.Context(), c, ns, name, framework.PodTimeout, func(p *corev1.Pod) (bool, error) {
		cs := p.Status.ContainerStatuses
		return len(cs) == 1 && cs[0].State.Waiting != nil && cs[0].State.Waiting.Reason == reason, nil
	})
	if err != nil {
		t.Fatalf("container never waited with %s: %v", reason, err)
	}
	return p
}

// Upstream's ImageVolume node e2e cases that run on one node
// (test/e2e_node/image_volume.go), with an image imported offline.
func TestImageVolume(t *testing.T) {
	t.Parallel()
	c, ns := busyboxNamespace(t, "image-volume-")
	importImageVolumeImage(t)
	const volumeName, volumePath = "volume", "/volume"
	mount := []corev1.VolumeMount{{Name: volumeName, MountPath: volumePath}}

	t.Run("should succeed with pod and pull policy of Always", func(t *testing.T) {
		framework.RunPods(t, c, imageVolumePod(ns, "always", []corev1.Volume{imageVolume(volumeName, imageVolumeImage, corev1.PullAlways)}, mount))
		verifyImageVolume(t, ns, "always", volumePath)
		// Read-only (the API's contract), whatever the volumeMount says.
		out, err := shared.PodExec(t.Context(), ns, "always", "sh", "-c", "touch /volume/x 2>/dev/null && echo writable || echo read-only; grep ' /volume ' /proc/mounts | cut -d' ' -f4 | cut -d, -f1")
		if err != nil || out != "read-only\nro\n" {
			t.Errorf("write into the image volume: %q (%v), want read-only and an ro mount", out, err)
		}
	})
	t.Run("should succeed with pod and multiple volumes", func(t *testing.T) {
		framework.RunPods(t, c, imageVolumePod(ns, "multiple",
			[]corev1.Volume{imageVolume(volumeName+"-0", imageVolumeImage, ""), imageVolume(volumeName+"-1", imageVolumeImage, "")},
			[]corev1.VolumeMount{{Name: volumeName + "-0", MountPath: volumePath + "-0"}, {Name: volumeName + "-1", MountPath: volumePath + "-1"}}))
		for i := range 2 {
			verifyImageVolume(t, ns, "multiple", fmt.Sprintf("%s-%d", volumePath, i))
		}
	})
	t.Run("should fail if image volume is not existing", func(t *testing.T) {
		framework.CreatePod(t, c, imageVolumePod(ns, "invalid", []corev1.Volume{imageVolume(volumeName, "localhost/invalid", "")}, mount))
		waitContainerWaiting(t, c, ns, "invalid", "ImagePullBackOff")
		waitEvent(t, c, ns, "invalid", "Failed", framework.PodTimeout, func(e *corev1.Event) bool {
			return strings.HasPrefix(e.Message, `Failed to pull image "localhost/invalid": `)
		})
	})
	t.Run("should succeed if image volume is not existing but unused", func(t *testing.T) {
		framework.RunPods(t, c, imageVolumePod(ns, "unused", []corev1.Volume{imageVolume(volumeName, "localhost/invalid", "")}, nil))
		out, err := shared.PodExec(t.Context(), ns, "unused", "ls", "/")
		if err != nil || strings.Contains(out, "volume") {
			t.Errorf("ls /: %q (%v), want no volume", out, err)
		}
	})
	t.Run("should succeed with multiple pods and same image on the same node", func(t *testing.T) {
		for i := range 2 {
			name := fmt.Sprintf("same-%d", i)
			framework.RunPods(t, c, imageVolumePod(ns, name, []corev1.Volume{imageVolume(volumeName, imageVolumeImage, "")}, mount))
			verifyImageVolume(t, ns, name, volumePath)
		}
		verifyImageVolume(t, ns, "same-0", volumePath)
	})
	t.Run("subPath should succeed when using a valid subPath", func(t *testing.T) {
		framework.RunPods(t, c, imageVolumePod(ns, "subpath", []corev1.Volume{imageVolume(volumeName, imageVolumeImage, "")},
			[]corev1.VolumeMount{{Name: volumeName, MountPath: volumePath, SubPath: "etc"}}))
		out, err := shared.PodExec(t.Context(), ns, "subpath", "cat", volumePath+"/passwd")
		if err != nil || !strings.Contains(out, "root:") {
			t.Errorf("cat %s/passwd: %q (%v)", volumePath, out, err)
		}
	})
	t.Run("subPath should fail if subPath in volume is not existing", func(t *testing.T) {
		framework.CreatePod(t, c, imageVolumePod(ns, "subpath-missing", []corev1.Volume{imageVolume(volumeName, imageVolumeImage, "")},
			[]corev1.VolumeMount{{Name: volumeName, MountPath: volumePath, SubPath: "not-existing"}}))
		waitContainerWaiting(t, c, ns, "subpath-missing", "CreateContainerError")
	})
}

// makeCAPEM is upstream's mustMakeCAPEM: a self-signed CA certificate.
func makeCAPEM(t *testing.T, cn string) string {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(0), Subject: pkix.Name{CommonName: cn}, IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, priv)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

// pemSet splits concatenated PEM certificates into a set.
func pemSet(s string) sets.Set[string] {
	out := sets.New[string]()
	rest := []byte(s)
	for {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			return out
		}
		out.Insert(string(pem.EncodeToMemory(b)))
	}
}

// ctbPod is upstream's podForCTBProjection with busybox in place of
// agnhost mounttest: container i prints volume i's file, then its mode.
func ctbPod(ns, name string, projections ...corev1.VolumeProjection) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever, TerminationGracePeriodSeconds: new(int64)}}
	for i, proj := range projections {
		vol := fmt.Sprintf("ctb-volume-%d", i)
		file := "/var/run/ctbtest/" + proj.ClusterTrustBundle.Path
		p.Spec.Containers = append(p.Spec.Containers, corev1.Container{
			Name: fmt.Sprintf("projected-ctb-volume-test-%d", i), Image: e2eBusybox, ImagePullPolicy: corev1.PullIfNotPresent,
			Command:      []string{"sh", "-c", "cat " + file + "; echo mode $(stat -L -c %a " + file + ")"},
			VolumeMounts: []corev1.VolumeMount{{Name: vol, MountPath: "/var/run/ctbtest"}},
		})
		p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: vol, VolumeSource: corev1.VolumeSource{
			Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{proj}}}})
	}
	return p
}

// Upstream's projected ClusterTrustBundle conformance cases
// (test/e2e/auth/projected_clustertrustbundle.go): certificates.k8s.io/v1
// is served (ClusterTrustBundle and ClusterTrustBundleProjection are GA,
// on by default, in 1.37) and kubelet's manager fills the files.
func TestProjectedClusterTrustBundle(t *testing.T) {
	t.Parallel()
	c, ns := busyboxNamespace(t, "projected-ctb-")
	signerOne, signerTwo := "test.test/signer-one"+ns, "test.test/signer-two"+ns
	// upstream's initCTBData: which PEMs belong to which query.
	pems := map[string]sets.Set[string]{"one": sets.New[string](), "two": sets.New[string](), "alive": sets.New[string](), "dead": sets.New[string](), "none": sets.New[string]()}
	create := func(name, signer, caPEM string, labels map[string]string) {
		ctb := &certificatesv1.ClusterTrustBundle{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
			Spec: certificatesv1.ClusterTrustBundleSpec{SignerName: signer, TrustBundle: caPEM}}
		if _, err := c.CertificatesV1().ClusterTrustBundles().Create(t.Context(), ctb, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create ClusterTrustBundle %s: %v", name, err)
		}
		t.Cleanup(func() {
			c.CertificatesV1().ClusterTrustBundles().Delete(context.Background(), name, metav1.DeleteOptions{})
		})
	}
	ctbName := func(signer string, i int) string {
		return fmt.Sprintf("%s:%d", strings.ReplaceAll(signer, "/", ":"), i)
	}
	for i := range 10 {
		caPEM := makeCAPEM(t, fmt.Sprintf("root%d", i))
		switch i {
		case 1, 2, 3:
			create(ctbName(signerOne, i), signerOne, caPEM, map[string]string{"signer.alive": "true"})
			pems["one"].Insert(caPEM)
			pems["alive"].Insert(caPEM)
		case 4:
			create("test.test.signer-one.4"+ns, "", caPEM, map[string]string{"signer.alive": "true"})
			pems["none"].Insert(caPEM)
		case 5:
			create(ctbName(signerTwo, i), signerTwo, caPEM, map[string]string{"signer.alive": "true"})
			pems["two"].Insert(caPEM)
			pems["alive"].Insert(caPEM)
		case 6, 7:
			create(ctbName(signerOne, i), signerOne, caPEM, map[string]string{"signer.alive": "false"})
			pems["one"].Insert(caPEM)
			pems["dead"].Insert(caPEM)
		default:
			create(ctbName(signerOne, i), signerOne, caPEM, nil)
			pems["one"].Insert(caPEM)
		}
	}
	// run runs the pod to completion and checks each container printed
	// exactly the PEMs want[i] (in any order: kubelet shuffles them once
	// per process) and mode 644.
	n := 0
	run := func(t *testing.T, want []sets.Set[string], projections ...corev1.VolumeProjection) {
		t.Helper()
		n++
		name := fmt.Sprintf("ctb-%d", n)
		framework.CreatePod(t, c, ctbPod(ns, name, projections...))
		if _, err := framework.WaitPodIn(t.Context(), c, ns, name, framework.PodTimeout, func(p *corev1.Pod) (bool, error) {
			return p.Status.Phase == corev1.PodSucceeded, nil
		}); err != nil {
			t.Fatal(err)
		}
		for i, w := range want {
			out, err := framework.PodLogs(t.Context(), c, ns, name, fmt.Sprintf("projected-ctb-volume-test-%d", i))
			if err != nil {
				t.Fatal(err)
			}
			content, mode, _ := strings.Cut(out, "mode ")
			if got := pemSet(content); !got.Equal(w) || mode != "644\n" {
				t.Errorf("container %d printed %d certificates (want %d; equal sets: %v), mode %q (want 644)\n%s", i, got.Len(), w.Len(), got.Equal(w), mode, out)
			}
		}
	}
	byName := func(name string, optional *bool) corev1.VolumeProjection {
		return corev1.VolumeProjection{ClusterTrustBundle: &corev1.ClusterTrustBundleProjection{Name: &name, Path: "trust-anchors.pem", Optional: optional}}
	}
	bySigner := func(signer string, sel *metav1.LabelSelector, optional *bool) corev1.VolumeProjection {
		return corev1.VolumeProjection{ClusterTrustBundle: &corev1.ClusterTrustBundleProjection{SignerName: &signer, LabelSelector: sel, Path: "trust-bundle.crt", Optional: optional}}
	}
	empty := sets.New[string]()

	t.Run("should be able to mount a single ClusterTrustBundle by name", func(t *testing.T) {
		run(t, []sets.Set[string]{pems["none"]}, byName("test.test.signer-one.4"+ns, nil))
		run(t, []sets.Set[string]{empty}, byName("does-not-exist.at.all", ptrTo(true)))
	})
	t.Run("can combine multiple CTBs with signer name and label selector", func(t *testing.T) {
		run(t, []sets.Set[string]{pems["one"].Intersection(pems["alive"])},
			bySigner(signerOne, &metav1.LabelSelector{MatchLabels: map[string]string{"signer.alive": "true"}}, nil))
	})
	t.Run("should start if only signer name and nil label selector + optional=true", func(t *testing.T) {
		run(t, []sets.Set[string]{empty}, bySigner(signerOne, nil, ptrTo(true)))
	})
	t.Run("should start if only signer name and explicit label selector matches nothing + optional=true", func(t *testing.T) {
		run(t, []sets.Set[string]{empty}, bySigner(signerOne, &metav1.LabelSelector{MatchLabels: map[string]string{"thismatches": "nothing"}}, ptrTo(true)))
	})
	t.Run("can combine all signer CTBs with an empty label selector", func(t *testing.T) {
		run(t, []sets.Set[string]{pems["one"]}, bySigner(signerOne, &metav1.LabelSelector{}, nil))
	})
	t.Run("should be able to specify multiple CTB volumes", func(t *testing.T) {
		run(t, []sets.Set[string]{pems["none"], pems["one"].Intersection(pems["dead"])},
			byName("test.test.signer-one.4"+ns, nil),
			bySigner(signerOne, &metav1.LabelSelector{MatchLabels: map[string]string{"signer.alive": "false"}}, nil))
	})
	// should prevent a pod from starting if: the pod stays Pending, not
	// ready for that container, with a FailedMount event.
	for _, tc := range []struct {
		name string
		proj corev1.VolumeProjection
		want string
	}{
		{"sets optional=false and no trust bundle matches query",
			bySigner(signerOne, &metav1.LabelSelector{MatchLabels: map[string]string{"signer.alive": "unknown"}}, ptrTo(false)),
			`MountVolume.SetUp failed for volume "ctb-volume-0" : combination of signerName and labelSelector matched zero ClusterTrustBundles`},
		{"sets optional=false and the configured CTB does not exist", byName("does-not-exist", ptrTo(false)),
			`MountVolume.SetUp failed for volume "ctb-volume-0" : while getting ClusterTrustBundle: clustertrustbundle.certificates.k8s.io "does-not-exist" not found`},
	} {
		t.Run("should prevent a pod from starting if "+tc.name, func(t *testing.T) {
			n++
			name := fmt.Sprintf("ctb-%d", n)
			framework.CreatePod(t, c, ctbPod(ns, name, tc.proj))
			waitEvent(t, c, ns, name, "FailedMount", framework.PodTimeout, func(e *corev1.Event) bool { return e.Message == tc.want })
			p, err := framework.WaitPodIn(t.Context(), c, ns, name, framework.PodTimeout, func(p *corev1.Pod) (bool, error) {
				for _, cond := range p.Status.Conditions {
					if cond.Type == corev1.PodReady {
						return cond.Status == corev1.ConditionFalse && cond.Reason == "ContainersNotReady" &&
							cond.Message == "containers with unready status: [projected-ctb-volume-test-0]", nil
					}
				}
				return false, nil
			})
			if err != nil {
				t.Fatalf("Ready condition: %v; %+v", err, p.Status.Conditions)
			}
			stillPending(t, c, ns, name, "ContainerCreating", 2*time.Second)
		})
	}
	t.Run("should be able to mount a big number (>100) of CTBs", func(t *testing.T) {
		signer := "test.test/signer-hundreds" + ns
		all := sets.New[string]()
		for i := range 150 {
			caPEM := makeCAPEM(t, fmt.Sprintf("root%d", i))
			create(ctbName(signer, i), signer, caPEM, nil)
			all.Insert(caPEM)
		}
		run(t, []sets.Set[string]{all}, bySigner(signer, &metav1.LabelSelector{}, nil))
	})
}

// A StatefulSet whose replica mounts a local PV and an image volume, on a
// cluster of its own: Ctrl-C takes the local volume's bind mount and the
// image volume's overlay with the pod (stopCleanly checks every mount of
// it), the data stays in the PV's directory, and after the restart the
// replica runs again on the same claim with its data.
func TestStorageAcrossRestart(t *testing.T) {
	c := startNodeCluster(t)
	client := c.Client(t)
	c.ImportBusybox(t, e2eBusybox)
	importImageVolumeImageInto(t, c)
	framework.WaitServiceAccount(t, client, "default")
	nodes, err := client.CoreV1().Nodes().List(t.Context(), metav1.ListOptions{})
	if err != nil || len(nodes.Items) != 1 {
		t.Fatalf("nodes: %v (%v)", nodes, err)
	}
	dir := t.TempDir()
	createPV(t, client, "restart-local", "restart", corev1.PersistentVolumeSource{Local: &corev1.LocalVolumeSource{Path: dir}},
		&corev1.VolumeNodeAffinity{Required: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{
			MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "kubernetes.io/hostname", Operator: corev1.NodeSelectorOpIn, Values: []string{nodes.Items[0].Name}}},
		}}}})
	labels := map[string]string{"app": "db"}
	tmpl := busyboxSleeper("default", "")
	tmpl.Labels = labels
	tmpl.Spec.Containers[0].Command = []string{"sh", "-c", "cat /image/data.json > /data/from-image; echo start >> /data/starts; sleep 3600"}
	tmpl.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "data", MountPath: "/data"}, {Name: "image", MountPath: "/image"}}
	tmpl.Spec.Volumes = []corev1.Volume{imageVolume("image", imageVolumeImage, "")}
	sts := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: "default"},
		Spec: appsv1.StatefulSetSpec{
			Replicas: ptrTo(int32(1)), Selector: &metav1.LabelSelector{MatchLabels: labels}, ServiceName: "db",
			Template:             corev1.PodTemplateSpec{ObjectMeta: tmpl.ObjectMeta, Spec: tmpl.Spec},
			VolumeClaimTemplates: []corev1.PersistentVolumeClaim{{ObjectMeta: metav1.ObjectMeta{Name: "data"}, Spec: claimSpec("restart")}},
		},
	}
	if _, err := client.AppsV1().StatefulSets("default").Create(t.Context(), sts, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	running := func(client kubernetes.Interface) {
		t.Helper()
		if _, err := framework.WaitPodIn(t.Context(), client, "default", "db-0", claimTimeout, func(p *corev1.Pod) (bool, error) {
			return framework.Running(p), nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	running(client)
	stopCleanly(t, c)
	if b, err := os.ReadFile(filepath.Join(dir, "from-image")); err != nil || !strings.Contains(string(b), "kitten.jpg") {
		t.Errorf("PV directory after Ctrl-C: from-image %q (%v)", b, err)
	}

	c = restartNode(t, c)
	client = c.Client(t)
	running(client)
	err = wait.PollUntilContextTimeout(t.Context(), 200*time.Millisecond, framework.PodTimeout, true, func(context.Context) (bool, error) {
		b, err := os.ReadFile(filepath.Join(dir, "starts"))
		return err == nil && string(b) == "start\nstart\n", nil
	})
	if err != nil {
		b, _ := os.ReadFile(filepath.Join(dir, "starts"))
		t.Errorf("starts in the PV after the restart: %q, want two", b)
	}
	stopCleanly(t, c)
}
