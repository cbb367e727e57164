package agent

import (
	"context"
	"errors"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes/fake"
	core "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/cache"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/pocketkube/pocketkube/internal/node/machine"
)

var testMachine = machine.Machine{NumCPU: 2, MemoryBytes: 8 << 30, StorageBytes: 100 << 30, HugePageSizes: []int64{2 << 20}, KernelVersion: "6.18.0", OSImage: "Debian GNU/Linux 12 (bookworm)"}

func testInfo() nodeInfo {
	return nodeInfo{name: "node1", hostname: "node1", ips: []net.IP{net.ParseIP("192.0.2.2")}, port: 10250,
		kubeletVersion: "v1.37.2", runtimeVersion: "runc://1.1.5", machine: testMachine}
}

func TestInitialNode(t *testing.T) {
	now := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
	n := initialNode(testInfo(), now)
	for k, v := range map[string]string{"kubernetes.io/hostname": "node1", "kubernetes.io/os": "linux", "beta.kubernetes.io/os": "linux"} {
		if n.Labels[k] != v {
			t.Errorf("label %s = %q, want %q", k, n.Labels[k], v)
		}
	}
	for _, tc := range []struct {
		name        v1.ResourceName
		capacity    string
		allocatable string
	}{
		{v1.ResourceCPU, "2", "2"},
		{v1.ResourceMemory, "8Gi", "8092Mi"},
		{v1.ResourcePods, "110", "110"},
		{v1.ResourceEphemeralStorage, "100Gi", "92160Mi"},
		{"hugepages-2Mi", "0", "0"},
	} {
		t.Run(string(tc.name), func(t *testing.T) {
			c, a := n.Status.Capacity[tc.name], n.Status.Allocatable[tc.name]
			if c.Cmp(resource.MustParse(tc.capacity)) != 0 || a.Cmp(resource.MustParse(tc.allocatable)) != 0 {
				t.Errorf("capacity %s allocatable %s, want %s %s", c.String(), a.String(), tc.capacity, tc.allocatable)
			}
		})
	}
	if got := n.Status.Addresses; len(got) != 2 || got[0] != (v1.NodeAddress{Type: v1.NodeInternalIP, Address: "192.0.2.2"}) || got[1].Type != v1.NodeHostName {
		t.Errorf("addresses %v", got)
	}
	var types []v1.NodeConditionType
	for _, c := range n.Status.Conditions {
		types = append(types, c.Type)
		if c.Type == v1.NodeReady && (c.Status != v1.ConditionTrue || c.Reason != "KubeletReady" || c.Message != "kubelet is posting ready status") {
			t.Errorf("Ready = %+v", c)
		}
	}
	if !slices.Equal(types, []v1.NodeConditionType{v1.NodeMemoryPressure, v1.NodeDiskPressure, v1.NodePIDPressure, v1.NodeReady}) {
		t.Errorf("conditions %v", types)
	}
	if n.Status.DaemonEndpoints.KubeletEndpoint.Port != 10250 || n.Status.NodeInfo.ContainerRuntimeVersion != "runc://1.1.5" {
		t.Errorf("status %+v", n.Status)
	}
}

