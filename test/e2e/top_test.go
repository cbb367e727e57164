//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	apiregistrationv1 "k8s.io/kube-aggregator/pkg/apis/apiregistration/v1"
	aggregator "k8s.io/kube-aggregator/pkg/client/clientset_generated/clientset"
	statsapi "k8s.io/kubelet/pkg/apis/stats/v1alpha1"

	"github.com/pocketkube/pocketkube/test/framework"
)

// busyLoop burns one CPU in the container.
var busyLoop = []string{"sh", "-c", "while :; do :; done"}

// allowNodesSubresource binds user to a ClusterRole with get on
// nodes/<subresource>, removed when the test ends.
func allowNodesSubresource(t *testing.T, c kubernetes.Interface, user, subresource string) {
	t.Helper()
	role := &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: user},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"nodes/" + subresource}, Verbs: []string{"get"}}},
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
}

// onlyNode returns the name of the cluster's one node, waiting (bounded)
// for it to register: a test run alone may start before it has.
func onlyNode(t *testing.T, c kubernetes.Interface) string {
	t.Helper()
	var node string
	err := wait.PollUntilContextTimeout(t.Context(), time.Second, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		nodes, err := c.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil || len(nodes.Items) != 1 {
			return false, nil
		}
		node = nodes.Items[0].Name
		return true, nil
	})
	if err != nil {
		t.Fatalf("no node registered: %v", err)
	}
	return node
}

// TestStatsSummary: the kubelet API's /stats/summary, as a user allowed
// nodes/stats, has the node's CPU, memory, filesystems, network and
// rlimit, the "pods" system container, and a busy pod with its CPU rate,
// memory and container; a user without it gets kubelet's 403, and the
// API server's node proxy serves the same summary to the admin.
func TestStatsSummary(t *testing.T) {
	t.Parallel()
	c, ns := busyboxNamespace(t, "stats-")
	busy := busyboxSleeper(ns, "busy")
	busy.Spec.Containers[0].Command = busyLoop
	busy.Spec.Containers[0].Resources.Limits = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("200m")}
	framework.RunPods(t, c, busy)
	nodeIP := nodeInternalIP(t, c)
	pkiDir := filepath.Join(shared.DataDir, "pki")
	summary := kubeletRequest{"GET", "/stats/summary", "[stats]", "get"}

	t.Run("user without nodes/stats", func(t *testing.T) {
		user := "stats-nobody-" + rand.String(6)
		client, base := kubeletClient(t, nodeIP, issueCert(t, pkiDir, user))
		want := "Forbidden (user=" + user + ", verb=get, resource=nodes, subresource(s)=[stats])\n"
		if code, body := kubeletDo(t, client, base, summary, ""); code != http.StatusForbidden || body != want {
			t.Errorf("GET /stats/summary as %s: %d %q, want 403 %q", user, code, body, want)
		}
	})

	t.Run("user with nodes/stats", func(t *testing.T) {
		user := "stats-reader-" + rand.String(6)
		allowNodesSubresource(t, c, user, "stats")
		client, base := kubeletClient(t, nodeIP, issueCert(t, pkiDir, user))
		// The API server's RBAC informer may lag the binding by a moment,
		// and the busy pod's usageNanoCores needs two samples a second
		// apart: poll, bounded.
		var code int
		var body string
		var s statsapi.Summary
		var pod *statsapi.PodStats
		err := wait.PollUntilContextTimeout(t.Context(), 500*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
			code, body = kubeletDo(t, client, base, summary, "")
			if code != http.StatusOK {
				return false, nil
			}
			s, pod = statsapi.Summary{}, nil
			if err := json.Unmarshal([]byte(body), &s); err != nil {
				return false, err
			}
			for i := range s.Pods {
				if s.Pods[i].PodRef.Namespace == ns && s.Pods[i].PodRef.Name == "busy" {
					pod = &s.Pods[i]
				}
			}
			return pod != nil && pod.CPU != nil && pod.CPU.UsageNanoCores != nil && *pod.CPU.UsageNanoCores > 0, nil
		})
		if err != nil {
			t.Fatalf("GET /stats/summary as %s: %d, busy pod %+v: %v\n%.3000s", user, code, pod, err, body)
		}
		n := s.Node
		if n.CPU == nil || n.CPU.UsageCoreNanoSeconds == nil || n.Memory == nil || n.Memory.AvailableBytes == nil ||
			n.Fs == nil || n.Fs.CapacityBytes == nil || n.Runtime == nil || n.Runtime.ImageFs == nil ||
			n.Rlimit == nil || n.Rlimit.MaxPID == nil || n.Network == nil || len(n.Network.Interfaces) == 0 {
			t.Errorf("node stats lack CPU, memory, fs, imagefs, rlimit or network:\n%.3000s", body)
		}
		var pods *statsapi.ContainerStats
		for i := range n.SystemContainers {
			if n.SystemContainers[i].Name == statsapi.SystemContainerPods {
				pods = &n.SystemContainers[i]
			}
		}
		if pods == nil || pods.Memory == nil || pods.Memory.WorkingSetBytes == nil || pods.CPU == nil {
			t.Errorf("no \"pods\" system container with CPU and memory (allocatableMemory.available reads it): %+v", n.SystemContainers)
		}
		if pod.Memory == nil || pod.Memory.WorkingSetBytes == nil || *pod.Memory.WorkingSetBytes == 0 ||
			len(pod.Containers) != 1 || pod.Containers[0].Name != "main" || pod.Containers[0].CPU == nil ||
			pod.EphemeralStorage == nil || pod.ProcessStats == nil {
			t.Errorf("busy pod's stats lack memory, its container, ephemeral storage or processes: %+v", pod)
		}
		t.Logf("busy pod: %d nanocores, working set %d bytes", *pod.CPU.UsageNanoCores, *pod.Memory.WorkingSetBytes)
	})

	t.Run("admin through the node proxy", func(t *testing.T) {
		node := onlyNode(t, c)
		out, err := shared.Kubectl(t.Context(), framework.Newest(), "get", "--raw", "/api/v1/nodes/"+node+"/proxy/stats/summary?only_cpu_and_memory=true")
		if err != nil {
			t.Fatalf("kubectl get --raw .../proxy/stats/summary: %v\n%s", err, out)
		}
		var s statsapi.Summary
		if err := json.Unmarshal([]byte(out), &s); err != nil || s.Node.NodeName != node {
			t.Errorf("summary of node %q (%v), want %q:\n%.2000s", s.Node.NodeName, err, node, out)
		}
	})
}

