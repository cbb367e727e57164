package agent

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2/ktesting"
)

// resources builds requirements from "cpu=100m,memory=64Mi"-style lists.
func resources(requests, limits string) v1.ResourceRequirements {
	parse := func(s string) v1.ResourceList {
		if s == "" {
			return nil
		}
		l := v1.ResourceList{}
		for _, kv := range strings.Split(s, ",") {
			k, v, _ := strings.Cut(kv, "=")
			l[v1.ResourceName(k)] = resource.MustParse(v)
		}
		return l
	}
	return v1.ResourceRequirements{Requests: parse(requests), Limits: parse(limits)}
}

// resizePod makes pod "web" with container c and res, running.
func newResizeFixture(t *testing.T, ctx context.Context, res v1.ResourceRequirements, policy ...v1.ContainerResizePolicy) *fixture {
	f := newFixture(t)
	pod := newPod("web", "c")
	pod.Generation = 1
	pod.Spec.Containers[0].Resources = res
	pod.Spec.Containers[0].ResizePolicy = policy
	f.pods = append(f.pods, pod)
	// A container with resources gets an oom_score_adj from the
	// node's memory.
	f.config = func(c *Config) { c.Machine = testMachine }
	f.newAgent()
	f.mustSync(ctx, "web")
	f.runtime.takeCalls()
	f.expectEvents(
		`Normal Pulled Container image "busybox" already present on machine`,
		"Normal Created Container created",
		"Normal Started Container started",
	)
	return f
}

// resize changes c's resources as the resize subresource does: a new
// generation.
func (f *fixture) resize(ctx context.Context, res v1.ResourceRequirements) {
	f.update(ctx, "web", func(p *v1.Pod) {
		p.Spec.Containers[0].Resources = res
		p.Generation++
	})
}

func equalResources(t *testing.T, what string, got *v1.ResourceRequirements, want v1.ResourceRequirements) {
	t.Helper()
	if got == nil {
		t.Errorf("%s: no resources, want %v", what, want)
		return
	}
	if diff := cmp.Diff(want, *got); diff != "" {
		t.Errorf("%s (-want +got):\n%s", what, diff)
	}
}

func TestResizeInPlace(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	before := resources("cpu=100m,memory=64Mi", "cpu=200m,memory=128Mi")
	f := newResizeFixture(t, ctx, before)
	s := f.status(ctx, "web")
	equalResources(t, "status resources before", s.ContainerStatuses[0].Resources, before)
	if diff := cmp.Diff(before.Requests, s.ContainerStatuses[0].AllocatedResources); diff != "" {
		t.Errorf("allocatedResources before (-want +got):\n%s", diff)
	}

	after := resources("cpu=150m,memory=96Mi", "cpu=300m,memory=100Mi")
	f.resize(ctx, after)
	f.mustSync(ctx, "web")
	// Memory first (the pod's limit shrinks: after the container), then
	// CPU (the pod's quota and shares grow: before the container).
	f.expectCalls(
		"UpdateContainerResources web-uid/c {CPUShares:0 CPUQuota:0 CPUPeriod:0 MemoryLimit:104857600 PidsLimit:0}",
		"UpdatePodResources web-uid {CPUShares:0 CPUQuota:0 CPUPeriod:0 MemoryLimit:104857600 PidsLimit:0}",
		"UpdatePodResources web-uid {CPUShares:0 CPUQuota:30000 CPUPeriod:100000 MemoryLimit:0 PidsLimit:0}",
		"UpdatePodResources web-uid {CPUShares:153 CPUQuota:0 CPUPeriod:0 MemoryLimit:0 PidsLimit:0}",
		"UpdateContainerResources web-uid/c {CPUShares:153 CPUQuota:30000 CPUPeriod:100000 MemoryLimit:0 PidsLimit:0}",
	)
	f.expectEvents(
		`Normal ResizeStarted Pod resize started: {"containers":[{"name":"c","resources":{"limits":{"cpu":"300m","memory":"100Mi"},"requests":{"cpu":"150m","memory":"96Mi"}}}],"generation":2}`,
		`Normal ResizeCompleted Pod resize completed: {"containers":[{"name":"c","resources":{"limits":{"cpu":"300m","memory":"100Mi"},"requests":{"cpu":"150m","memory":"96Mi"}}}],"generation":2}`,
	)
	s = f.expectStatus(ctx, "web", v1.PodRunning, "c running restarts=0 ready")
	equalResources(t, "status resources after", s.ContainerStatuses[0].Resources, after)
	if diff := cmp.Diff(after.Requests, s.ContainerStatuses[0].AllocatedResources); diff != "" {
		t.Errorf("allocatedResources after (-want +got):\n%s", diff)
	}
	for _, typ := range []v1.PodConditionType{v1.PodResizePending, v1.PodResizeInProgress} {
		if got := condition(s, typ); got != "" {
			t.Errorf("condition %s = %q, want none", typ, got)
		}
	}
	if s.ObservedGeneration != 2 {
		t.Errorf("observedGeneration %d, want 2", s.ObservedGeneration)
	}

	// A sync with nothing to change changes nothing.
	f.mustSync(ctx, "web")
	f.expectCalls()
	f.expectEvents()
}