func TestRegisterCreatesThenAdopts(t *testing.T) {
	ctx := context.Background()
	client := fake.NewSimpleClientset()
	clock := clocktesting.NewFakeClock(time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC))
	n := &nodeStatus{client: client, info: testInfo(), clock: clock}
	if err := n.register(ctx); err != nil {
		t.Fatal(err)
	}
	// A second agent (after a restart) finds the node and keeps its
	// transition times, but takes over labels it owns.
	node, _ := client.CoreV1().Nodes().Get(ctx, "node1", metav1.GetOptions{})
	node.Labels["kubernetes.io/hostname"] = "stale"
	node.Labels["team"] = "kept"
	client.CoreV1().Nodes().Update(ctx, node, metav1.UpdateOptions{})
	clock.Step(time.Minute)
	n2 := &nodeStatus{client: client, info: testInfo(), clock: clock}
	if err := n2.register(ctx); err != nil {
		t.Fatal(err)
	}
	node, _ = client.CoreV1().Nodes().Get(ctx, "node1", metav1.GetOptions{})
	if node.Labels["kubernetes.io/hostname"] != "node1" || node.Labels["team"] != "kept" {
		t.Errorf("labels %v", node.Labels)
	}
	for _, c := range node.Status.Conditions {
		if !c.LastHeartbeatTime.Time.Equal(clock.Now()) {
			t.Errorf("%s heartbeat %v, want %v", c.Type, c.LastHeartbeatTime, clock.Now())
		}
	}
	// Nothing changed: no write until the report frequency passes.
	before := len(client.Actions())
	clock.Step(nodeStatusUpdateFrequency)
	if err := n2.update(ctx, false); err != nil {
		t.Fatal(err)
	}
	if len(client.Actions()) != before {
		t.Errorf("unchanged status was written: %v", client.Actions()[before:])
	}
	clock.Step(nodeStatusReportFrequency)
	if err := n2.update(ctx, false); err != nil {
		t.Fatal(err)
	}
	if len(client.Actions()) == before {
		t.Error("status not reported after nodeStatusReportFrequency")
	}
}

func TestPodPhase(t *testing.T) {
	running := v1.ContainerStatus{State: v1.ContainerState{Running: &v1.ContainerStateRunning{}}}
	ok := v1.ContainerStatus{State: v1.ContainerState{Terminated: &v1.ContainerStateTerminated{ExitCode: 0}}}
	failed := v1.ContainerStatus{State: v1.ContainerState{Terminated: &v1.ContainerStateTerminated{ExitCode: 2}}}
	creating := v1.ContainerStatus{State: v1.ContainerState{Waiting: &v1.ContainerStateWaiting{Reason: "ContainerCreating"}}}
	backoff := v1.ContainerStatus{State: v1.ContainerState{Waiting: &v1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}},
		LastTerminationState: v1.ContainerState{Terminated: &v1.ContainerStateTerminated{ExitCode: 1}}}
	sidecar := running
	sidecar.Name, sidecar.Started = "sidecar", new(true)
	notStarted := sidecar
	notStarted.Started = new(false)
	sidecarBackoff, sidecarStopped := backoff, failed
	sidecarBackoff.Name, sidecarStopped.Name = "sidecar", "sidecar"
	for _, tc := range []struct {
		name       string
		policy     v1.RestartPolicy
		init       []v1.ContainerStatus
		initDone   bool
		containers []v1.ContainerStatus
		want       v1.PodPhase
	}{
		{"creating", v1.RestartPolicyAlways, nil, true, []v1.ContainerStatus{creating}, v1.PodPending},
		{"running", v1.RestartPolicyAlways, nil, true, []v1.ContainerStatus{running, creating}, v1.PodPending},
		{"all running", v1.RestartPolicyAlways, nil, true, []v1.ContainerStatus{running, running}, v1.PodRunning},
		{"one exited, one running", v1.RestartPolicyNever, nil, true, []v1.ContainerStatus{running, failed}, v1.PodRunning},
		{"never, failed", v1.RestartPolicyNever, nil, true, []v1.ContainerStatus{ok, failed}, v1.PodFailed},
		{"never, succeeded", v1.RestartPolicyNever, nil, true, []v1.ContainerStatus{ok, ok}, v1.PodSucceeded},
		{"onfailure, succeeded", v1.RestartPolicyOnFailure, nil, true, []v1.ContainerStatus{ok}, v1.PodSucceeded},
		{"onfailure, failed", v1.RestartPolicyOnFailure, nil, true, []v1.ContainerStatus{failed}, v1.PodRunning},
		{"always, back-off", v1.RestartPolicyAlways, nil, true, []v1.ContainerStatus{backoff}, v1.PodRunning},
		{"always, all exited", v1.RestartPolicyAlways, nil, true, []v1.ContainerStatus{ok}, v1.PodRunning},
		{"init running", v1.RestartPolicyAlways, []v1.ContainerStatus{running}, false, []v1.ContainerStatus{creating}, v1.PodPending},
		{"init failed, never", v1.RestartPolicyNever, []v1.ContainerStatus{failed}, false, []v1.ContainerStatus{creating}, v1.PodFailed},
		{"init failed, onfailure", v1.RestartPolicyOnFailure, []v1.ContainerStatus{failed}, false, []v1.ContainerStatus{creating}, v1.PodPending},
		// Init statuses named "sidecar" are restartable init containers.
		{"sidecar not started", v1.RestartPolicyAlways, []v1.ContainerStatus{notStarted}, false, []v1.ContainerStatus{creating}, v1.PodPending},
		{"sidecar started", v1.RestartPolicyAlways, []v1.ContainerStatus{sidecar}, false, []v1.ContainerStatus{running}, v1.PodRunning},
		{"sidecar restarting after init", v1.RestartPolicyNever, []v1.ContainerStatus{sidecarBackoff}, true, []v1.ContainerStatus{running}, v1.PodRunning},
		{"sidecar running, app done", v1.RestartPolicyNever, []v1.ContainerStatus{sidecar}, true, []v1.ContainerStatus{ok}, v1.PodRunning},
		{"sidecar stopped, app done", v1.RestartPolicyNever, []v1.ContainerStatus{sidecarStopped}, true, []v1.ContainerStatus{ok}, v1.PodSucceeded},
		{"sidecar stopped, app failed", v1.RestartPolicyNever, []v1.ContainerStatus{sidecarStopped}, true, []v1.ContainerStatus{failed}, v1.PodFailed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pod := &v1.Pod{Spec: v1.PodSpec{RestartPolicy: tc.policy}}
			for _, cs := range tc.init {
				c := v1.Container{Name: cs.Name}
				if cs.Name == "sidecar" {
					c.RestartPolicy = new(v1.ContainerRestartPolicyAlways)
				}
				pod.Spec.InitContainers = append(pod.Spec.InitContainers, c)
			}
			s := &v1.PodStatus{InitContainerStatuses: tc.init, ContainerStatuses: tc.containers}
			if got := podPhase(pod, s, tc.initDone); got != tc.want {
				t.Errorf("phase %s, want %s", got, tc.want)
			}
		})
	}
}