// milliCPU reads a CPU column of kubectl top ("150m", "1").
func milliCPU(s string) (int64, bool) {
	q, err := resource.ParseQuantity(s)
	if err != nil {
		return 0, false
	}
	return q.MilliValue(), true
}

// TestKubectlTop: metrics-server in the pocketkube process serves
// metrics.k8s.io through the API server's aggregator, so `kubectl top
// node` shows the node and `kubectl top pod --containers` a busy pod's
// container using CPU. The first figures come after metrics-server's
// 15 s resolution and two scrapes of the pod: the waits are bounded polls.
func TestKubectlTop(t *testing.T) {
	t.Parallel()
	c, ns := busyboxNamespace(t, "top-")
	busy := busyboxSleeper(ns, "busy")
	busy.Spec.Containers[0].Command = busyLoop
	busy.Spec.Containers[0].Resources.Limits = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("200m")}
	framework.RunPods(t, c, busy)
	node := onlyNode(t, c)

	out, err := shared.PollKubectl(t.Context(), framework.Newest(), 2*time.Minute, func(out string, err error) bool {
		return err == nil && strings.Contains(out, node)
	}, "top", "node", "--no-headers")
	if err != nil {
		t.Fatalf("kubectl top node: %v\n%s", err, out)
	}
	f := strings.Fields(out)
	if len(f) < 5 || f[0] != node {
		t.Fatalf("kubectl top node = %q, want NAME CPU(cores) CPU(%%) MEMORY(bytes) MEMORY(%%)", out)
	}
	if m, ok := milliCPU(f[1]); !ok || m <= 0 {
		t.Errorf("kubectl top node: CPU %q, want above 0", f[1])
	}
	t.Logf("kubectl top node: %s", strings.TrimSpace(out))

	var cpu int64
	out, err = shared.PollKubectl(t.Context(), framework.Newest(), 2*time.Minute, func(out string, err error) bool {
		f := strings.Fields(out)
		if err != nil || len(f) < 4 || f[0] != "busy" || f[1] != "main" {
			return false
		}
		m, ok := milliCPU(f[2])
		cpu = m
		return ok && m > 0
	}, "top", "pod", "-n", ns, "--containers", "--no-headers")
	if err != nil {
		t.Fatalf("kubectl top pod --containers: %v\n%s", err, out)
	}
	t.Logf("kubectl top pod --containers: %s", strings.TrimSpace(out))
	if cpu > 250 {
		t.Errorf("busy container uses %dm CPU, over its 200m limit", cpu)
	}
	if out, err := shared.Kubectl(t.Context(), framework.Newest(), "top", "pod", "-n", ns, "--no-headers"); err != nil || !strings.HasPrefix(out, "busy ") {
		t.Errorf("kubectl top pod: %v\n%s", err, out)
	}
}

