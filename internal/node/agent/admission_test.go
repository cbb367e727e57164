package agent

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	nodev1 "k8s.io/api/node/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2/ktesting"
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
