package agent

import (
	"errors"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	nodev1 "k8s.io/api/node/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2/ktesting"
	"k8s.io/kubernetes/pkg/security/apparmor"

	"github.com/pocketkube/pocketkube/internal/node/runtime"
)

// TestSyncPodSysctls: kubelet's safe sysctls reach the runtime in dot
// form; any other sysctl, or a net.* one in a hostNetwork pod, makes the
// pod Failed with kubelet's SysctlForbidden status before anything of it
// is set up.
func TestSyncPodSysctls(t *testing.T) {
	for _, tc := range []struct {
		name        string
		sysctls     []v1.Sysctl
		hostNetwork bool
		want        map[string]string // what RunPod got; nil = rejected
		message     string            // status message when rejected
	}{
		{name: "none"},
		{name: "safe", sysctls: []v1.Sysctl{{Name: "kernel.shm_rmid_forced", Value: "1"}, {Name: "net.ipv4.ip_local_port_range", Value: "1024 65535"}},
			want: map[string]string{"kernel.shm_rmid_forced": "1", "net.ipv4.ip_local_port_range": "1024 65535"}},
		{name: "slashes", sysctls: []v1.Sysctl{{Name: "kernel/shm_rmid_forced", Value: "1"}},
			want: map[string]string{"kernel.shm_rmid_forced": "1"}},
		{name: "unsafe", sysctls: []v1.Sysctl{{Name: "kernel.shm_rmid_forced", Value: "1"}, {Name: "kernel.msgmax", Value: "10000000000"}},
			message: `Pod was rejected: forbidden sysctl: "kernel.msgmax" not allowlisted`},
		{name: "not namespaced", sysctls: []v1.Sysctl{{Name: "vm.swappiness", Value: "0"}},
			message: `Pod was rejected: forbidden sysctl: "vm.swappiness" not allowlisted`},
		{name: "net with host network", hostNetwork: true, sysctls: []v1.Sysctl{{Name: "net.ipv4.tcp_syncookies", Value: "0"}},
			message: `Pod was rejected: forbidden sysctl: "net.ipv4.tcp_syncookies" not allowed with host Net enabled`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, ctx := ktesting.NewTestContext(t)
			f := newFixture(t)
			pod := newPod("web", "c")
			pod.Spec.HostNetwork = tc.hostNetwork
			if tc.sysctls != nil {
				pod.Spec.SecurityContext = &v1.PodSecurityContext{Sysctls: tc.sysctls}
			}
			pod.Status.Conditions = []v1.PodCondition{{Type: v1.PodScheduled, Status: v1.ConditionTrue}}
			f.pods = append(f.pods, pod)
			f.newAgent()
			f.mustSync(ctx, "web")
			if tc.message == "" {
				f.expectCalls("RunPod web-uid", "CreateContainer web-uid/c attempt 0", "StartContainer web-uid/c")
				if diff := cmp.Diff(tc.want, f.runtime.pods["web-uid"].Sysctls); diff != "" {
					t.Errorf("sysctls (-want +got):\n%s", diff)
				}
				f.expectStatus(ctx, "web", v1.PodRunning, "c running restarts=0 ready")
				return
			}
			f.expectCalls()
			f.expectEvents("Warning SysctlForbidden " + tc.message[len("Pod was rejected: "):])
			s := f.expectStatus(ctx, "web", v1.PodFailed)
			if s.Reason != "SysctlForbidden" || s.Message != tc.message || s.QOSClass != v1.PodQOSBestEffort || s.StartTime == nil {
				t.Errorf("status reason %q message %q qosClass %q startTime %v; want SysctlForbidden, %q, BestEffort, set",
					s.Reason, s.Message, s.QOSClass, s.StartTime, tc.message)
			}
			if got := condition(s, v1.PodScheduled); got != "True" {
				t.Errorf("PodScheduled %q, want True kept", got)
			}
			// The rejected pod is terminal: later syncs set nothing up.
			f.mustSync(ctx, "web")
			f.expectCalls()
			if f.network.has("web-uid") {
				t.Error("rejected pod has a network sandbox")
			}
		})
	}
}

