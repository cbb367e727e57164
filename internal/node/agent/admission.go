package agent

import (
	"context"
	"errors"
	"fmt"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilsysctl "k8s.io/component-helpers/node/util/sysctl"
	"k8s.io/klog/v2"
	"k8s.io/kubernetes/pkg/apis/core/v1/helper/qos"
	"k8s.io/kubernetes/pkg/kubelet/lifecycle"
	"k8s.io/kubernetes/pkg/kubelet/sysctl"
)

// admit runs kubelet's admit handlers that matter to a pod's security
// before anything of the pod is set up: a pod they refuse never runs,
// rather than running looser than it asked. Only the sysctl allowlist
// is one today: kubelet's safe set for this kernel (upstream's
// SafeSysctlAllowlist, with no --allowed-unsafe-sysctls), refusing any
// other sysctl and a namespaced one in a namespace the pod shares with
// the host.
func (a *Agent) admit(ctx context.Context, pod *v1.Pod) lifecycle.PodAdmitResult {
	if pod.Spec.SecurityContext == nil || len(pod.Spec.SecurityContext.Sysctls) == 0 {
		return lifecycle.PodAdmitResult{Admit: true}
	}
	allowlist, err := sysctl.NewAllowlist(sysctl.SafeSysctlAllowlist(ctx))
	if err != nil {
		// Upstream's own list always parses; refuse rather than run a pod
		// with sysctls nobody checked.
		return lifecycle.PodAdmitResult{Reason: sysctl.ForbiddenReason, Message: fmt.Sprintf("forbidden sysctl: %v", err)}
	}
	return allowlist.Admit(ctx, &lifecycle.PodAdmitAttributes{Pod: pod, Operation: lifecycle.AddOperation})
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