func TestPodConditions(t *testing.T) {
	now := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
	earlier := metav1.NewTime(now.Add(-time.Hour))
	pod := &v1.Pod{Status: v1.PodStatus{Conditions: []v1.PodCondition{
		{Type: v1.PodScheduled, Status: v1.ConditionTrue, LastTransitionTime: earlier},
		{Type: v1.PodInitialized, Status: v1.ConditionTrue, LastTransitionTime: earlier},
	}}}
	s := &v1.PodStatus{Phase: v1.PodPending, ContainerStatuses: []v1.ContainerStatus{{Name: "a"}, {Name: "b", Ready: true}, {Name: "c"}}}
	got := podConditions(pod, s, &podState{sandbox: true}, now)
	want := map[v1.PodConditionType]v1.PodCondition{
		v1.PodScheduled:              {Type: v1.PodScheduled, Status: v1.ConditionTrue, LastTransitionTime: earlier},
		v1.PodReadyToStartContainers: {Type: v1.PodReadyToStartContainers, Status: v1.ConditionTrue, LastTransitionTime: metav1.NewTime(now)},
		v1.PodInitialized:            {Type: v1.PodInitialized, Status: v1.ConditionTrue, LastTransitionTime: earlier},
		v1.PodReady:                  {Type: v1.PodReady, Status: v1.ConditionFalse, Reason: "ContainersNotReady", Message: "containers with unready status: [a c]", LastTransitionTime: metav1.NewTime(now)},
		v1.ContainersReady:           {Type: v1.ContainersReady, Status: v1.ConditionFalse, Reason: "ContainersNotReady", Message: "containers with unready status: [a c]", LastTransitionTime: metav1.NewTime(now)},
	}
	if len(got) != len(want) {
		t.Fatalf("conditions %v", got)
	}
	for _, c := range got {
		if w := want[c.Type]; !c.LastTransitionTime.Equal(&w.LastTransitionTime) || c.Status != w.Status || c.Reason != w.Reason || c.Message != w.Message {
			t.Errorf("%s = %+v, want %+v", c.Type, c, w)
		}
	}
}