// TestSyncPodSandboxRuntime: a RuntimeClass whose handler is not runc, a
// missing RuntimeClass and hostUsers: false (no user namespaces here, so
// procMount: Unmasked, which needs it, never runs either) fail the sandbox
// with kubelet's FailedCreatePodSandBox and its message; nothing of the
// pod is set up and it stays Pending.
func TestSyncPodSandboxRuntime(t *testing.T) {
	for _, tc := range []struct {
		name         string
		runtimeClass string
		hostUsers    *bool
		procMount    v1.ProcMountType
		err          string // "" = runs
	}{
		{name: "default"},
		{name: "runc handler", runtimeClass: "runc"},
		{name: "procMount Default", procMount: v1.DefaultProcMount},
		{name: "hostUsers true", hostUsers: new(true)},
		{name: "unknown handler", runtimeClass: "kata",
			err: `failed to get sandbox runtime: no runtime for "kata-containers" is configured`},
		{name: "missing RuntimeClass", runtimeClass: "gone",
			err: `runtimeclasses.node.k8s.io "gone" not found`},
		{name: "hostUsers false", hostUsers: new(false),
			err: "can't set `spec.hostUsers: false`, runtime does not support user namespaces"},
		{name: "hostUsers false with procMount Unmasked", hostUsers: new(false), procMount: v1.UnmaskedProcMount,
			err: "can't set `spec.hostUsers: false`, runtime does not support user namespaces"},
		{name: "hostUsers false with a RuntimeClass", runtimeClass: "runc", hostUsers: new(false),
			err: "can't set `spec.hostUsers: false`, RuntimeClass handler \"runc\" does not support user namespaces"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, ctx := ktesting.NewTestContext(t)
			f := newFixture(t)
			f.objects = append(f.objects,
				&nodev1.RuntimeClass{ObjectMeta: metav1.ObjectMeta{Name: "runc"}, Handler: "runc"},
				&nodev1.RuntimeClass{ObjectMeta: metav1.ObjectMeta{Name: "kata"}, Handler: "kata-containers"})
			pod := newPod("web", "c")
			if tc.runtimeClass != "" {
				pod.Spec.RuntimeClassName = &tc.runtimeClass
			}
			pod.Spec.HostUsers = tc.hostUsers
			if tc.procMount != "" {
				pod.Spec.Containers[0].SecurityContext = &v1.SecurityContext{ProcMount: &tc.procMount}
			}
			f.pods = append(f.pods, pod)
			f.newAgent()
			_, err := f.sync(ctx, "web")
			if tc.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				f.expectCalls("RunPod web-uid", "CreateContainer web-uid/c attempt 0", "StartContainer web-uid/c")
				f.expectStatus(ctx, "web", v1.PodRunning, "c running restarts=0 ready")
				return
			}
			if err == nil || err.Error() != tc.err {
				t.Fatalf("sync error %v, want %q", err, tc.err)
			}
			f.expectCalls()
			f.expectEvents("Warning FailedCreatePodSandBox Failed to create pod sandbox: " + tc.err)
			f.expectStatus(ctx, "web", v1.PodPending, "c waiting ContainerCreating restarts=0")
			if f.network.has("web-uid") {
				t.Error("refused pod has a network sandbox")
			}
		})
	}
}

// TestSyncPodShareProcessNamespace: the pod's shareProcessNamespace
// reaches the runtime as PodConfig.SharePID.
func TestSyncPodShareProcessNamespace(t *testing.T) {
	for _, share := range []*bool{nil, new(false), new(true)} {
		_, ctx := ktesting.NewTestContext(t)
		f := newFixture(t)
		pod := newPod("web", "c")
		pod.Spec.ShareProcessNamespace = share
		f.pods = append(f.pods, pod)
		f.newAgent()
		f.mustSync(ctx, "web")
		want := share != nil && *share
		if got := f.runtime.pods["web-uid"].SharePID; got != want {
			t.Errorf("shareProcessNamespace %v: SharePID %v, want %v", share, got, want)
		}
	}
}

