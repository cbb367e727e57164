package agent

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"
	podutil "k8s.io/kubernetes/pkg/api/v1/pod"
)

// A status is written against the pod as the API has it, not as the
// informer last saw it. Here the informer is behind the agent's own
// write (Ready True): it still shows the pod not ready. The container
// then exits 0 and the pod is Succeeded; a patch made from the informer's
// copy left Ready out (False there already) and the API kept Ready True
// (upstream's Container Runtime blackbox conformance spec waited for
// Ready False in vain). Also: a condition another writer added meanwhile
// (unseen by the informer) stays.
func TestWriteStatusAgainstTheAPI(t *testing.T) {
	ctx := t.Context()
	f := newFixture(t)
	pod := newPod("web", "c")
	pod.Spec.RestartPolicy = v1.RestartPolicyNever
	f.pods = []*v1.Pod{pod}
	f.newAgent()
	f.mustSync(ctx, "web")
	if s := f.status(ctx, "web"); s.Phase != v1.PodRunning || !podutil.IsPodReadyConditionTrue(s) {
		t.Fatalf("after the start: phase %s, ready %v; want Running and ready", s.Phase, podutil.IsPodReadyConditionTrue(s))
	}
	// The informer's copy from before the agent's write reached it.
	stale, err := f.client.CoreV1().Pods("ns").Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	stale = stale.DeepCopy()
	for i := range stale.Status.Conditions {
		if c := &stale.Status.Conditions[i]; c.Type == v1.PodReady || c.Type == v1.ContainersReady {
			c.Status, c.Reason = v1.ConditionFalse, "ContainersNotReady"
		}
	}
	if err := f.agent.informers.Core().V1().Pods().Informer().GetIndexer().Update(stale); err != nil {
		t.Fatal(err)
	}
	// Another writer's condition, which the informer has not seen.
	api, _ := f.client.CoreV1().Pods("ns").Get(ctx, "web", metav1.GetOptions{})
	api.Status.Conditions = append(api.Status.Conditions, v1.PodCondition{Type: "example.com/gate", Status: v1.ConditionTrue})
	if _, err := f.client.CoreV1().Pods("ns").UpdateStatus(ctx, api, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	f.runtime.exit("web-uid", "c", 0)
	if _, err := f.agent.syncPod(ctx, cache.ObjectName{Namespace: "ns", Name: "web"}); err != nil {
		t.Fatal(err)
	}
	s := f.status(ctx, "web")
	if s.Phase != v1.PodSucceeded || podutil.IsPodReadyConditionTrue(s) {
		t.Errorf("after the exit: phase %s, ready %v; want Succeeded and not ready", s.Phase, podutil.IsPodReadyConditionTrue(s))
	}
	if _, c := podutil.GetPodCondition(&s, "example.com/gate"); c == nil || c.Status != v1.ConditionTrue {
		t.Errorf("another writer's condition: %+v, want it kept", c)
	}
}

func TestMergeConditions(t *testing.T) {
	cond := func(typ v1.PodConditionType, status v1.ConditionStatus, reason string) v1.PodCondition {
		return v1.PodCondition{Type: typ, Status: status, Reason: reason}
	}
	current := []v1.PodCondition{ // the API's
		cond("example.com/gate", v1.ConditionTrue, "set-by-controller"),
		cond(v1.DisruptionTarget, v1.ConditionTrue, "EvictionByEvictionAPI"),
		cond(v1.PodReady, v1.ConditionTrue, ""),
	}
	seen := []v1.PodCondition{ // the informer's
		cond("example.com/gate", v1.ConditionFalse, ""),
		cond("example.com/removed", v1.ConditionTrue, ""),
		cond(v1.PodReady, v1.ConditionFalse, "ContainersNotReady"),
	}
	computed := []v1.PodCondition{ // the agent's, other writers' carried over from seen
		cond("example.com/gate", v1.ConditionFalse, ""),
		cond("example.com/removed", v1.ConditionTrue, ""),
		cond(v1.PodReady, v1.ConditionFalse, "PodCompleted"),
	}
	want := []v1.PodCondition{
		cond("example.com/gate", v1.ConditionTrue, "set-by-controller"),
		cond(v1.DisruptionTarget, v1.ConditionTrue, "EvictionByEvictionAPI"),
		cond(v1.PodReady, v1.ConditionFalse, "PodCompleted"),
	}
	if diff := cmp.Diff(want, mergeConditions(current, seen, computed)); diff != "" {
		t.Errorf("carried over (-want +got):\n%s", diff)
	}
	// A condition the agent sets itself (the node-pressure eviction's
	// DisruptionTarget) is the agent's, though it does not own the type.
	computed = append(computed, cond(v1.DisruptionTarget, v1.ConditionTrue, "TerminationByKubelet"))
	want = []v1.PodCondition{
		cond("example.com/gate", v1.ConditionTrue, "set-by-controller"),
		cond(v1.PodReady, v1.ConditionFalse, "PodCompleted"),
		cond(v1.DisruptionTarget, v1.ConditionTrue, "TerminationByKubelet"),
	}
	if diff := cmp.Diff(want, mergeConditions(current, seen, computed)); diff != "" {
		t.Errorf("set by the agent (-want +got):\n%s", diff)
	}
}

// syncRequests runs syncPod for the pod, counts the GETs and status
// PATCHes of pods it sent, and hands the informer the pod as the API then
// has it.
func syncRequests(ctx context.Context, f *fixture, name string) (gets, patches int) {
	f.t.Helper()
	count := func() (gets, patches int) {
		for _, a := range f.client.Actions() {
			switch {
			case a.GetResource().Resource != "pods":
			case a.GetVerb() == "get" && a.GetSubresource() == "":
				gets++
			case a.GetVerb() == "patch" && a.GetSubresource() == "status":
				patches++
			}
		}
		return gets, patches
	}
	g0, p0 := count()
	if _, err := f.agent.syncPod(ctx, cache.ObjectName{Namespace: "ns", Name: name}); err != nil {
		f.t.Fatalf("syncPod %s: %v", name, err)
	}
	g1, p1 := count()
	f.refresh(ctx, name)
	return g1 - g0, p1 - p0
}

// A sync whose status is the one the agent last wrote, with the
// informer's copy holding the status that write left, sends nothing: no
// GET (kubelet's status manager writes only a changed status). In a burst
// of pod starts that is each pod's second sync, brought by its own status
// write; on a running pod, the sync a label change brings. A changed
// status, or another writer's change to the status, is written against a
// GET as before.
func TestWriteStatusUnchangedSkipsTheGet(t *testing.T) {
	ctx := t.Context()
	f := newFixture(t)
	pod := newPod("web", "c")
	pod.Spec.RestartPolicy = v1.RestartPolicyNever
	f.pods = []*v1.Pod{pod}
	f.newAgent()
	for _, step := range []struct {
		name          string
		before        func()
		gets, patches int
	}{
		{name: "the start", gets: 1, patches: 1},
		{name: "unchanged", gets: 0, patches: 0},
		{name: "unchanged, another writer's label", gets: 0, patches: 0,
			before: func() { f.update(ctx, "web", func(p *v1.Pod) { p.Labels = map[string]string{"n": "1"} }) }},
		{name: "another writer's status", gets: 1, patches: 1,
			before: func() { f.update(ctx, "web", func(p *v1.Pod) { p.Status.Phase = v1.PodPending }) }},
		{name: "unchanged again", gets: 0, patches: 0},
		{name: "the container exited", gets: 1, patches: 1,
			before: func() { f.runtime.exit("web-uid", "c", 0) }},
	} {
		if step.before != nil {
			step.before()
		}
		if g, p := syncRequests(ctx, f, "web"); g != step.gets || p != step.patches {
			t.Errorf("%s: the sync sent %d GETs and %d status patches, want %d and %d", step.name, g, p, step.gets, step.patches)
		}
	}
	if s := f.status(ctx, "web"); s.Phase != v1.PodSucceeded {
		t.Errorf("phase %s after the exit, want Succeeded", s.Phase)
	}
}

// The informer's copy can hold the status a sync computes while the API
// holds a newer one the agent wrote itself (its event not seen yet: a
// container that was ready for a moment, then went back). Equal to the
// informer's copy is then not enough to skip the write: the copy is not
// the status the agent's last write left, so the sync reads the pod and
// writes the status back.
func TestWriteStatusOwnWriteNotSeenYet(t *testing.T) {
	ctx := t.Context()
	f := newFixture(t)
	f.pods = []*v1.Pod{newPod("web", "c")}
	f.newAgent()
	f.mustSync(ctx, "web")
	// The agent's own write that the informer has not delivered yet.
	api, err := f.client.CoreV1().Pods("ns").Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	api.Status.Phase = v1.PodPending
	if api, err = f.client.CoreV1().Pods("ns").UpdateStatus(ctx, api, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	f.agent.existingState("web-uid").statusSeen = statusJSON(&api.Status)
	if g, p := syncRequests(ctx, f, "web"); g != 1 || p != 1 {
		t.Errorf("the sync sent %d GETs and %d status patches, want 1 and 1", g, p)
	}
	if s := f.status(ctx, "web"); s.Phase != v1.PodRunning {
		t.Errorf("phase %s, want Running written back", s.Phase)
	}
}
