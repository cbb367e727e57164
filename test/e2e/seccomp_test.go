//go:build e2e

package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/pocketkube/pocketkube/test/framework"
)

// Seccomp and AppArmor (issue 13, item 3): seccompProfile is applied as
// kubelet and containerd apply it, checked from inside the container;
// AppArmor, which these hosts do not have, gets the pod refused as
// kubelet's admission refuses it.

// seccompProbe prints the filter mode of the container's PID 1, then
// whether it may unshare a user namespace (no capability needed, denied
// by containerd's default profile without CAP_SYS_ADMIN) and mkdir.
const seccompProbe = "grep '^Seccomp:' /proc/1/status; " +
	"unshare -U true 2>/dev/null && echo unshare allowed || echo unshare denied; " +
	"mkdir /tmp/d 2>/dev/null && echo mkdir allowed || echo mkdir denied"

// seccompPod is one busybox container running seccompProbe, with pod
// and container seccompProfile (nil: unset).
func seccompPod(ns, name string, pod, container *corev1.SeccompProfile) *corev1.Pod {
	p := sysctlPod(ns, name, nil, "sh", "-c", seccompProbe)
	p.Spec.SecurityContext = &corev1.PodSecurityContext{SeccompProfile: pod}
	p.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{SeccompProfile: container}
	return p
}

var (
	runtimeDefault = &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}
	unconfined     = &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeUnconfined}
)

func localhost(name string) *corev1.SeccompProfile {
	return &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeLocalhost, LocalhostProfile: &name}
}

// TestSeccompRuntimeDefaultBlocksSyscalls ports upstream's seccomp specs
// (test/e2e/node/security_context.go, "should support seccomp ...") and
// goes further: RuntimeDefault puts PID 1 in filter mode and its profile
// (containerd's) denies unshare, the container's field wins over the
// pod's, an unset profile is kubelet's default (Unconfined), and a
// privileged container runs unfiltered whatever it asked, as containerd
// runs it. Before, every profile was ignored and each pod ran unconfined.
func TestSeccompRuntimeDefaultBlocksSyscalls(t *testing.T) {
	t.Parallel()
	c := shared.Client(t)
	shared.ImportBusybox(t, "busybox")
	ns := framework.NewNamespace(t, c, "seccomp-")
	const (
		filtered   = "Seccomp:\t2\nunshare denied\nmkdir allowed\n"
		unfiltered = "Seccomp:\t0\nunshare allowed\nmkdir allowed\n"
	)
	for _, tc := range []struct {
		name, pod  string
		podProfile *corev1.SeccompProfile
		profile    *corev1.SeccompProfile
		privileged bool
		want       string
	}{
		{"should support seccomp runtime/default", "runtime-default", nil, runtimeDefault, false, filtered},
		{"should support seccomp runtime/default on the pod", "runtime-default-pod", runtimeDefault, nil, false, filtered},
		{"should support seccomp unconfined on the container", "unconfined-container", runtimeDefault, unconfined, false, unfiltered},
		{"should support seccomp unconfined on the pod", "unconfined-pod", unconfined, nil, false, unfiltered},
		{"container runtime/default wins over an unconfined pod", "runtime-default-container", unconfined, runtimeDefault, false, filtered},
		{"should support seccomp default which is unconfined", "unset", nil, nil, false, unfiltered},
		{"privileged runs unconfined as with containerd", "privileged", runtimeDefault, nil, true, unfiltered},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			pod := seccompPod(ns, tc.pod, tc.podProfile, tc.profile)
			if tc.privileged {
				pod.Spec.Containers[0].SecurityContext.Privileged = new(true)
			}
			if log := runToSuccess(t, c, pod); log != tc.want {
				t.Errorf("log %q, want %q", log, tc.want)
			}
		})
	}
}