// TestContainerSeccomp: the runtime gets kubelet's choice of seccomp
// profile: the container's field, else the pod's, else RuntimeDefault
// with --seccomp-default and Unconfined without; a Localhost profile is
// a file under DataDir/seccomp.
func TestContainerSeccomp(t *testing.T) {
	local := func(name string) *v1.SeccompProfile {
		return &v1.SeccompProfile{Type: v1.SeccompProfileTypeLocalhost, LocalhostProfile: &name}
	}
	runtimeDefault := &v1.SeccompProfile{Type: v1.SeccompProfileTypeRuntimeDefault}
	unconfined := &v1.SeccompProfile{Type: v1.SeccompProfileTypeUnconfined}
	for _, tc := range []struct {
		name           string
		pod, container *v1.SeccompProfile
		seccompDefault bool
		want           runtime.Seccomp // Path relative to DataDir
	}{
		{name: "unset", want: runtime.Seccomp{Type: runtime.SeccompUnconfined}},
		{name: "unset with seccomp-default", seccompDefault: true, want: runtime.Seccomp{Type: runtime.SeccompRuntimeDefault}},
		{name: "pod runtime default", pod: runtimeDefault, want: runtime.Seccomp{Type: runtime.SeccompRuntimeDefault}},
		{name: "container unconfined wins over pod", pod: runtimeDefault, container: unconfined, want: runtime.Seccomp{Type: runtime.SeccompUnconfined}},
		{name: "container runtime default wins over pod", pod: unconfined, container: runtimeDefault, want: runtime.Seccomp{Type: runtime.SeccompRuntimeDefault}},
		{name: "pod unconfined with seccomp-default", pod: unconfined, seccompDefault: true, want: runtime.Seccomp{Type: runtime.SeccompUnconfined}},
		{name: "container localhost", pod: runtimeDefault, container: local("profiles/audit.json"),
			want: runtime.Seccomp{Type: runtime.SeccompLocalhost, Path: "seccomp/profiles/audit.json"}},
		{name: "pod localhost", pod: local("deny.json"), want: runtime.Seccomp{Type: runtime.SeccompLocalhost, Path: "seccomp/deny.json"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, ctx := ktesting.NewTestContext(t)
			f := newFixture(t)
			f.config = func(c *Config) { c.SeccompDefault = tc.seccompDefault }
			pod := newPod("web", "c")
			pod.Spec.SecurityContext = &v1.PodSecurityContext{SeccompProfile: tc.pod}
			pod.Spec.Containers[0].SecurityContext = &v1.SecurityContext{SeccompProfile: tc.container}
			f.pods = append(f.pods, pod)
			a := f.newAgent()
			f.mustSync(ctx, "web")
			f.expectCalls("RunPod web-uid", "CreateContainer web-uid/c attempt 0", "StartContainer web-uid/c")
			want := tc.want
			if want.Path != "" {
				want.Path = filepath.Join(a.cfg.DataDir, want.Path)
			}
			if diff := cmp.Diff(want, f.runtime.configs["c"].Seccomp); diff != "" {
				t.Errorf("seccomp (-want +got):\n%s", diff)
			}
		})
	}
}

// TestContainerSeccompLocalhostWithoutName: kubelet's own check, a
// CreateContainerConfigError (the API server refuses such pods first).
func TestContainerSeccompLocalhostWithoutName(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	f := newFixture(t)
	pod := newPod("web", "c")
	pod.Spec.Containers[0].SecurityContext = &v1.SecurityContext{SeccompProfile: &v1.SeccompProfile{Type: v1.SeccompProfileTypeLocalhost}}
	f.pods = append(f.pods, pod)
	f.newAgent()
	f.mustSync(ctx, "web")
	f.expectCalls("RunPod web-uid")
	f.expectStatus(ctx, "web", v1.PodPending,
		`c waiting CreateContainerConfigError "localhostProfile must be set if seccompProfile type is Localhost." restarts=0`)
}

