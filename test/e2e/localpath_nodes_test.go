//go:build e2e

package e2e

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/pocketkube/pocketkube/test/framework"
)

// A claim of the default StorageClass used by a pod the scheduler puts on
// a joined node (`pocketkube agent`) is provisioned by that node's own
// provisioner: Bound to a PV with affinity to that node, its directory
// (0777) in the agent's DATA_DIR/storage, where the pod's file lands, and
// none on the server's node; deleting the claim removes the PV and the
// directory there. The node's credentials may create and delete only PVs
// of its own node (the server's ValidatingAdmissionPolicy).
func TestLocalPathAgentNode(t *testing.T) {
	c := startNodeCluster(t)
	admin := c.Client(t)
	tok, hash := nodeToken(t, c)
	n := newJoinedNode(t, c, "agent-lp-"+strconv.Itoa(os.Getpid()))
	n.importBusybox(t)
	n.start(t, "--token", tok, "--discovery-token-ca-cert-hash", hash)
	waitNodeReady(t, admin, n.name, time.Time{})

	ns := framework.NewNamespace(t, admin, "local-path-agent")
	ctx := t.Context()
	t.Cleanup(func() {
		if t.Failed() {
			logEvents(t, admin, ns)
		}
	})
	if _, err := admin.CoreV1().PersistentVolumeClaims(ns).Create(ctx, classlessClaim(ns, "data"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pod := busyboxSleeper(ns, "writer")
	// The scheduler, not spec.nodeName, must place the pod: its choice
	// is what selects the claim's node.
	pod.Spec.NodeSelector = map[string]string{corev1.LabelHostname: n.name}
	pod.Spec.Containers[0].Command = []string{"sh", "-c", "echo on the agent > /data/file && exec sleep 3600"}
	pod.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "data", MountPath: "/data"}}
	pod.Spec.Volumes = []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{
		PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "data"},
	}}}
	framework.RunPods(t, admin, pod)
	_, pv := waitClaimBound(t, admin, ns, "data")

	if got := pvNode(pv); got != n.name {
		t.Errorf("PV %s has node affinity %+v, want node %s", pv.Name, pv.Spec.NodeAffinity, n.name)
	}
	agentStorage := filepath.Join(n.dataDir, "storage")
	if pv.Spec.HostPath == nil || filepath.Dir(pv.Spec.HostPath.Path) != agentStorage {
		t.Fatalf("PV %s source %+v, want a directory of %s", pv.Name, pv.Spec.PersistentVolumeSource, agentStorage)
	}
	dir := pv.Spec.HostPath.Path
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o777 {
		t.Errorf("the volume's directory on the agent: %v (%v), want mode 0777", fi, err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "file")); err != nil || string(b) != "on the agent\n" {
		t.Errorf("the pod's file in the agent's volume directory: %q (%v)", b, err)
	}
	if entries, err := os.ReadDir(filepath.Join(c.DataDir, "storage")); err == nil {
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), pv.Name) {
				t.Errorf("the server's node made %s for the agent's claim", e.Name())
			}
		}
	}
	// Only the agent's provisioner acted: one success, no failure from
	// the server's node.
	events := claimEvents(t, admin, ns, "data")
	if events["ProvisioningSucceeded"] != 1 || events["ProvisioningFailed"] != 0 {
		t.Errorf("the claim's provisioning events: %v, want one ProvisioningSucceeded and no ProvisioningFailed", events)
	}

	t.Run("node credentials", func(t *testing.T) {
		nodes, err := admin.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var server string
		for _, node := range nodes.Items {
			if node.Name != n.name {
				server = node.Name
			}
		}
		node := nodeClient(t, n)
		other := hostPathPV("pk-e2e-other-"+strconv.Itoa(os.Getpid()), "/", server)
		_, err = node.CoreV1().PersistentVolumes().Create(ctx, other, metav1.CreateOptions{})
		if err == nil {
			admin.CoreV1().PersistentVolumes().Delete(context.Background(), other.Name, metav1.DeleteOptions{})
		}
		if !apierrors.IsForbidden(err) && !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "affinity to itself") {
			t.Errorf("node %s creating a PV on node %s: %v, want a refusal by the admission policy", n.name, server, err)
		}
		if err := node.CoreV1().PersistentVolumes().Delete(ctx, pv.Name, metav1.DeleteOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
			t.Errorf("node %s deleting its own PV (dry run): %v", n.name, err)
		}
		serverPV := hostPathPV("pk-e2e-server-"+strconv.Itoa(os.Getpid()), filepath.Join(c.DataDir, "storage", "x"), server)
		if _, err := admin.CoreV1().PersistentVolumes().Create(ctx, serverPV, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		defer admin.CoreV1().PersistentVolumes().Delete(context.Background(), serverPV.Name, metav1.DeleteOptions{})
		if err := node.CoreV1().PersistentVolumes().Delete(ctx, serverPV.Name, metav1.DeleteOptions{}); err == nil || !strings.Contains(err.Error(), "affinity to itself") {
			t.Errorf("node %s deleting a PV of node %s: %v, want a refusal by the admission policy", n.name, server, err)
		}
	})

	if err := admin.CoreV1().Pods(ns).Delete(ctx, "writer", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitGone(t, "pod writer", func(ctx context.Context) error {
		_, err := admin.CoreV1().Pods(ns).Get(ctx, "writer", metav1.GetOptions{})
		return err
	})
	if err := admin.CoreV1().PersistentVolumeClaims(ns).Delete(ctx, "data", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitGone(t, "PV "+pv.Name, func(ctx context.Context) error {
		_, err := admin.CoreV1().PersistentVolumes().Get(ctx, pv.Name, metav1.GetOptions{})
		return err
	})
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("after the claim's deletion, the agent's volume directory %s: %v, want it gone", dir, err)
	}
}