// TestHPAScalesUpAndDown: a HorizontalPodAutoscaler (autoscaling/v2, CPU
// utilization 50 %) on a Deployment whose pod burns its whole CPU limit
// (2× its request) scales it up, with the metrics metrics-server serves,
// and back to its minimum once the pods are idle.
// The controller-manager's HPA controller syncs every 15 s
// (--horizontal-pod-autoscaler-sync-period's default), after
// metrics-server has two scrapes of the pod: the wait is a bounded poll.
func TestHPAScalesUpAndDown(t *testing.T) {
	t.Parallel()
	c, ns := busyboxNamespace(t, "hpa-")
	labels := map[string]string{"app": "burner"}
	pod := busyboxSleeper(ns, "burner")
	pod.Spec.Containers[0].Command = busyLoop
	pod.Spec.Containers[0].Resources = corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("50m")},
		Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m")},
	}
	deploy := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "burner", Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: new(int32),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: pod.Spec},
		},
	}
	*deploy.Spec.Replicas = 1
	if _, err := c.AppsV1().Deployments(ns).Create(t.Context(), deploy, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	minReplicas, utilization := int32(1), int32(50)
	hpa := &autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Name: "burner", Namespace: ns},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "burner"},
			MinReplicas:    &minReplicas,
			MaxReplicas:    3,
			// No scale-down stabilization (5 min by default), so that
			// the test sees the scale-down at the next sync.
			Behavior: &autoscalingv2.HorizontalPodAutoscalerBehavior{
				ScaleDown: &autoscalingv2.HPAScalingRules{StabilizationWindowSeconds: new(int32)},
			},
			Metrics: []autoscalingv2.MetricSpec{{
				Type: autoscalingv2.ResourceMetricSourceType,
				Resource: &autoscalingv2.ResourceMetricSource{
					Name:   corev1.ResourceCPU,
					Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: &utilization},
				},
			}},
		},
	}
	if _, err := c.AutoscalingV2().HorizontalPodAutoscalers(ns).Create(t.Context(), hpa, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var got *autoscalingv2.HorizontalPodAutoscaler
	err := wait.PollUntilContextTimeout(t.Context(), 2*time.Second, 4*time.Minute, true, func(ctx context.Context) (bool, error) {
		h, err := c.AutoscalingV2().HorizontalPodAutoscalers(ns).Get(ctx, "burner", metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		got = h
		return h.Status.DesiredReplicas > 1, nil
	})
	if err != nil {
		out, _ := shared.Kubectl(context.Background(), framework.Newest(), "describe", "hpa", "-n", ns, "burner")
		t.Fatalf("the HPA did not scale up: %v\n%s", err, out)
	}
	util := "?"
	for _, m := range got.Status.CurrentMetrics {
		if m.Resource != nil && m.Resource.Current.AverageUtilization != nil {
			util = strconv.Itoa(int(*m.Resource.Current.AverageUtilization)) + "%"
		}
	}
	t.Logf("HPA: desired %d replicas at %s CPU utilization", got.Status.DesiredReplicas, util)
	err = wait.PollUntilContextTimeout(t.Context(), time.Second, time.Minute, true, func(ctx context.Context) (bool, error) {
		d, err := c.AppsV1().Deployments(ns).Get(ctx, "burner", metav1.GetOptions{})
		return err == nil && d.Spec.Replicas != nil && *d.Spec.Replicas > 1, nil
	})
	if err != nil {
		t.Fatalf("the Deployment's replicas did not follow the HPA's %d: %v", got.Status.DesiredReplicas, err)
	}

	// The load stops (the pods now sleep): back to minReplicas.
	patch := `{"spec":{"template":{"spec":{"containers":[{"name":"` + pod.Spec.Containers[0].Name + `","command":["sleep","3600"]}]}}}}`
	if _, err := c.AppsV1().Deployments(ns).Patch(t.Context(), "burner", types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	err = wait.PollUntilContextTimeout(t.Context(), 2*time.Second, 4*time.Minute, true, func(ctx context.Context) (bool, error) {
		h, err := c.AutoscalingV2().HorizontalPodAutoscalers(ns).Get(ctx, "burner", metav1.GetOptions{})
		d, derr := c.AppsV1().Deployments(ns).Get(ctx, "burner", metav1.GetOptions{})
		return err == nil && derr == nil && h.Status.DesiredReplicas == minReplicas && d.Spec.Replicas != nil && *d.Spec.Replicas == minReplicas, nil
	})
	if err != nil {
		out, _ := shared.Kubectl(context.Background(), framework.Newest(), "describe", "hpa", "-n", ns, "burner")
		t.Fatalf("the HPA did not scale the idle Deployment back to %d: %v\n%s", minReplicas, err, out)
	}
}

// TestDisableMetrics: a control plane registers the APIService
// v1beta1.metrics.k8s.io and the aggregator finds metrics-server behind
// it (Available); `up --disable metrics` on the same data dir removes the
// APIService (so discovery reports no unavailable group) and opens no
// metrics port.
func TestDisableMetrics(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "c")
	c := startOwnCluster(t, dir)
	rc, err := c.RESTConfig()
	if err != nil {
		t.Fatal(err)
	}
	agg, err := aggregator.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	var conds []apiregistrationv1.APIServiceCondition
	err = wait.PollUntilContextTimeout(t.Context(), 500*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		a, err := agg.ApiregistrationV1().APIServices().Get(ctx, "v1beta1.metrics.k8s.io", metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		conds = a.Status.Conditions
		for _, cond := range conds {
			if cond.Type == apiregistrationv1.Available && cond.Status == apiregistrationv1.ConditionTrue {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("APIService v1beta1.metrics.k8s.io not Available: %v, conditions %+v", err, conds)
	}
	stopCleanly(t, c)

	c = startOwnClusterOnPort(t, dir, c.Port, "--disable", "metrics")
	if rc, err = c.RESTConfig(); err != nil {
		t.Fatal(err)
	}
	if agg, err = aggregator.NewForConfig(rc); err != nil {
		t.Fatal(err)
	}
	if _, err := agg.ApiregistrationV1().APIServices().Get(t.Context(), "v1beta1.metrics.k8s.io", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("APIService v1beta1.metrics.k8s.io with --disable metrics: %v, want NotFound", err)
	}
	if conn, err := net.DialTimeout("tcp", net.JoinHostPort(c.Host, strconv.Itoa(c.MetricsPort)), 3*time.Second); err == nil {
		conn.Close()
		t.Errorf("something listens on the metrics port %d with --disable metrics", c.MetricsPort)
	}
	stopCleanly(t, c)
}

// TestMetricsOpenAPI: the API server's aggregated OpenAPI (v2 and the
// metrics.k8s.io/v1beta1 part of v3) has metrics-server's models, which
// metrics-server builds from definitions cut down to what it serves
// (internal/controlplane/metricsserver openAPIDefinitions): `kubectl
// explain` and clients' validation see them as on a cluster with
// metrics-server in a pod. The aggregator fetches the specs after the
// APIService is available: the wait is a bounded poll.
func TestMetricsOpenAPI(t *testing.T) {
	t.Parallel()
	const model = `"io.k8s.metrics.pkg.apis.metrics.v1beta1.NodeMetrics"`
	for _, tt := range []struct {
		path string
		want []string
	}{
		{"/openapi/v3/apis/metrics.k8s.io/v1beta1", []string{`"openapi":"3.0.0"`, model, `"io.k8s.metrics.pkg.apis.metrics.v1beta1.PodMetricsList"`, `"/apis/metrics.k8s.io/v1beta1/nodes/{name}"`}},
		{"/openapi/v2", []string{`"swagger":"2.0"`, model, `"/apis/metrics.k8s.io/v1beta1/namespaces/{namespace}/pods"`, `"io.k8s.api.batch.v1.Job"`}},
	} {
		out, err := shared.PollKubectl(t.Context(), framework.Newest(), 2*time.Minute, func(out string, err error) bool {
			if err != nil {
				return false
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					return false
				}
			}
			return true
		}, "get", "--raw", tt.path)
		if err != nil {
			t.Errorf("get --raw %s: %v", tt.path, err)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(out, w) {
				t.Errorf("get --raw %s lacks %s:\n%.400s", tt.path, w, out)
			}
		}
	}
}
