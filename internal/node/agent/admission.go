package agent

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilsysctl "k8s.io/component-helpers/node/util/sysctl"
	"k8s.io/klog/v2"
	"k8s.io/kubernetes/pkg/apis/core/v1/helper/qos"
	"k8s.io/kubernetes/pkg/kubelet/lifecycle"
	"k8s.io/kubernetes/pkg/kubelet/sysctl"
	"k8s.io/kubernetes/pkg/security/apparmor"

	"github.com/pocketkube/pocketkube/internal/node/runtime"
)

// admit runs kubelet's admit handlers, in kubelet's order, before
// anything of the pod is set up: a pod they refuse never runs. First the
// eviction manager's, which refuses pods while the node is under
// pressure; then those that matter to a pod's security, so that it never
// runs looser than it asked: the sysctl allowlist (kubelet's safe set for this kernel, upstream's
// SafeSysctlAllowlist with no --allowed-unsafe-sysctls) and the AppArmor
// handler, which refuses a pod asking for an AppArmor profile other than
// Unconfined on a host that cannot enforce one.
func (a *Agent) admit(ctx context.Context, pod *v1.Pod) lifecycle.PodAdmitResult {
	attrs := &lifecycle.PodAdmitAttributes{Pod: pod, Operation: lifecycle.AddOperation}
	if a.cfg.Pressure != nil {
		if r := a.cfg.Pressure.Admit(ctx, attrs); !r.Admit {
			return r
		}
	}
	if r := a.admitSysctls(ctx, attrs); !r.Admit {
		return r
	}
	if r := admitRestartRules(pod); !r.Admit {
		return r
	}
	// As kubelet's HandlePodAdditions: a pod the node allocated before
	// (the agent restarted) is admitted with that allocation, not with a
	// resize the node has not admitted.
	admitted := pod
	if saved, err := a.loadAllocation(pod); err == nil {
		admitted, _ = withAllocation(pod, saved)
	}
	if r := a.admitPredicates(ctx, admitted, lifecycle.AddOperation); !r.Admit {
		return r
	}
	return lifecycle.NewAppArmorAdmitHandler(a.cfg.AppArmor).Admit(ctx, attrs)
}

// admitRestartRules refuses a pod whose container restart rules ask to
// restart all of its containers (RestartAllContainersOnContainerExits,
// beta in 1.37): the agent restarts containers one by one only, and a
// rule it cannot honour must not be ignored. The reason and message are
// kubelet's for a node that lacks a feature the pod needs.
func admitRestartRules(pod *v1.Pod) lifecycle.PodAdmitResult {
	for _, c := range allContainers(pod) {
		for _, r := range c.RestartPolicyRules {
			if r.Action == v1.ContainerRestartRuleActionRestartAllContainers {
				return lifecycle.PodAdmitResult{Reason: lifecycle.PodFeatureUnsupported,
					Message: "Pod requires node features that are not available: RestartAllContainersOnContainerExits"}
			}
		}
	}
	return lifecycle.PodAdmitResult{Admit: true}
}

// admitSysctls refuses any sysctl outside kubelet's safe set, and a
// namespaced one in a namespace the pod shares with the host.
func (a *Agent) admitSysctls(ctx context.Context, attrs *lifecycle.PodAdmitAttributes) lifecycle.PodAdmitResult {
	pod := attrs.Pod
	if pod.Spec.SecurityContext == nil || len(pod.Spec.SecurityContext.Sysctls) == 0 {
		return lifecycle.PodAdmitResult{Admit: true}
	}
	allowlist, err := sysctl.NewAllowlist(sysctl.SafeSysctlAllowlist(ctx))
	if err != nil {
		// Upstream's own list always parses; refuse rather than run a pod
		// with sysctls nobody checked.
		return lifecycle.PodAdmitResult{Reason: sysctl.ForbiddenReason, Message: fmt.Sprintf("forbidden sysctl: %v", err)}
	}
	return allowlist.Admit(ctx, attrs)
}

// errAppArmorUnsupported is containerd's error for a container asking for
// an AppArmor profile when its CRI plugin does not apply AppArmor, which
// is pocketkube's case on every host.
var errAppArmorUnsupported = errors.New("failed to generate apparmor spec opts: apparmor is not supported")

// appArmor is what containerd's CRI plugin checks for a container's
// AppArmor profile (GenerateApparmorSpecOpts) when AppArmor is off in
// containerd: anything but Unconfined fails the container's creation.
// Kubelet's admission refuses such pods first on a host without AppArmor;
// this refuses them on a host with it, where pocketkube would otherwise
// run them unconfined.
func appArmor(pod *v1.Pod, c *v1.Container) error {
	if p := apparmor.GetProfile(pod, c); p != nil && p.Type != v1.AppArmorProfileTypeUnconfined {
		return runtimeError{errAppArmorUnsupported}
	}
	return nil
}