// fakeAppArmor is kubelet's AppArmor validator on a host with
// (hostErr nil) or without AppArmor.
type fakeAppArmor struct{ hostErr error }

func (v fakeAppArmor) ValidateHost() error { return v.hostErr }

func (v fakeAppArmor) Validate(pod *v1.Pod) error {
	for _, c := range pod.Spec.Containers {
		if p := apparmor.GetProfile(pod, &c); p != nil && p.Type != v1.AppArmorProfileTypeUnconfined {
			return v.hostErr
		}
	}
	return nil
}

// TestSyncPodAppArmor: on a host without AppArmor, a pod asking for a
// profile other than Unconfined is Failed by kubelet's AppArmor admission
// before anything of it is set up; on a host with AppArmor, which
// pocketkube does not apply, its container fails with containerd's
// error when AppArmor is off in containerd. Unconfined runs on both.
func TestSyncPodAppArmor(t *testing.T) {
	noHost := errors.New("AppArmor is not enabled on the host")
	runtimeDefault := &v1.AppArmorProfile{Type: v1.AppArmorProfileTypeRuntimeDefault}
	for _, tc := range []struct {
		name       string
		hostErr    error
		pod        *v1.AppArmorProfile
		annotation string
		want       string // "" runs; "rejected" is admission's refusal; else the container's waiting status
	}{
		{name: "unset without AppArmor", hostErr: noHost},
		{name: "unconfined without AppArmor", hostErr: noHost, pod: &v1.AppArmorProfile{Type: v1.AppArmorProfileTypeUnconfined}},
		{name: "runtime default without AppArmor", hostErr: noHost, pod: runtimeDefault, want: "rejected"},
		{name: "annotation without AppArmor", hostErr: noHost, annotation: "runtime/default", want: "rejected"},
		{name: "runtime default with AppArmor", pod: runtimeDefault,
			want: `c waiting CreateContainerError "failed to generate apparmor spec opts: apparmor is not supported" restarts=0`},
		{name: "unconfined annotation with AppArmor", annotation: "unconfined"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, ctx := ktesting.NewTestContext(t)
			f := newFixture(t)
			f.config = func(c *Config) { c.AppArmor = fakeAppArmor{tc.hostErr} }
			pod := newPod("web", "c")
			pod.Status.Phase = v1.PodPending
			pod.Spec.SecurityContext = &v1.PodSecurityContext{AppArmorProfile: tc.pod}
			if tc.annotation != "" {
				pod.Annotations = map[string]string{v1.DeprecatedAppArmorBetaContainerAnnotationKeyPrefix + "c": tc.annotation}
			}
			f.pods = append(f.pods, pod)
			f.newAgent()
			f.mustSync(ctx, "web")
			switch tc.want {
			case "":
				f.expectCalls("RunPod web-uid", "CreateContainer web-uid/c attempt 0", "StartContainer web-uid/c")
				f.expectStatus(ctx, "web", v1.PodRunning, "c running restarts=0 ready")
			case "rejected":
				const message = "Cannot enforce AppArmor: AppArmor is not enabled on the host"
				f.expectCalls()
				f.expectEvents("Warning AppArmor " + message)
				s := f.expectStatus(ctx, "web", v1.PodFailed)
				if s.Reason != "AppArmor" || s.Message != "Pod was rejected: "+message {
					t.Errorf("status reason %q message %q; want AppArmor, %q", s.Reason, s.Message, "Pod was rejected: "+message)
				}
			default:
				f.expectCalls("RunPod web-uid")
				f.expectStatus(ctx, "web", v1.PodPending, tc.want)
			}
		})
	}
}