// pvNode is the one node of pv's node affinity, "" for another shape.
func pvNode(pv *corev1.PersistentVolume) string {
	a := pv.Spec.NodeAffinity
	if a == nil || a.Required == nil || len(a.Required.NodeSelectorTerms) != 1 || len(a.Required.NodeSelectorTerms[0].MatchExpressions) != 1 {
		return ""
	}
	e := a.Required.NodeSelectorTerms[0].MatchExpressions[0]
	if e.Key != corev1.LabelHostname || e.Operator != corev1.NodeSelectorOpIn || len(e.Values) != 1 {
		return ""
	}
	return e.Values[0]
}

// hostPathPV is a PV of path on node, as the local-path provisioner makes
// them, of no class.
func hostPathPV(name, path, node string) *corev1.PersistentVolume {
	return &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PersistentVolumeSpec{
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Capacity:    corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")},
			PersistentVolumeSource: corev1.PersistentVolumeSource{
				HostPath: &corev1.HostPathVolumeSource{Path: path},
			},
			NodeAffinity: &corev1.VolumeNodeAffinity{Required: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{
				MatchExpressions: []corev1.NodeSelectorRequirement{{Key: corev1.LabelHostname, Operator: corev1.NodeSelectorOpIn, Values: []string{node}}},
			}}}},
		},
	}
}

// nodeClient is a client with joined node n's own credentials.
func nodeClient(t *testing.T, n *joinedNode) kubernetes.Interface {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", filepath.Join(n.dataDir, "agent", "kubelet.conf"))
	if err != nil {
		t.Fatal(err)
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return client
}

// claimEvents counts the events of claim ns/name by reason, once one
// ProvisioningSucceeded has come (events are written after the PV).
func claimEvents(t *testing.T, c kubernetes.Interface, ns, name string) map[string]int32 {
	t.Helper()
	var counts map[string]int32
	err := wait.PollUntilContextTimeout(t.Context(), 100*time.Millisecond, provisionTimeout, true, func(ctx context.Context) (bool, error) {
		list, err := c.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: fields.Set{
			"involvedObject.kind": "PersistentVolumeClaim", "involvedObject.name": name,
		}.String()})
		if err != nil {
			return false, nil
		}
		counts = map[string]int32{}
		for _, e := range list.Items {
			counts[e.Reason] += max(e.Count, 1)
		}
		return counts["ProvisioningSucceeded"] > 0, nil
	})
	if err != nil {
		t.Errorf("events of claim %s/%s: %v (%v)", ns, name, counts, err)
	}
	return counts
}