// seccompProfile is kubelet's getSeccompProfile: the container's
// seccompProfile, else the pod's, else RuntimeDefault with
// --seccomp-default and Unconfined without; a Localhost profile is a file
// under kubelet's seccomp root (DataDir/seccomp here), which the runtime
// reads when it creates the container.
func (a *Agent) seccompProfile(pod *v1.Pod, c *v1.Container) (runtime.Seccomp, error) {
	var p *v1.SeccompProfile
	if c.SecurityContext != nil && c.SecurityContext.SeccompProfile != nil {
		p = c.SecurityContext.SeccompProfile
	} else if pod.Spec.SecurityContext != nil && pod.Spec.SecurityContext.SeccompProfile != nil {
		p = pod.Spec.SecurityContext.SeccompProfile
	}
	switch {
	case p == nil && a.cfg.SeccompDefault, p != nil && p.Type == v1.SeccompProfileTypeRuntimeDefault:
		return runtime.Seccomp{Type: runtime.SeccompRuntimeDefault}, nil
	case p != nil && p.Type == v1.SeccompProfileTypeLocalhost:
		if p.LocalhostProfile == nil || *p.LocalhostProfile == "" {
			return runtime.Seccomp{}, errors.New("localhostProfile must be set if seccompProfile type is Localhost.")
		}
		return runtime.Seccomp{Type: runtime.SeccompLocalhost, Path: filepath.Join(a.seccompRoot(), *p.LocalhostProfile)}, nil
	}
	return runtime.Seccomp{Type: runtime.SeccompUnconfined}, nil
}

// seccompRoot is kubelet's seccomp profile root, <root-dir>/seccomp.
func (a *Agent) seccompRoot() string {
	return filepath.Join(a.cfg.DataDir, "seccomp")
}

// rejectPod is kubelet's rejectPod: a Warning event with the handler's
// reason, and the pod Failed with that reason and "Pod was rejected: "
// before the message.
func (a *Agent) rejectPod(ctx context.Context, pod *v1.Pod, st *podState, reason, message string) error {
	klog.FromContext(ctx).V(2).Info("Pod rejected", "pod", klog.KObj(pod), "reason", reason, "message", message)
	a.record(pod, v1.EventTypeWarning, reason, "%s", message)
	status := &v1.PodStatus{
		ObservedGeneration: pod.Generation,
		QOSClass:           qos.GetPodQOS(pod),
		Phase:              v1.PodFailed,
		Reason:             reason,
		Message:            "Pod was rejected: " + message,
		StartTime:          &st.startTime,
	}
	// The status manager keeps the conditions kubelet does not own
	// (PodScheduled) and drops nothing else: a rejected pod has none of
	// its own.
	for _, c := range pod.Status.Conditions {
		if c.Type == v1.PodScheduled {
			status.Conditions = append(status.Conditions, c)
		}
	}
	st.terminated = true
	return a.writeStatus(ctx, pod, status)
}

// podSysctls is what the runtime sets in the pod's namespaces: the
// pod's sysctls with names in dot form, as kubelet converts them before
// it asks the runtime (runc knows only dots).
func podSysctls(pod *v1.Pod) map[string]string {
	if pod.Spec.SecurityContext == nil || len(pod.Spec.SecurityContext.Sysctls) == 0 {
		return nil
	}
	out := make(map[string]string, len(pod.Spec.SecurityContext.Sysctls))
	for _, s := range pod.Spec.SecurityContext.Sysctls {
		out[utilsysctl.NormalizeName(s.Name)] = s.Value
	}
	return out
}

// defaultRuntimeHandler is the one runtime handler pocketkube has, named
// as containerd's default runtime: a RuntimeClass with this handler (or
// none, which means the default) runs pods with runc.
const defaultRuntimeHandler = "runc"

// sandboxRuntime is what kubelet checks while it makes the sandbox
// config (NamespacesForPod, createPodSandbox): the pod's RuntimeClass
// must exist, hostUsers: false needs user namespaces, which this runtime
// does not give (userns_manager.go's message), and a handler other than
// runc fails as containerd fails RunPodSandbox. Each error is kubelet's
// FailedCreatePodSandBox; the pod stays Pending and the sync retries.
func (a *Agent) sandboxRuntime(ctx context.Context, pod *v1.Pod) error {
	handler := ""
	if name := pod.Spec.RuntimeClassName; name != nil && *name != "" {
		rc, err := a.cfg.Client.NodeV1().RuntimeClasses().Get(ctx, *name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return err // kubelet's runtimeclass.Manager returns it as is
		}
		if err != nil {
			return fmt.Errorf("failed to lookup RuntimeClass %s: %v", *name, err)
		}
		handler = rc.Handler
	}
	if pod.Spec.HostUsers != nil && !*pod.Spec.HostUsers {
		if handler != "" {
			return fmt.Errorf("can't set `spec.hostUsers: false`, RuntimeClass handler %q does not support user namespaces", handler)
		}
		return errors.New("can't set `spec.hostUsers: false`, runtime does not support user namespaces")
	}
	if handler != "" && handler != defaultRuntimeHandler {
		return fmt.Errorf("failed to get sandbox runtime: no runtime for %q is configured", handler)
	}
	return nil
}