// Kubelet's predicate admission refuses a pod bound to the node without
// the scheduler (spec.nodeName) that does not fit: a host port another
// admitted pod holds, more CPU than the node has, a node selector the node
// does not match. The refused pod is Failed with kubelet's reason and
// message, and nothing of it is set up.
func TestSyncPodAdmissionPredicates(t *testing.T) {
	port := func(p *v1.Pod) {
		p.Spec.Containers[0].Ports = []v1.ContainerPort{{ContainerPort: 80, HostPort: 8080, Protocol: v1.ProtocolTCP}}
	}
	for _, tc := range []struct {
		name    string
		holder  func(*v1.Pod) // a pod admitted first; nil: none
		pod     func(*v1.Pod)
		reason  string // "": admitted
		message string
	}{
		{name: "host port free", pod: port},
		{name: "host port held", holder: port, pod: port, reason: "NodePorts",
			message: "Pod was rejected: Predicate NodePorts failed: node(s) didn't have free ports for the requested pod ports"},
		{name: "more CPU than allocatable", pod: func(p *v1.Pod) {
			p.Spec.Containers[0].Resources.Requests = v1.ResourceList{v1.ResourceCPU: resource.MustParse("2")}
		}, reason: "OutOfcpu", message: "Pod was rejected: Node didn't have enough resource: cpu, requested: 2000, used: 0, capacity: 1000"},
		{name: "CPU used by another pod", holder: func(p *v1.Pod) {
			p.Spec.Containers[0].Resources.Requests = v1.ResourceList{v1.ResourceCPU: resource.MustParse("600m")}
		}, pod: func(p *v1.Pod) {
			p.Spec.Containers[0].Resources.Requests = v1.ResourceList{v1.ResourceCPU: resource.MustParse("600m")}
		}, reason: "OutOfcpu", message: "Pod was rejected: Node didn't have enough resource: cpu, requested: 600, used: 600, capacity: 1000"},
		{name: "node selector", pod: func(p *v1.Pod) { p.Spec.NodeSelector = map[string]string{"disk": "ssd"} }, reason: "NodeAffinity",
			message: "Pod was rejected: Predicate NodeAffinity failed: node(s) didn't match Pod's node affinity/selector"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, ctx := ktesting.NewTestContext(t)
			f := newFixture(t)
			pod := newPod("web", "c")
			tc.pod(pod)
			f.pods = append(f.pods, pod)
			if tc.holder != nil {
				holder := newPod("holder", "c")
				tc.holder(holder)
				f.pods = append(f.pods, holder)
			}
			f.config = func(c *Config) { c.Machine = testMachine }
			f.newAgent()
			f.agent.node = &nodeStatus{last: &v1.Node{
				ObjectMeta: metav1.ObjectMeta{Name: "node1", Labels: map[string]string{"kubernetes.io/os": "linux"}},
				Status: v1.NodeStatus{Allocatable: v1.ResourceList{
					v1.ResourceCPU: resource.MustParse("1"), v1.ResourceMemory: resource.MustParse("1Gi"), v1.ResourcePods: resource.MustParse("110"),
				}},
			}}
			if tc.holder != nil {
				f.mustSync(ctx, "holder")
				f.expectStatus(ctx, "holder", v1.PodRunning, "c running restarts=0 ready")
				f.runtime.takeCalls()
			}
			f.mustSync(ctx, "web")
			if tc.reason == "" {
				f.expectCalls("RunPod web-uid", "CreateContainer web-uid/c attempt 0", "StartContainer web-uid/c")
				return
			}
			f.expectCalls()
			s := f.status(ctx, "web")
			if s.Phase != v1.PodFailed || s.Reason != tc.reason || s.Message != tc.message {
				t.Errorf("status %s %q %q, want Failed %q %q", s.Phase, s.Reason, s.Message, tc.reason, tc.message)
			}
		})
	}
}