func TestResizeRestartContainerPolicy(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	f := newResizeFixture(t, ctx, resources("cpu=100m,memory=64Mi", "cpu=100m,memory=64Mi"),
		v1.ContainerResizePolicy{ResourceName: v1.ResourceCPU, RestartPolicy: v1.NotRequired},
		v1.ContainerResizePolicy{ResourceName: v1.ResourceMemory, RestartPolicy: v1.RestartContainer})

	// CPU only: in place, whatever the memory policy says.
	f.resize(ctx, resources("cpu=200m,memory=64Mi", "cpu=200m,memory=64Mi"))
	f.mustSync(ctx, "web")
	f.expectCalls(
		"UpdatePodResources web-uid {CPUShares:0 CPUQuota:20000 CPUPeriod:100000 MemoryLimit:0 PidsLimit:0}",
		"UpdatePodResources web-uid {CPUShares:204 CPUQuota:0 CPUPeriod:0 MemoryLimit:0 PidsLimit:0}",
		"UpdateContainerResources web-uid/c {CPUShares:204 CPUQuota:20000 CPUPeriod:100000 MemoryLimit:0 PidsLimit:0}",
	)
	f.expectStatus(ctx, "web", v1.PodRunning, "c running restarts=0 ready")
	f.expectEvents(
		`Normal ResizeStarted Pod resize started: {"containers":[{"name":"c","resources":{"limits":{"cpu":"200m","memory":"64Mi"},"requests":{"cpu":"200m","memory":"64Mi"}}}],"generation":2}`,
		`Normal ResizeCompleted Pod resize completed: {"containers":[{"name":"c","resources":{"limits":{"cpu":"200m","memory":"64Mi"},"requests":{"cpu":"200m","memory":"64Mi"}}}],"generation":2}`,
	)

	// Memory: the container restarts with its new limit.
	after := resources("cpu=200m,memory=128Mi", "cpu=200m,memory=128Mi")
	f.resize(ctx, after)
	f.mustSync(ctx, "web")
	f.expectCalls(
		"StopContainer web-uid/c grace 30s",
		"UpdatePodResources web-uid {CPUShares:0 CPUQuota:0 CPUPeriod:0 MemoryLimit:134217728 PidsLimit:0}",
		"CreateContainer web-uid/c attempt 1",
		"StartContainer web-uid/c",
	)
	if got := f.runtime.configs["c"].Resources.MemoryLimit; got != 128<<20 {
		t.Errorf("restarted container's memory limit %d, want %d", got, 128<<20)
	}
	f.mustSync(ctx, "web")
	s := f.expectStatus(ctx, "web", v1.PodRunning, "c running restarts=1 last=137 ready")
	equalResources(t, "status resources", s.ContainerStatuses[0].Resources, after)
	if got := condition(s, v1.PodResizeInProgress); got != "" {
		t.Errorf("PodResizeInProgress = %q, want none", got)
	}
}

func TestResizeDeferred(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	f := newResizeFixture(t, ctx, resources("cpu=500m", "cpu=500m"))
	f.agent.node = &nodeStatus{}
	f.agent.node.last = &v1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "node1"},
		Status: v1.NodeStatus{Allocatable: v1.ResourceList{
			v1.ResourceCPU: resource.MustParse("1"), v1.ResourceMemory: resource.MustParse("1Gi"), v1.ResourcePods: resource.MustParse("110"),
		}},
	}
	f.resize(ctx, resources("cpu=1500m", "cpu=1500m"))
	if requeue := f.mustSync(ctx, "web"); requeue != resizeRetry {
		t.Errorf("requeue after %s, want %s", requeue, resizeRetry)
	}
	f.expectCalls()
	s := f.status(ctx, "web")
	want := "True Deferred Node didn't have enough resource: cpu, requested: 1500, used: 0, capacity: 1000"
	if got := condition(s, v1.PodResizePending); got != want {
		t.Errorf("PodResizePending = %q, want %q", got, want)
	}
	// The containers keep what the node allocated.
	equalResources(t, "status resources", s.ContainerStatuses[0].Resources, resources("cpu=500m", "cpu=500m"))
	if s.ObservedGeneration != 2 {
		t.Errorf("observedGeneration %d, want 2", s.ObservedGeneration)
	}
	f.expectEvents(`Warning ResizeDeferred Pod resize Deferred: {"containers":[{"name":"c","resources":{"limits":{"cpu":"1500m"},"requests":{"cpu":"1500m"}}}],"generation":2,"error":"Node didn't have enough resource: cpu, requested: 1500, used: 0, capacity: 1000"}`)

	// Reverting the resize clears the condition.
	f.resize(ctx, resources("cpu=500m", "cpu=500m"))
	f.mustSync(ctx, "web")
	if got := condition(f.status(ctx, "web"), v1.PodResizePending); got != "" {
		t.Errorf("PodResizePending = %q after the revert, want none", got)
	}
	f.expectCalls()
}