func TestMergeEnv(t *testing.T) {
	// containerd's order: default PATH, HOSTNAME, image, container; later
	// values replace earlier ones in place.
	got := mergeEnv([]string{"PATH=/bin", "HOME=/root"}, "web", []v1.EnvVar{{Name: "HOME", Value: "/home"}, {Name: "A", Value: "1"}})
	if want := []string{"PATH=/bin", "HOSTNAME=web", "HOME=/home", "A=1"}; !slices.Equal(got, want) {
		t.Errorf("%v, want %v", got, want)
	}
	got = mergeEnv(nil, "web", []v1.EnvVar{{Name: "A", Value: "1"}, {Name: "HOSTNAME", Value: "mine"}})
	if want := []string{defaultPathEnv, "HOSTNAME=mine", "A=1"}; !slices.Equal(got, want) {
		t.Errorf("%v, want %v", got, want)
	}
}

func TestObjectWatchesFollowReferences(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	client := fake.NewSimpleClientset(&v1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "cm"}})
	synced := make(chan cache.ObjectName, 10)
	w := newObjectWatches(client, func(k cache.ObjectName) { synced <- k })
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "p"}, Spec: v1.PodSpec{
		Volumes:    []v1.Volume{{Name: "v", VolumeSource: v1.VolumeSource{ConfigMap: &v1.ConfigMapVolumeSource{LocalObjectReference: v1.LocalObjectReference{Name: "cm"}}}}},
		Containers: []v1.Container{{Name: "c", EnvFrom: []v1.EnvFromSource{{SecretRef: &v1.SecretEnvSource{LocalObjectReference: v1.LocalObjectReference{Name: "s"}}}}}},
	}}
	key := cache.MetaObjectToName(pod)
	refs := podRefs(pod)
	if len(refs) != 2 || refs[0] != (objectRef{"configmaps", "ns", "cm"}) || refs[1] != (objectRef{"secrets", "ns", "s"}) {
		t.Fatalf("refs %v", refs)
	}
	w.set(ctx, key, refs)
	w.set(ctx, key, refs) // a resync must not restart the watches
	if len(w.watches) != 2 {
		t.Fatalf("%d watches, want 2", len(w.watches))
	}
	// The ConfigMap's initial listing syncs the pod once.
	select {
	case got := <-synced:
		if got != key {
			t.Errorf("synced %v", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no sync on the initial listing")
	}
	cm, _ := client.CoreV1().ConfigMaps("ns").Get(ctx, "cm", metav1.GetOptions{})
	cm.ResourceVersion = "2"
	cm.Data = map[string]string{"k": "v"}
	client.CoreV1().ConfigMaps("ns").Update(ctx, cm, metav1.UpdateOptions{})
	select {
	case <-synced:
	case <-time.After(10 * time.Second):
		t.Fatal("no sync after the ConfigMap changed")
	}
	// The pod's sync then reads the object from the watch, not the API.
	if obj, exists, ok := w.cached("configmaps", "ns", "cm"); !ok || !exists || obj.(*v1.ConfigMap).Data["k"] != "v" {
		t.Errorf("cached configmap = %v, %v, %v; want the updated one", obj, exists, ok)
	}
	if err := wait.PollUntilContextTimeout(ctx, 10*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
		_, exists, ok := w.cached("secrets", "ns", "s")
		return ok && !exists, nil
	}); err != nil {
		t.Error("a synced watch of a missing secret does not say it is missing")
	}
	w.remove(key)
	if _, _, ok := w.cached("configmaps", "ns", "cm"); ok {
		t.Error("cached after the last pod stopped watching")
	}
	if len(w.watches) != 0 {
		t.Errorf("%d watches left", len(w.watches))
	}
}

