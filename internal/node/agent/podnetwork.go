package agent

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"

	"github.com/pocketkube/pocketkube/internal/node/downward"
	"github.com/pocketkube/pocketkube/internal/node/network"
)

// networkStarter is the Network's optional Start (network.Manager.Start):
// Setup in two halves, the pod's network namespace first and CNI ADD in
// the background, so that the sync that sets a sandbox up prepares the
// pod's volumes and image and creates its first container meanwhile.
type networkStarter interface {
	Start(ctx context.Context, pod network.Pod) (netns string, wait func() (*network.Sandbox, error), err error)
}

// pendingNetwork is a pod network whose CNI ADD runs while the sync that
// set the sandbox up goes on. That sync joins it (joinNetwork) before it
// starts a container, pulls an image, computes an environment with the
// pod's IPs or writes the status, and in any case before it returns: a
// pendingNetwork never outlives its sync.
type pendingNetwork struct {
	wait func() (*network.Sandbox, error)
	// created are the containers created before the join: if the ADD
	// failed they are removed, as if never created.
	created []createdBeforeJoin
	joined  bool
	err     error
}

type createdBeforeJoin struct{ id, logPath string }

// joinNetwork waits for the pod network that setupSandbox started, once:
// then the pod has its IPs and its /etc/hosts has them, and the events
// held meanwhile go out. If the network failed, the containers created
// meanwhile are removed (with their logs, so the attempt does not count),
// the events held are dropped (kubelet shows none of them for a pod whose
// sandbox failed), and the next sync sets the sandbox up again. It
// returns the network's error, also to later calls in the same sync.
func (a *Agent) joinNetwork(ctx context.Context, pod *v1.Pod, st *podState) error {
	p := st.pending
	if p == nil || p.joined {
		if p != nil {
			return p.err
		}
		return nil
	}
	p.joined = true
	sb, err := p.wait()
	if err == nil {
		st.podIPs = downward.SortIPs(sb.IPs, a.cfg.NodeIPs[0].To4() == nil)
		err = a.rewriteHosts(pod, st)
	}
	st.trace.step("networkWait")
	if err == nil {
		a.releaseEvents(pod.UID, true)
		return nil
	}
	p.err = fmt.Errorf("set up network of pod %s: %w", klog.KObj(pod), err)
	a.releaseEvents(pod.UID, false)
	a.undoSandbox(context.WithoutCancel(ctx), pod, p.created)
	st.sandbox = false
	return p.err
}

// undoSandbox removes the containers created in a sandbox whose network
// failed, and the sandbox itself when the pod has no other container (its
// first): the next sync then finds no sandbox, as when the network fails
// before RunPod, rather than a broken one to replace (SandboxChanged). A
// pod that had containers before keeps them, exited, with their restart
// counts, as when its sandbox is replaced. Failures are logged: the next
// sync's RunPod and killPod's RemovePod work on what is left.
func (a *Agent) undoSandbox(ctx context.Context, pod *v1.Pod, created []createdBeforeJoin) {
	logger := klog.FromContext(ctx)
	for _, c := range created {
		if err := a.cfg.Runtime.RemoveContainer(ctx, c.id); err != nil {
			logger.Error(err, "Removing a container created before its pod's network failed", "pod", klog.KObj(pod), "containerID", c.id)
		}
		if c.logPath != "" {
			_ = os.Remove(c.logPath)
		}
	}
	uid := string(pod.UID)
	if left, err := a.cfg.Runtime.ListContainers(ctx, uid); err != nil || len(left) > 0 {
		return
	}
	if err := a.cfg.Runtime.RemovePod(ctx, uid); err != nil {
		logger.Error(err, "Removing the sandbox of a pod whose network failed", "pod", klog.KObj(pod))
	}
}

// networkFailed reports whether the pod's network was joined and failed:
// the sync starts nothing more.
func (st *podState) networkFailed() bool {
	return st.pending != nil && st.pending.joined && st.pending.err != nil
}

// rewriteHosts writes the pod's /etc/hosts again, now with its IPs, in
// place: a container created before the join has the file bind-mounted
// already, and an atomic rename would leave it the old inode. No process
// of the pod runs yet (the join comes before the first start), so no one
// reads it half-written.
func (a *Agent) rewriteHosts(pod *v1.Pod, st *podState) error {
	hostname, domain, _, err := network.PodHostname(pod, a.cfg.ClusterDomain)
	if err != nil {
		return err
	}
	hosts, err := a.hostsFile(pod, st, hostname, domain)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(filepath.Join(a.podDir(string(pod.UID)), "etc-hosts"), os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return fmt.Errorf("write /etc/hosts of pod %s: %w", klog.KObj(pod), err)
	}
	_, err = f.Write(hosts)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write /etc/hosts of pod %s: %w", klog.KObj(pod), err)
	}
	return nil
}

// heldEvents are a pod's events kept back while its network attaches.
type heldEvents struct {
	mu     sync.Mutex
	sent   bool
	events []func()
}

// holdEvents makes record and recordContainer keep the pod's events until
// releaseEvents.
func (a *Agent) holdEvents(uid types.UID) {
	a.heldEvents.Store(uid, &heldEvents{})
}

// releaseEvents sends the pod's held events in order, or drops them.
func (a *Agent) releaseEvents(uid types.UID, send bool) {
	v, ok := a.heldEvents.LoadAndDelete(uid)
	if !ok {
		return
	}
	h := v.(*heldEvents)
	h.mu.Lock()
	events := h.events
	h.events, h.sent = nil, true
	h.mu.Unlock()
	if send {
		for _, e := range events {
			e()
		}
	}
}

// hold keeps event for later when the pod's events are held, and reports
// whether it did.
func (a *Agent) hold(uid types.UID, event func()) bool {
	v, ok := a.heldEvents.Load(uid)
	if !ok {
		return false
	}
	h := v.(*heldEvents)
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.sent {
		return false
	}
	h.events = append(h.events, event)
	return true
}