// waitCreateError waits for the pod's first container to wait with
// reason and returns its message.
func waitCreateError(t *testing.T, c kubernetes.Interface, pod *corev1.Pod, reason string) string {
	t.Helper()
	framework.CreatePod(t, c, pod)
	var msg string
	p, err := framework.WaitPodIn(t.Context(), c, pod.Namespace, pod.Name, framework.PodTimeout, func(p *corev1.Pod) (bool, error) {
		for _, cs := range p.Status.ContainerStatuses {
			if w := cs.State.Waiting; w != nil && w.Reason == reason {
				msg = w.Message
				return true, nil
			}
		}
		return p.Status.Phase != corev1.PodPending, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if msg == "" {
		t.Fatalf("pod %s: %s; want its container waiting in %s", pod.Name, framework.PodStatus(p), reason)
	}
	return msg
}

// TestSeccompLocalhostProfile: a Localhost profile is read from the
// node's seccomp root, <data-dir>/node/seccomp (kubelet's
// <root-dir>/seccomp), and applied; a profile that is missing or not JSON
// leaves the container waiting in CreateContainerError with containerd's
// message (less the container ID), and it never runs.
func TestSeccompLocalhostProfile(t *testing.T) {
	t.Parallel()
	c := shared.Client(t)
	shared.ImportBusybox(t, "busybox")
	ns := framework.NewNamespace(t, c, "seccomp-local-")
	dir := filepath.Join(shared.DataDir, "node", "seccomp", ns)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	for name, profile := range map[string]string{
		"no-mkdir.json": `{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO","errnoRet":1}]}`,
		"bad.json":      "not json",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(profile), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("applied", func(t *testing.T) {
		t.Parallel()
		pod := seccompPod(ns, "local", localhost(ns+"/no-mkdir.json"), nil)
		if log := runToSuccess(t, c, pod); log != "Seccomp:\t2\nunshare allowed\nmkdir denied\n" {
			t.Errorf("log %q, want filter mode, unshare allowed and mkdir denied", log)
		}
	})
	for _, tc := range []struct{ name, file, want string }{
		{"missing", "missing.json", `cannot load seccomp profile "PATH": open PATH: no such file or directory`},
		{"not JSON", "bad.json", `decoding seccomp profile failed "PATH": invalid character 'o' in literal null (expecting 'u')`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			pod := seccompPod(ns, strings.ReplaceAll(strings.ToLower(tc.name), " ", "-"), nil, localhost(ns+"/"+tc.file))
			msg := waitCreateError(t, c, pod, "CreateContainerError")
			// containerd's message, less the container ID it quotes
			// after "container" (see runtime.CreateContainer).
			want := `failed to generate container spec: failed to generate spec: ` +
				regexp.QuoteMeta(strings.ReplaceAll(tc.want, "PATH", filepath.Join(dir, tc.file)))
			if !regexp.MustCompile("^" + want + "$").MatchString(msg) {
				t.Errorf("message %q, want %s", msg, want)
			}
			events := podEvents(t.Context(), t, c, ns, pod.Name)
			if !slices.Contains(events, "Warning Failed Error: "+msg) {
				t.Errorf("events %q, want Warning Failed Error: %s", events, msg)
			}
		})
	}
}

// TestAppArmorRefusedWithoutHostSupport: these hosts have no AppArmor,
// so a pod asking for an AppArmor profile other than Unconfined (pod or
// container field, or the deprecated annotation) is refused by kubelet's
// AppArmor admission with its reason and message; Unconfined runs.
// Before, the profile was ignored and the pod ran unconfined.
func TestAppArmorRefusedWithoutHostSupport(t *testing.T) {
	t.Parallel()
	if b, err := os.ReadFile("/sys/module/apparmor/parameters/enabled"); err == nil && strings.HasPrefix(string(b), "Y") {
		t.Skip("the host has AppArmor: kubelet admits these pods")
	}
	c := shared.Client(t)
	shared.ImportBusybox(t, "busybox")
	ns := framework.NewNamespace(t, c, "apparmor-")
	const (
		reason  = "AppArmor"
		message = "Pod was rejected: Cannot enforce AppArmor: AppArmor is not enabled on the host"
	)
	pod := func(name string) *corev1.Pod {
		p := sysctlPod(ns, name, nil, "true")
		p.Spec.SecurityContext = nil
		return p
	}
	localhostName := "k8s-apparmor-example-deny-write"

	t.Run("runtime default on the pod", func(t *testing.T) {
		t.Parallel()
		p := pod("pod-runtime-default")
		p.Spec.SecurityContext = &corev1.PodSecurityContext{AppArmorProfile: &corev1.AppArmorProfile{Type: corev1.AppArmorProfileTypeRuntimeDefault}}
		expectRejected(t, c, p, reason, message)
	})
	t.Run("localhost on the container", func(t *testing.T) {
		t.Parallel()
		p := pod("container-localhost")
		p.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{AppArmorProfile: &corev1.AppArmorProfile{
			Type: corev1.AppArmorProfileTypeLocalhost, LocalhostProfile: &localhostName}}
		expectRejected(t, c, p, reason, message)
	})
	t.Run("deprecated annotation", func(t *testing.T) {
		t.Parallel()
		p := pod("annotation")
		p.Annotations = map[string]string{corev1.DeprecatedAppArmorBetaContainerAnnotationKeyPrefix + "test-container": corev1.DeprecatedAppArmorBetaProfileRuntimeDefault}
		expectRejected(t, c, p, reason, message)
	})
	t.Run("unconfined runs", func(t *testing.T) {
		t.Parallel()
		p := pod("unconfined")
		p.Spec.SecurityContext = &corev1.PodSecurityContext{AppArmorProfile: &corev1.AppArmorProfile{Type: corev1.AppArmorProfileTypeUnconfined}}
		runToSuccess(t, c, p)
	})
}