// After a long API outage, the sync that failed all along is tried again
// within kubelet's 10 s, not after a back-off as long as the outage.
func TestPodRateLimiterCapsTheRetryDelay(t *testing.T) {
	rl := podRateLimiter()
	key := cache.ObjectName{Namespace: "ns", Name: "pod"}
	var longest, total time.Duration
	for total < 5*time.Minute {
		d := rl.When(key)
		longest, total = max(longest, d), total+d
	}
	if longest != maxSyncRetryDelay {
		t.Errorf("longest retry delay over a 5 min outage %s, want %s", longest, maxSyncRetryDelay)
	}
	rl.Forget(key)
	if d := rl.When(key); d > 10*time.Millisecond {
		t.Errorf("first retry after Forget %s, want the 5 ms start", d)
	}
}

// A step of Run's start that fails because Ctrl-C killed what it ran
// (`runc --version: signal: killed`) is a stop, not a failure; the same
// error without a stop is one.
func TestRunStoppedWhileStarting(t *testing.T) {
	for _, stop := range []bool{true, false} {
		f := newFixture(t)
		f.runtime.versionErr = errors.New("run runc --version: signal: killed")
		a := f.newAgent()
		ctx, cancel := context.WithCancel(context.Background())
		if stop {
			cancel()
		}
		err := a.Run(ctx)
		cancel()
		if stop && err != nil {
			t.Errorf("stopped while starting: Run = %v, want nil", err)
		}
		if !stop && (err == nil || !strings.Contains(err.Error(), "runtime version: run runc --version: signal: killed")) {
			t.Errorf("not stopped: Run = %v, want the runtime version error", err)
		}
	}
}

// Ctrl-C before the agent took over the pods an earlier run left (kill -9,
// then `up`, then Ctrl-C while the node registers or waits for its pod
// CIDR) stops them too: no container outlives the stop.
func TestRunStoppedBeforeTakeOverStopsLeftovers(t *testing.T) {
	for _, step := range []struct {
		name string
		verb string // the request Run makes at that step
	}{{"registering", "create"}, {"waiting for the pod CIDR", "get"}} {
		t.Run(step.name, func(t *testing.T) {
			f := newFixture(t)
			f.runtime.addRunning("left-1", "main")
			f.runtime.addRunning("left-2", "main")
			a := f.newAgent()
			if step.verb == "create" {
				f.client.PrependReactor("create", "nodes", func(core.Action) (bool, k8sruntime.Object, error) {
					return true, nil, errors.New("connection refused")
				})
			} // else: the node registers and never gets a pod CIDR
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- a.Run(ctx) }()
			if err := wait.PollUntilContextTimeout(context.Background(), 10*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
				return slices.ContainsFunc(f.client.Actions(), func(act core.Action) bool {
					return act.GetVerb() == step.verb && act.GetResource().Resource == "nodes"
				}), nil
			}); err != nil {
				t.Fatalf("Run never got to %s", step.name)
			}
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run = %v, want nil", err)
				}
			case <-time.After(30 * time.Second):
				t.Fatal("Run did not return after the stop")
			}
			if pods, _ := f.runtime.ListPods(context.Background()); len(pods) != 0 {
				t.Errorf("pods left running after the stop: %v", pods)
			}
			calls := strings.Join(f.runtime.takeCalls(), "\n")
			for _, want := range []string{"RemovePod left-1", "RemovePod left-2"} {
				if !strings.Contains(calls, want) {
					t.Errorf("no %q in the runtime's calls:\n%s", want, calls)
				}
			}
		})
	}
}