// checkServersPlatform checks servicelb and the local-path provisioners
// on three servers (TestServers): one server's servicelb holds the Lease
// kube-system/pocketkube-servicelb, and a LoadBalancer Service gets the
// three nodes' addresses from it alone (one EnsuredLoadBalancer event); a
// claim whose pod the scheduler puts on server-2 is provisioned there,
// once, and its deletion removes the directory there.
func checkServersPlatform(t *testing.T, servers []*framework.Cluster) {
	admin := servers[0].Client(t)
	ctx := t.Context()
	var holder string
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, framework.PodTimeout, true, func(ctx context.Context) (bool, error) {
		lease, err := admin.CoordinationV1().Leases("kube-system").Get(ctx, "pocketkube-servicelb", metav1.GetOptions{})
		if err != nil || lease.Spec.HolderIdentity == nil {
			return false, nil
		}
		holder = *lease.Spec.HolderIdentity
		return strings.HasPrefix(holder, "server-"), nil
	})
	if err != nil {
		t.Errorf("Lease kube-system/pocketkube-servicelb: holder %q (%v), want one of the servers", holder, err)
	}

	nodes, err := admin.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, n := range nodes.Items {
		for _, a := range n.Status.Addresses {
			if a.Type == corev1.NodeInternalIP {
				want = append(want, a.Address)
			}
		}
	}
	slices.Sort(want)
	ns := framework.NewNamespace(t, admin, "servers-platform")
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "lb", Namespace: ns},
		Spec: corev1.ServiceSpec{
			Type:     corev1.ServiceTypeLoadBalancer,
			Selector: map[string]string{"app": "none"},
			Ports:    []corev1.ServicePort{{Port: 18090, TargetPort: intstr.FromInt32(8080)}},
		},
	}
	if _, err := admin.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var got []string
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, framework.PodTimeout, true, func(ctx context.Context) (bool, error) {
		s, err := admin.CoreV1().Services(ns).Get(ctx, "lb", metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		got = got[:0]
		for _, in := range s.Status.LoadBalancer.Ingress {
			got = append(got, in.IP)
		}
		slices.Sort(got)
		return len(got) > 0, nil
	})
	if err != nil || !slices.Equal(got, want) || len(want) != 3 {
		t.Errorf("LoadBalancer Service ingress %v (%v), want the three nodes' InternalIPs %v", got, err, want)
	}
	var ensured int32
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, framework.PodTimeout, true, func(ctx context.Context) (bool, error) {
		evs, err := admin.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=lb"})
		if err != nil {
			return false, nil
		}
		ensured = 0
		for _, e := range evs.Items {
			if e.Reason == "EnsuredLoadBalancer" {
				ensured += max(e.Count, 1)
			}
		}
		return ensured > 0, nil
	})
	if err != nil || ensured != 1 {
		t.Errorf("%d EnsuredLoadBalancer events (%v), want one: one servicelb leads", ensured, err)
	}

	s2 := servers[1]
	s2.ImportBusybox(t, "busybox")
	if _, err := admin.CoreV1().PersistentVolumeClaims(ns).Create(ctx, classlessClaim(ns, "data"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pod := busyboxSleeper(ns, "writer")
	pod.Spec.NodeSelector = map[string]string{corev1.LabelHostname: "server-2"}
	pod.Spec.Containers[0].Command = []string{"sh", "-c", "echo on server-2 > /data/file && exec sleep 3600"}
	pod.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "data", MountPath: "/data"}}
	pod.Spec.Volumes = []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{
		PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "data"},
	}}}
	framework.RunPods(t, admin, pod)
	_, pv := waitClaimBound(t, admin, ns, "data")
	if pvNode(pv) != "server-2" || pv.Spec.HostPath == nil || filepath.Dir(pv.Spec.HostPath.Path) != filepath.Join(s2.DataDir, "storage") {
		t.Fatalf("PV %s: node %q, source %+v; want a directory of server-2's storage", pv.Name, pvNode(pv), pv.Spec.PersistentVolumeSource)
	}
	if b, err := os.ReadFile(filepath.Join(pv.Spec.HostPath.Path, "file")); err != nil || string(b) != "on server-2\n" {
		t.Errorf("the pod's file in server-2's volume directory: %q (%v)", b, err)
	}
	if events := claimEvents(t, admin, ns, "data"); events["ProvisioningSucceeded"] != 1 || events["ProvisioningFailed"] != 0 {
		t.Errorf("the claim's provisioning events: %v, want one ProvisioningSucceeded and no ProvisioningFailed", events)
	}
	if err := admin.CoreV1().Pods(ns).Delete(ctx, "writer", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitGone(t, "pod writer", func(ctx context.Context) error {
		_, err := admin.CoreV1().Pods(ns).Get(ctx, "writer", metav1.GetOptions{})
		return err
	})
	if err := admin.CoreV1().PersistentVolumeClaims(ns).Delete(ctx, "data", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitGone(t, "PV "+pv.Name, func(ctx context.Context) error {
		_, err := admin.CoreV1().PersistentVolumes().Get(ctx, pv.Name, metav1.GetOptions{})
		return err
	})
	if _, err := os.Stat(pv.Spec.HostPath.Path); !os.IsNotExist(err) {
		t.Errorf("after the claim's deletion, server-2's volume directory: %v, want it gone", err)
	}
}

// logEvents logs the events of namespace ns, for a failed test.
func logEvents(t *testing.T, c kubernetes.Interface, ns string) {
	evs, err := c.CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Logf("events of %s: %v", ns, err)
		return
	}
	for _, e := range evs.Items {
		t.Logf("event %s %s/%s: %s %s (%s, x%d)", e.Type, e.InvolvedObject.Kind, e.InvolvedObject.Name, e.Reason, e.Message, e.Source.Component, e.Count)
	}
}
