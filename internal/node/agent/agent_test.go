package agent

import (
	"context"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes/fake"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
)

var testMachine = Machine{NumCPU: 2, MemoryBytes: 8 << 30, StorageBytes: 100 << 30, HugePageSizes: []int64{2 << 20}, KernelVersion: "6.18.0", OSImage: "Debian GNU/Linux 12 (bookworm)"}

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
	} {
		t.Run(tc.name, func(t *testing.T) {
			pod := &v1.Pod{Spec: v1.PodSpec{RestartPolicy: tc.policy}}
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
	got := podConditions(pod, s, &podState{sandbox: true}, true, now)
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

func TestExpandSubPath(t *testing.T) {
	env := []v1.EnvVar{{Name: "POD_NAME", Value: "p1"}, {Name: "EMPTY", Value: ""}, {Name: "UP", Value: ".."}, {Name: "ABS", Value: "/tmp"}}
	for _, tc := range []struct{ expr, want, err string }{
		{"$(POD_NAME)", "p1", ""},
		{"logs/$(POD_NAME)", "logs/p1", ""},
		{"$(EMPTY)/$(MISSING)", "", "missing value for EMPTY, MISSING"},
		{"$(ABS)", "", "error SubPath '/tmp' must not be an absolute path"},
	} {
		t.Run(tc.expr, func(t *testing.T) {
			got, err := expandSubPath(tc.expr, env)
			if tc.err != "" {
				if err == nil || err.Error() != tc.err {
					t.Errorf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("= %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestMergeEnv(t *testing.T) {
	got := mergeEnv([]string{"PATH=/bin", "HOME=/root"}, []v1.EnvVar{{Name: "HOME", Value: "/home"}, {Name: "A", Value: "1"}})
	if want := []string{"PATH=/bin", "HOME=/home", "A=1"}; !slices.Equal(got, want) {
		t.Errorf("%v, want %v", got, want)
	}
	got = mergeEnv(nil, []v1.EnvVar{{Name: "A", Value: "1"}})
	if want := []string{defaultPathEnv, "A=1"}; !slices.Equal(got, want) {
		t.Errorf("%v, want %v", got, want)
	}
}

type fakeObjects struct {
	cms     map[string]*v1.ConfigMap
	secrets map[string]*v1.Secret
}

func (f fakeObjects) ConfigMap(ns, name string) (*v1.ConfigMap, error) {
	if cm, ok := f.cms[name]; ok {
		return cm, nil
	}
	return nil, apierrors.NewNotFound(schema.GroupResource{Resource: "configmaps"}, name)
}

func (f fakeObjects) Secret(ns, name string) (*v1.Secret, error) {
	if s, ok := f.secrets[name]; ok {
		return s, nil
	}
	return nil, apierrors.NewNotFound(schema.GroupResource{Resource: "secrets"}, name)
}

func TestMakeEnvironment(t *testing.T) {
	indexer := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{})
	indexer.Add(&v1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "kubernetes"}, Spec: v1.ServiceSpec{ClusterIP: "10.96.0.1",
		Ports: []v1.ServicePort{{Name: "https", Port: 443, Protocol: v1.ProtocolTCP, TargetPort: intstr.FromInt32(6443)}}}})
	indexer.Add(&v1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "my-svc"}, Spec: v1.ServiceSpec{ClusterIP: "10.96.0.20",
		Ports: []v1.ServicePort{{Port: 80, Protocol: v1.ProtocolTCP}}}})
	indexer.Add(&v1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "headless"}, Spec: v1.ServiceSpec{ClusterIP: "None"}})
	indexer.Add(&v1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "other", Name: "elsewhere"}, Spec: v1.ServiceSpec{ClusterIP: "10.96.0.30", Ports: []v1.ServicePort{{Port: 1}}}})
	objects := fakeObjects{
		cms:     map[string]*v1.ConfigMap{"cfg": {Data: map[string]string{"K1": "from-cm", "SHARED": "cm"}}},
		secrets: map[string]*v1.Secret{"sec": {Data: map[string][]byte{"PASSWORD": []byte("pw")}}},
	}
	pod := &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "p", UID: "uid-1", Labels: map[string]string{"tier": "web"}},
		Spec: v1.PodSpec{NodeName: "node1", ServiceAccountName: "default", EnableServiceLinks: ptr.To(true), Containers: []v1.Container{{
			Name: "c",
			Resources: v1.ResourceRequirements{
				Requests: v1.ResourceList{v1.ResourceCPU: resource.MustParse("15m")},
				Limits:   v1.ResourceList{v1.ResourceMemory: resource.MustParse("20Mi")},
			},
			EnvFrom: []v1.EnvFromSource{
				{ConfigMapRef: &v1.ConfigMapEnvSource{LocalObjectReference: v1.LocalObjectReference{Name: "cfg"}}},
				{Prefix: "S_", SecretRef: &v1.SecretEnvSource{LocalObjectReference: v1.LocalObjectReference{Name: "sec"}}},
				{ConfigMapRef: &v1.ConfigMapEnvSource{LocalObjectReference: v1.LocalObjectReference{Name: "absent"}, Optional: ptr.To(true)}},
			},
			Env: []v1.EnvVar{
				{Name: "SHARED", Value: "env"},
				{Name: "COMPOSED", Value: "$(K1)-$(SHARED)-$(LATER)-$$(K1)-$(MY_SVC_SERVICE_HOST)"},
				{Name: "LATER", Value: "late"},
				{Name: "POD_NAME", ValueFrom: &v1.EnvVarSource{FieldRef: &v1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
				{Name: "POD_IP", ValueFrom: &v1.EnvVarSource{FieldRef: &v1.ObjectFieldSelector{FieldPath: "status.podIP"}}},
				{Name: "TIER", ValueFrom: &v1.EnvVarSource{FieldRef: &v1.ObjectFieldSelector{FieldPath: "metadata.labels['tier']"}}},
				{Name: "CPU_M", ValueFrom: &v1.EnvVarSource{ResourceFieldRef: &v1.ResourceFieldSelector{Resource: "requests.cpu", Divisor: resource.MustParse("1m")}}},
				{Name: "MEM_KI", ValueFrom: &v1.EnvVarSource{ResourceFieldRef: &v1.ResourceFieldSelector{Resource: "limits.memory", Divisor: resource.MustParse("1Ki")}}},
				{Name: "CPU_LIMIT", ValueFrom: &v1.EnvVarSource{ResourceFieldRef: &v1.ResourceFieldSelector{Resource: "limits.cpu"}}},
				{Name: "OPT", ValueFrom: &v1.EnvVarSource{ConfigMapKeyRef: &v1.ConfigMapKeySelector{LocalObjectReference: v1.LocalObjectReference{Name: "cfg"}, Key: "nope", Optional: ptr.To(true)}}},
				{Name: "EMPTY"},
			},
		}}},
	}
	env, err := makeEnvironment(context.Background(), envInput{
		pod: pod, container: &pod.Spec.Containers[0], podIPs: []string{"10.244.0.5"}, hostIPs: []string{"192.0.2.2"},
		allocatable: v1.ResourceList{v1.ResourceCPU: resource.MustParse("2"), v1.ResourceMemory: resource.MustParse("8Gi")},
		services:    corelisters.NewServiceLister(indexer), objects: objects,
	})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, e := range env {
		got[e.Name] = e.Value
	}
	for k, want := range map[string]string{
		"K1": "from-cm", "S_PASSWORD": "pw", "SHARED": "env",
		"COMPOSED": "from-cm-env-$(LATER)-$(K1)-10.96.0.20",
		"POD_NAME": "p", "POD_IP": "10.244.0.5", "TIER": "web", "CPU_M": "15", "MEM_KI": "20480", "CPU_LIMIT": "2", "EMPTY": "",
		"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443", "KUBERNETES_SERVICE_PORT_HTTPS": "443",
		"KUBERNETES_PORT": "tcp://10.96.0.1:443", "KUBERNETES_PORT_443_TCP_ADDR": "10.96.0.1",
		"MY_SVC_SERVICE_HOST": "10.96.0.20", "MY_SVC_PORT_80_TCP": "tcp://10.96.0.20:80",
	} {
		if v, ok := got[k]; !ok || v != want {
			t.Errorf("%s = %q (set %v), want %q", k, v, ok, want)
		}
	}
	for _, k := range []string{"OPT", "HEADLESS_SERVICE_HOST", "ELSEWHERE_SERVICE_HOST"} {
		if _, ok := got[k]; ok {
			t.Errorf("%s set, want absent", k)
		}
	}
	// With service links off, only default/kubernetes remains.
	pod.Spec.EnableServiceLinks = ptr.To(false)
	env, _ = makeEnvironment(context.Background(), envInput{pod: pod, container: &pod.Spec.Containers[0], services: corelisters.NewServiceLister(indexer), objects: objects})
	var names []string
	for _, e := range env {
		names = append(names, e.Name)
	}
	all := strings.Join(names, " ")
	if strings.Contains(all, "MY_SVC") || !strings.Contains(all, "KUBERNETES_SERVICE_HOST") {
		t.Errorf("enableServiceLinks=false env: %s", all)
	}
	// A missing non-optional key is kubelet's error.
	pod.Spec.Containers[0].Env = []v1.EnvVar{{Name: "X", ValueFrom: &v1.EnvVarSource{SecretKeyRef: &v1.SecretKeySelector{LocalObjectReference: v1.LocalObjectReference{Name: "sec"}, Key: "nope"}}}}
	_, err = makeEnvironment(context.Background(), envInput{pod: pod, container: &pod.Spec.Containers[0], objects: objects})
	if err == nil || err.Error() != "couldn't find key nope in Secret app/sec" {
		t.Errorf("err = %v", err)
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
	w.remove(key)
	if len(w.watches) != 0 {
		t.Errorf("%d watches left", len(w.watches))
	}
}
