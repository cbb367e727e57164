//go:build e2e

package e2e

import (
	"context"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/pocketkube/pocketkube/test/framework"
)

// nodeMonitorGracePeriod is the controller-manager's
// --node-monitor-grace-period in TestAgentNodeLifecycle: upstream's 50 s
// would make the test wait that long for a stopped agent's Node to go
// NotReady. It must be well above the agent's Lease renewal (10 s).
const nodeMonitorGracePeriod = "20s"

// lifecycleTimeout bounds each wait of TestAgentNodeLifecycle for the
// control plane's controllers: the grace period, podgc's 40 s quarantine
// of a deleted Node's pods plus its 20 s period, with room for a shared
// machine.
const lifecycleTimeout = 2 * time.Minute

// TestAgentNodeLifecycle runs the node lifecycle as upstream's
// controllers drive it, on a server and two joined agents: a DaemonSet
// gets a Running pod on each node; a Deployment with a hostname
// topologySpreadConstraint spreads evenly; `kubectl cordon` keeps new
// pods off a node; `kubectl drain` evicts a node's Deployment pods through
// the Eviction API, refused while a PodDisruptionBudget allows no
// disruption and done once it allows one, and the pods run again on the
// other nodes; kill -9 of an agent makes its Node Ready=Unknown after the
// controller-manager's grace period (set with `up
// --kube-controller-manager-arg`), tainted unreachable, and its pods that
// tolerate that for 5 s are evicted and replaced on the other nodes, while
// `kubectl delete node` of a stopped agent's Node has its pods deleted by
// podgc and replaced; a third agent whose Node is deleted while it runs
// stops those pods' containers and keeps running without registering
// again until it restarts, as kubelet; the agents, started again, are
// Ready Nodes again (the deleted ones registered anew) and leave nothing
// of the pods deleted meanwhile.
func TestAgentNodeLifecycle(t *testing.T) {
	c := startNodeCluster(t, "--kube-controller-manager-arg", "node-monitor-grace-period="+nodeMonitorGracePeriod)
	c.ImportBusybox(t, "busybox")
	admin := c.Client(t)
	a := joinReadyNode(t, c, "lc-a-"+strconv.Itoa(os.Getpid()))
	b := joinReadyNode(t, c, "lc-b-"+strconv.Itoa(os.Getpid()))
	nodes, err := admin.CoreV1().Nodes().List(t.Context(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var server string
	var all []string
	for _, n := range nodes.Items {
		all = append(all, n.Name)
		if n.Name != a.name && n.Name != b.name {
			server = n.Name
		}
	}
	if len(all) != 3 || server == "" {
		t.Fatalf("nodes %v, want the server's and %s, %s", all, a.name, b.name)
	}
	slices.Sort(all)
	ns := framework.NewNamespace(t, admin, "agent-lifecycle")
	kubectl := func(args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(t.Context(), framework.PodTimeout)
		defer cancel()
		stdout, stderr, err := c.KubectlSplit(ctx, framework.Newest(), "", args...)
		return stdout + stderr, err
	}

	// A DaemonSet: one Running pod on each node.
	ds := &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: "ds", Namespace: ns},
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "ds"}},
			Template: podTemplate("ds"),
		},
	}
	if _, err := admin.AppsV1().DaemonSets(ns).Create(t.Context(), ds, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := waitPodsPerNode(t, admin, ns, "app=ds", "one DaemonSet pod Running on each node", func(per map[string]int, _ int) bool {
		return len(per) == 3 && per[server] == 1 && per[a.name] == 1 && per[b.name] == 1
	}); len(got) != 3 {
		t.Fatalf("DaemonSet pods per node %v", got)
	}

	// A Deployment spread by hostname, maxSkew 1: two pods on each node.
	spread := deployment(ns, "spread", 6)
	spread.Spec.Template.Spec.TopologySpreadConstraints = []corev1.TopologySpreadConstraint{{
		MaxSkew: 1, TopologyKey: corev1.LabelHostname, WhenUnsatisfiable: corev1.DoNotSchedule,
		LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "spread"}},
	}}
	if _, err := admin.AppsV1().Deployments(ns).Create(t.Context(), spread, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitPodsPerNode(t, admin, ns, "app=spread", "the spread Deployment's 6 pods Running, 2 on each node", func(per map[string]int, _ int) bool {
		return per[server] == 2 && per[a.name] == 2 && per[b.name] == 2
	})
	if err := admin.AppsV1().Deployments(ns).Delete(t.Context(), "spread", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}

	// The Deployment the rest of the test moves around: spread over the
	// nodes it may use (nodeTaintsPolicy Honor: a cordoned or unreachable
	// node is no domain), with an emptyDir (drain's
	// --delete-emptydir-data), leaving an unreachable or not-ready node
	// after 5 s instead of the 300 s the API server's
	// DefaultTolerationSeconds gives.
	app := deployment(ns, "app", 3)
	honor := corev1.NodeInclusionPolicyHonor
	app.Spec.Template.Spec.TopologySpreadConstraints = []corev1.TopologySpreadConstraint{{
		MaxSkew: 1, TopologyKey: corev1.LabelHostname, WhenUnsatisfiable: corev1.DoNotSchedule, NodeTaintsPolicy: &honor,
		LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "app"}},
	}}
	five := int64(5)
	app.Spec.Template.Spec.Tolerations = []corev1.Toleration{
		{Key: corev1.TaintNodeUnreachable, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: &five},
		{Key: corev1.TaintNodeNotReady, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: &five},
	}
	// Upstream's default grace period, so that an evicted pod of a dead
	// node stays Terminating until its agent is back; the shell ends on
	// SIGTERM (sleep as PID 1 would not).
	thirty := int64(30)
	app.Spec.Template.Spec.TerminationGracePeriodSeconds = &thirty
	app.Spec.Template.Spec.Containers[0].Command = []string{"sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"}
	app.Spec.Template.Spec.Volumes = []corev1.Volume{{Name: "scratch", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
	app.Spec.Template.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "scratch", MountPath: "/scratch"}}
	if _, err := admin.AppsV1().Deployments(ns).Create(t.Context(), app, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitPodsPerNode(t, admin, ns, "app=app", "the app Deployment's 3 pods Running, one on each node", func(per map[string]int, _ int) bool {
		return per[server] == 1 && per[a.name] == 1 && per[b.name] == 1
	})
	zero := intstr.FromInt32(0)
	pdb := &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: ns},
		Spec: policyv1.PodDisruptionBudgetSpec{
			MaxUnavailable: &zero,
			Selector:       &metav1.LabelSelector{MatchLabels: map[string]string{"app": "app"}},
		},
	}
	if _, err := admin.PolicyV1().PodDisruptionBudgets(ns).Create(t.Context(), pdb, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	// Cordoned, b takes no new pod: of 3 more, none goes to b.
	if out, err := kubectl("cordon", b.name); err != nil || !strings.Contains(out, "cordoned") {
		t.Fatalf("kubectl cordon %s: %q, %v", b.name, out, err)
	}
	if n, err := admin.CoreV1().Nodes().Get(t.Context(), b.name, metav1.GetOptions{}); err != nil || !n.Spec.Unschedulable {
		t.Fatalf("Node %s after cordon: %v, %v; want unschedulable", b.name, n, err)
	}
	scale(t, admin, ns, "app", 6)
	waitPodsPerNode(t, admin, ns, "app=app", "6 app pods Running, still one on the cordoned node", func(per map[string]int, total int) bool {
		return total == 6 && per[b.name] == 1
	})
	pdbAllows(t, admin, ns, "app", 0)

	// Drained while the PDB allows no disruption: the eviction is refused
	// and the pod stays; once it allows one, the pod is evicted and runs
	// again on another node. The DaemonSet's pod stays.
	out, err := kubectl("drain", b.name, "--ignore-daemonsets", "--delete-emptydir-data", "--timeout=10s")
	if err == nil || !strings.Contains(out, "Cannot evict pod as it would violate the pod's disruption budget") {
		t.Errorf("kubectl drain %s under a PDB allowing nothing: %v, output:\n%s\nwant a refusal naming the disruption budget", b.name, err, out)
	}
	onB := podsOn(t, admin, ns, "app=app", b.name)
	if len(onB) != 1 || onB[0].DeletionTimestamp != nil {
		t.Fatalf("app pods on %s after the refused drain: %v, want the one as it was", b.name, podNames(onB))
	}
	if _, err := admin.PolicyV1().PodDisruptionBudgets(ns).Patch(t.Context(), "app", types.MergePatchType,
		[]byte(`{"spec":{"maxUnavailable":1}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	pdbAllows(t, admin, ns, "app", 1)
	if out, err := kubectl("drain", b.name, "--ignore-daemonsets", "--delete-emptydir-data", "--timeout=60s"); err != nil || !strings.Contains(out, "evicting pod "+ns+"/"+onB[0].Name) || !strings.Contains(out, "drained") {
		t.Fatalf("kubectl drain %s: %v, output:\n%s", b.name, err, out)
	}
	waitPodsPerNode(t, admin, ns, "app=app", "6 app pods Running again, none on the drained node", func(per map[string]int, total int) bool {
		return total == 6 && per[b.name] == 0
	})
	if _, err := admin.CoreV1().Pods(ns).Get(t.Context(), onB[0].Name, metav1.GetOptions{}); err == nil {
		t.Errorf("drained pod %s still exists", onB[0].Name)
	}
	if got := podsOn(t, admin, ns, "app=ds", b.name); len(got) != 1 || got[0].DeletionTimestamp != nil {
		t.Errorf("DaemonSet pods on the drained node: %v, want its one pod left", podNames(got))
	}
	if out, err := kubectl("uncordon", b.name); err != nil || !strings.Contains(out, "uncordoned") {
		t.Fatalf("kubectl uncordon %s: %q, %v", b.name, out, err)
	}
	// A pod that prefers b, to see go when b's Node is deleted.
	gc := deployment(ns, "gc", 1)
	gc.Spec.Template.Spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
		PreferredDuringSchedulingIgnoredDuringExecution: []corev1.PreferredSchedulingTerm{{Weight: 100, Preference: corev1.NodeSelectorTerm{
			MatchExpressions: []corev1.NodeSelectorRequirement{{Key: corev1.LabelHostname, Operator: corev1.NodeSelectorOpIn, Values: []string{b.name}}},
		}}},
	}}
	if _, err := admin.AppsV1().Deployments(ns).Create(t.Context(), gc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitPodsPerNode(t, admin, ns, "app=gc", "the gc pod Running on the uncordoned node", func(per map[string]int, _ int) bool {
		return per[b.name] == 1
	})

	// A third agent, whose Node is deleted while it runs.
	live := joinReadyNode(t, c, "lc-c-"+strconv.Itoa(os.Getpid()))
	waitPodsPerNode(t, admin, ns, "app=ds", "a DaemonSet pod Running on the new node", func(per map[string]int, _ int) bool {
		return per[live.name] == 1
	})
	liveUID := nodeUID(mustNodes(t, admin), live.name)

	// kill -9 of a's agent; at the same time b's agent stops and its
	// Node is deleted, and so is the running agent's.
	onA := podsOn(t, admin, ns, "app=app", a.name)
	onB = podsOn(t, admin, ns, "", b.name)
	onLive := podsOn(t, admin, ns, "", live.name)
	if len(onA) == 0 {
		t.Fatalf("no app pod on %s", a.name)
	}
	a.proc.Kill()
	killed := time.Now()
	if err := b.proc.Stop(15 * time.Second); err != nil {
		t.Fatalf("stop agent %s: %v", b.name, err)
	}
	for _, name := range []string{b.name, live.name} {
		if out, err := kubectl("delete", "node", name); err != nil || !strings.Contains(out, "deleted") {
			t.Fatalf("kubectl delete node %s: %q, %v", name, out, err)
		}
	}

	// a: Ready=Unknown as the node lifecycle controller says it, the
	// unreachable taints, its app pods evicted.
	var node *corev1.Node
	err = wait.PollUntilContextTimeout(t.Context(), 500*time.Millisecond, lifecycleTimeout, true, func(ctx context.Context) (bool, error) {
		if node, err = admin.CoreV1().Nodes().Get(ctx, a.name, metav1.GetOptions{}); err != nil {
			return false, nil
		}
		ready := nodeCondition(node, corev1.NodeReady)
		return ready != nil && ready.Status == corev1.ConditionUnknown, nil
	})
	if err != nil {
		t.Fatalf("Node %s of the killed agent not Ready=Unknown: %+v", a.name, node.Status.Conditions)
	}
	t.Logf("Node %s Ready=Unknown %s after kill -9 (grace period %s)", a.name, time.Since(killed).Round(time.Second), nodeMonitorGracePeriod)
	if ready := nodeCondition(node, corev1.NodeReady); ready.Reason != "NodeStatusUnknown" || ready.Message != "Kubelet stopped posting node status." {
		t.Errorf("Ready condition %+v, want upstream's NodeStatusUnknown", ready)
	}
	err = wait.PollUntilContextTimeout(t.Context(), 500*time.Millisecond, lifecycleTimeout, true, func(ctx context.Context) (bool, error) {
		if node, err = admin.CoreV1().Nodes().Get(ctx, a.name, metav1.GetOptions{}); err != nil {
			return false, nil
		}
		return hasTaint(node, corev1.TaintNodeUnreachable, corev1.TaintEffectNoExecute) && hasTaint(node, corev1.TaintNodeUnreachable, corev1.TaintEffectNoSchedule), nil
	})
	if err != nil {
		t.Fatalf("Node %s taints %+v, want node.kubernetes.io/unreachable NoExecute and NoSchedule", a.name, node.Spec.Taints)
	}
	for _, p := range onA {
		waitPodIn(t, admin, ns, p.Name, "evicted (deleting)", func(p *corev1.Pod) bool { return p == nil || p.DeletionTimestamp != nil })
	}
	if ds := podsOn(t, admin, ns, "app=ds", a.name); len(ds) != 1 || ds[0].DeletionTimestamp != nil {
		t.Errorf("DaemonSet pods on the unreachable node: %v, want its pod kept (it tolerates unreachable)", podNames(ds))
	}

	// b: its pods deleted by podgc, once its Node is gone.
	for _, p := range onB {
		waitPodIn(t, admin, ns, p.Name, "deleted with its Node", func(p *corev1.Pod) bool { return p == nil })
	}
	t.Logf("pods of deleted Node %s gone %s after its deletion", b.name, time.Since(killed).Round(time.Second))
	// The running agent stops the containers of its pods that podgc
	// deleted, and keeps running without a Node: kubelet registers only
	// when it starts (registerWithAPIServer, once).
	for _, p := range onLive {
		waitPodIn(t, admin, ns, p.Name, "deleted with its Node", func(p *corev1.Pod) bool { return p == nil })
		waitNoCgroups(t, p)
	}
	select {
	case <-live.proc.Done():
		t.Errorf("agent %s exited once its Node was deleted:\n%s", live.name, framework.Tail(live.proc.Output(), 40))
	default:
	}
	if n, err := admin.CoreV1().Nodes().Get(t.Context(), live.name, metav1.GetOptions{}); err == nil {
		t.Errorf("Node %s registered again by its running agent (UID %s, deleted %s), want it registered only at the agent's start, as kubelet", live.name, n.UID, liveUID)
	}
	waitPodsPerNode(t, admin, ns, "app=app", "6 app pods Running on the server node, the others' evicted", func(per map[string]int, total int) bool {
		return total == 6 && per[server] == 6
	})
	waitPodsPerNode(t, admin, ns, "app=gc", "the gc pod Running again on the server node", func(per map[string]int, _ int) bool {
		return per[server] == 1
	})

	// Started again: a is Ready, its evicted pods are deleted from the API
	// and leave no cgroup; b registers a new Node and leaves nothing of
	// its deleted pods either.
	restarted := time.Now()
	tok, hash := nodeToken(t, c)
	a.start(t, "--token", tok, "--discovery-token-ca-cert-hash", hash)
	b.start(t, "--token", tok, "--discovery-token-ca-cert-hash", hash)
	waitNodeReady(t, admin, a.name, restarted)
	newB := waitNodeReady(t, admin, b.name, restarted)
	if newB.UID == nodeUID(nodes, b.name) {
		t.Errorf("Node %s has the deleted Node's UID %s", b.name, newB.UID)
	}
	for _, p := range onA {
		waitPodIn(t, admin, ns, p.Name, "deleted by the restarted agent", func(p *corev1.Pod) bool { return p == nil })
	}
	for _, p := range append(onA, onB...) {
		waitNoCgroups(t, p)
	}
	// The agent that ran on without its Node registers it at its restart.
	if err := live.proc.Stop(15 * time.Second); err != nil {
		t.Errorf("stop agent %s: %v", live.name, err)
	}
	restarted = time.Now()
	live.start(t, "--token", tok, "--discovery-token-ca-cert-hash", hash)
	if n := waitNodeReady(t, admin, live.name, restarted); n.UID == liveUID {
		t.Errorf("Node %s has the deleted Node's UID %s", live.name, n.UID)
	}
	waitPodsPerNode(t, admin, ns, "app=ds", "one DaemonSet pod Running on each node again", func(per map[string]int, _ int) bool {
		return len(per) == 4 && per[server] == 1 && per[a.name] == 1 && per[b.name] == 1 && per[live.name] == 1
	})
	// The node lifecycle controller lifts the taints at its next pass.
	err = wait.PollUntilContextTimeout(t.Context(), 500*time.Millisecond, framework.PodTimeout, true, func(ctx context.Context) (bool, error) {
		if node, err = admin.CoreV1().Nodes().Get(ctx, a.name, metav1.GetOptions{}); err != nil {
			return false, nil
		}
		return !hasTaint(node, corev1.TaintNodeUnreachable, corev1.TaintEffectNoExecute) && !hasTaint(node, corev1.TaintNodeUnreachable, corev1.TaintEffectNoSchedule), nil
	})
	if err != nil {
		t.Errorf("Node %s Ready again but still tainted: %+v", a.name, node.Spec.Taints)
	}
}

// podTemplate is a busybox sleeper's template labelled app=name.
func podTemplate(name string) corev1.PodTemplateSpec {
	p := busyboxSleeper("", name)
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": name}},
		Spec:       p.Spec,
	}
}

// deployment is a Deployment of replicas busybox sleepers labelled
// app=name.
func deployment(ns, name string, replicas int32) *appsv1.Deployment {
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Template: podTemplate(name),
		},
	}
}

func scale(t *testing.T, c kubernetes.Interface, ns, name string, replicas int32) {
	t.Helper()
	s, err := c.AppsV1().Deployments(ns).GetScale(t.Context(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s.Spec.Replicas = replicas
	if _, err := c.AppsV1().Deployments(ns).UpdateScale(t.Context(), name, s, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// waitPodsPerNode waits until done holds for the number of Running and
// Ready pods (not being deleted) matching selector on each node, and
// their total, and returns the counts.
func waitPodsPerNode(t *testing.T, c kubernetes.Interface, ns, selector, what string, done func(per map[string]int, total int) bool) map[string]int {
	t.Helper()
	var per map[string]int
	var seen []string
	err := wait.PollUntilContextTimeout(t.Context(), 200*time.Millisecond, lifecycleTimeout, true, func(ctx context.Context) (bool, error) {
		pods, err := c.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
		if err != nil {
			return false, nil
		}
		per, seen = map[string]int{}, nil
		total := 0
		for _, p := range pods.Items {
			seen = append(seen, p.Name+"@"+p.Spec.NodeName+":"+framework.PodStatus(&p))
			if p.DeletionTimestamp == nil && framework.Ready(&p) {
				per[p.Spec.NodeName]++
				total++
			}
		}
		return done(per, total), nil
	})
	if err != nil {
		t.Fatalf("%s: Running pods per node %v; pods %v", what, per, seen)
	}
	return per
}

// podsOn lists the pods matching selector bound to node.
func podsOn(t *testing.T, c kubernetes.Interface, ns, selector, node string) []corev1.Pod {
	t.Helper()
	pods, err := c.CoreV1().Pods(ns).List(t.Context(), metav1.ListOptions{LabelSelector: selector, FieldSelector: "spec.nodeName=" + node})
	if err != nil {
		t.Fatal(err)
	}
	return pods.Items
}

func podNames(pods []corev1.Pod) []string {
	var names []string
	for _, p := range pods {
		s := p.Name
		if p.DeletionTimestamp != nil {
			s += " (deleting)"
		}
		names = append(names, s)
	}
	return names
}

// waitPodIn waits until done holds for pod name, nil once it is gone.
func waitPodIn(t *testing.T, c kubernetes.Interface, ns, name, what string, done func(*corev1.Pod) bool) {
	t.Helper()
	var pod *corev1.Pod
	err := wait.PollUntilContextTimeout(t.Context(), 200*time.Millisecond, lifecycleTimeout, true, func(ctx context.Context) (bool, error) {
		p, err := c.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			pod = nil
			return done(nil), nil
		}
		pod = p
		return done(p), nil
	})
	if err != nil {
		t.Fatalf("pod %s not %s: %+v", name, what, pod)
	}
}

// pdbAllows waits until PDB name has seen its pods and allows want
// disruptions.
func pdbAllows(t *testing.T, c kubernetes.Interface, ns, name string, want int32) {
	t.Helper()
	var pdb *policyv1.PodDisruptionBudget
	err := wait.PollUntilContextTimeout(t.Context(), 200*time.Millisecond, framework.PodTimeout, true, func(ctx context.Context) (bool, error) {
		p, err := c.PolicyV1().PodDisruptionBudgets(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		pdb = p
		return p.Status.ObservedGeneration == p.Generation && p.Status.CurrentHealthy == 6 && p.Status.DisruptionsAllowed == want, nil
	})
	if err != nil {
		t.Fatalf("PDB %s status %+v, want %d disruptions allowed of 6 healthy", name, pdb.Status, want)
	}
}

func nodeCondition(n *corev1.Node, typ corev1.NodeConditionType) *corev1.NodeCondition {
	for i := range n.Status.Conditions {
		if n.Status.Conditions[i].Type == typ {
			return &n.Status.Conditions[i]
		}
	}
	return nil
}

func hasTaint(n *corev1.Node, key string, effect corev1.TaintEffect) bool {
	for _, t := range n.Spec.Taints {
		if t.Key == key && t.Effect == effect {
			return true
		}
	}
	return false
}

// waitNoCgroups waits until deleted pod p has no cgroup left.
func waitNoCgroups(t *testing.T, p corev1.Pod) {
	t.Helper()
	var left []string
	err := wait.PollUntilContextTimeout(t.Context(), 200*time.Millisecond, framework.PodTimeout, true, func(context.Context) (bool, error) {
		left = podCgroups(string(p.UID))
		return len(left) == 0, nil
	})
	if err != nil {
		t.Errorf("cgroups left of deleted pod %s: %v", p.Name, left)
	}
}

func mustNodes(t *testing.T, c kubernetes.Interface) *corev1.NodeList {
	t.Helper()
	nodes, err := c.CoreV1().Nodes().List(t.Context(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return nodes
}

func nodeUID(nodes *corev1.NodeList, name string) types.UID {
	for _, n := range nodes.Items {
		if n.Name == name {
			return n.UID
		}
	}
	return ""
}