func TestResizeMemoryBelowUsage(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	f := newResizeFixture(t, ctx, resources("memory=64Mi", "memory=64Mi"))
	f.runtime.memoryUsage["c"] = 40 << 20
	f.resize(ctx, resources("memory=32Mi", "memory=32Mi"))
	f.mustSync(ctx, "web")
	f.expectCalls()
	s := f.status(ctx, "web")
	// The pod's limit goes down too; kubelet quotes the pod's usage for
	// both.
	want := "True Error cannot decrease memory limits: [attempting to set pod memory limit (33554432) below current usage (41943040), " +
		"attempting to set container \"c\" memory limit (33554432) below current usage (41943040)]"
	if got := condition(s, v1.PodResizeInProgress); got != want {
		t.Errorf("PodResizeInProgress = %q, want %q", got, want)
	}
	equalResources(t, "status resources", s.ContainerStatuses[0].Resources, resources("memory=64Mi", "memory=64Mi"))

	// A sync before the retry time (the status write's own) leaves it.
	f.runtime.memoryUsage["c"] = 10 << 20
	if requeue := f.mustSync(ctx, "web"); requeue != resizeRetry {
		t.Errorf("requeue after %s, want %s", requeue, resizeRetry)
	}
	f.expectCalls()
	// Once the container uses less, the resize goes through.
	f.clock.Step(resizeRetry)
	f.mustSync(ctx, "web")
	f.expectCalls(
		"UpdateContainerResources web-uid/c {CPUShares:0 CPUQuota:0 CPUPeriod:0 MemoryLimit:33554432 PidsLimit:0}",
		"UpdatePodResources web-uid {CPUShares:0 CPUQuota:0 CPUPeriod:0 MemoryLimit:33554432 PidsLimit:0}",
	)
	s = f.status(ctx, "web")
	if got := condition(s, v1.PodResizeInProgress); got != "" {
		t.Errorf("PodResizeInProgress = %q, want none", got)
	}
	equalResources(t, "status resources", s.ContainerStatuses[0].Resources, resources("memory=32Mi", "memory=32Mi"))
}

// TestStatusResourcesEquivalents pins kubelet's rule for values the
// cgroups cannot tell apart: 1m and 2m of request are both 2 shares, 5m
// and 10m of limit both 1000 µs of quota; the status keeps the allocation.
func TestStatusResourcesEquivalents(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	f := newResizeFixture(t, ctx, resources("cpu=2m", "cpu=10m"))
	f.resize(ctx, resources("cpu=1m", "cpu=5m"))
	f.mustSync(ctx, "web")
	s := f.status(ctx, "web")
	equalResources(t, "status resources", s.ContainerStatuses[0].Resources, resources("cpu=1m", "cpu=5m"))
	if got := condition(s, v1.PodResizeInProgress); got != "" {
		t.Errorf("PodResizeInProgress = %q, want none", got)
	}
}

// TestResizeDeferredAfterRestart: the allocation is on disk, so an agent
// that restarts keeps a deferred resize deferred instead of applying it.
func TestResizeDeferredAfterRestart(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	f := newResizeFixture(t, ctx, resources("cpu=500m", "cpu=500m"))
	node := &v1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "node1"},
		Status: v1.NodeStatus{Allocatable: v1.ResourceList{
			v1.ResourceCPU: resource.MustParse("1"), v1.ResourceMemory: resource.MustParse("1Gi"), v1.ResourcePods: resource.MustParse("110"),
		}},
	}
	f.agent.node = &nodeStatus{last: node}
	f.resize(ctx, resources("cpu=1500m", "cpu=1500m"))
	f.mustSync(ctx, "web")
	f.recorder.Events = make(chan string, 1000)

	pod, err := f.client.CoreV1().Pods("ns").Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dataDir := f.agent.cfg.DataDir
	f.pods = []*v1.Pod{pod}
	f.config = func(c *Config) { c.Machine, c.DataDir = testMachine, dataDir }
	f.newAgent()
	f.agent.node = &nodeStatus{last: node}
	f.mustSync(ctx, "web")
	// The sandbox is set up again, with what the node allocated.
	f.expectCalls("RunPod web-uid")
	if got := f.runtime.pods["web-uid"].Resources.CPUQuota; got != 50000 {
		t.Errorf("pod cgroup quota %d after a restart, want the allocated 50000", got)
	}
	s := f.status(ctx, "web")
	if got := condition(s, v1.PodResizePending); !strings.HasPrefix(got, "True Deferred Node didn't have enough resource: cpu") {
		t.Errorf("PodResizePending = %q after a restart, want Deferred", got)
	}
	equalResources(t, "status resources", s.ContainerStatuses[0].Resources, resources("cpu=500m", "cpu=500m"))
}
