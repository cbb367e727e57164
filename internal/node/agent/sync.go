package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
	kubetypes "k8s.io/kubernetes/pkg/kubelet/types"

	"github.com/pocketkube/pocketkube/internal/node/runtime"
	"github.com/pocketkube/pocketkube/internal/node/volume"
)

// Kubelet's container restart back-off: 10 s doubling to 5 min; an entry
// expires (the back-off resets) after twice the maximum without a failure.
const (
	backOffInitial = 10 * time.Second
	backOffMax     = 5 * time.Minute
)

// podState is what the agent keeps about a pod it runs, between syncs.
// Only the worker syncing the pod's key touches it.
type podState struct {
	uid       string
	sandbox   bool
	netns     string
	podIPs    []string
	startTime metav1.Time
	mounts    map[string]*volume.Mounted
	// waiting holds why a container that is not running is waiting:
	// ErrImagePull, CrashLoopBackOff, CreateContainerConfigError, ...
	waiting map[string]v1.ContainerStateWaiting
	// terminated is set once a pod in a terminal phase released its
	// sandbox.
	terminated bool
	// firstSeen is kubelet's kubernetes.io/config.seen: when this agent
	// first saw the pod.
	firstSeen string
	// sandboxSince is when the pod's sandbox was last re-created after
	// it changed (zero before): init containers that ran in the old one
	// run again, as kubelet runs them in a new sandbox.
	sandboxSince time.Time
	// resize is the pod's allocation and in-place resize state.
	resize resizeState
	// trace times the steps of the sync that sets the sandbox up, while
	// that sync runs (nil otherwise, and below startTraceLevel).
	trace *startTrace
	// pending is the pod's network while its CNI ADD runs, during the
	// sync that set the sandbox up (nil otherwise).
	pending *pendingNetwork
	// statusSeen is the pod's status (its JSON) as the agent's last status
	// write left it: the PATCH's answer, or the GET's when there was
	// nothing to write (writeStatus).
	statusSeen []byte
}

// existingState is the pod's state, or nil when the agent keeps none.
func (a *Agent) existingState(uid types.UID) *podState {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.states[string(uid)]
}

func (a *Agent) state(pod *v1.Pod) *podState {
	a.mu.Lock()
	defer a.mu.Unlock()
	uid := string(pod.UID)
	st, ok := a.states[uid]
	if !ok {
		st = &podState{uid: uid, mounts: map[string]*volume.Mounted{}, waiting: map[string]v1.ContainerStateWaiting{},
			firstSeen: kubetypes.NewTimestamp().GetString()}
		if pod.Status.StartTime != nil {
			st.startTime = *pod.Status.StartTime
		} else {
			st.startTime = metav1.NewTime(a.cfg.Clock.Now())
		}
		a.states[uid] = st
	}
	a.known[uid] = cache.MetaObjectToName(pod)
	return st
}

// syncPod takes the pod under key one step toward its spec and writes its
// status. It returns how long until the pod needs another sync without an
// event (a back-off expiring), or 0.
func (a *Agent) syncPod(ctx context.Context, key cache.ObjectName) (time.Duration, error) {
	logger := klog.FromContext(ctx)
	pod, err := a.podLister.Pods(key.Namespace).Get(key.Name)
	if err != nil && !apierrors.IsNotFound(err) {
		return 0, err
	}
	if apierrors.IsNotFound(err) {
		pod = nil
	}
	// Incarnations of this name that are gone from the API: kill them.
	for _, uid := range a.uidsFor(key) {
		if pod != nil && string(pod.UID) == uid {
			continue
		}
		gone := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name, UID: types.UID(uid)}}
		logger.V(2).Info("Killing pod removed from the API", "pod", klog.KObj(gone), "podUID", uid)
		if err := a.killPod(ctx, gone, 0); err != nil {
			return 0, err
		}
		if err := a.removeLogs(gone); err != nil {
			return 0, err
		}
	}
	if uid, ok := a.terminated.Load(key); ok && (pod == nil || pod.UID != uid) {
		a.terminated.Delete(key)
	}
	if pod == nil {
		a.watches.remove(key)
		return 0, nil
	}
	// NEVER modify objects from the store. It's a read-only, local cache.
	if pod.DeletionTimestamp != nil {
		a.watches.remove(key)
		if uid, ok := a.terminated.Load(key); ok && uid == pod.UID {
			return 0, nil
		}
		return 0, a.terminatePod(ctx, pod)
	}
	if pod.Status.Phase == v1.PodSucceeded || pod.Status.Phase == v1.PodFailed {
		a.watches.remove(key)
		return 0, a.releaseTerminal(ctx, pod)
	}
	st := a.state(pod)
	st.trace = newStartTrace(ctx, a.cfg.Clock, st)
	defer func() { st.trace = nil }()
	if e := a.evicting(string(pod.UID)); e != nil {
		a.watches.remove(key)
		return 0, a.evictPod(ctx, pod, st, e)
	}
	if !st.sandbox {
		// Kubelet admits a pod before its pod worker starts it: a pod
		// refused here is never set up.
		if r := a.admit(ctx, pod); !r.Admit {
			return 0, a.rejectPod(ctx, pod, st, r.Reason, r.Message)
		}
	}
	exceeded, untilDeadline := a.untilDeadline(pod, st)
	if exceeded {
		return 0, a.failPastDeadline(ctx, pod, st)
	}
	a.watches.set(ctx, key, podRefs(pod))
	// From here on the pod is what the node allocated to it: a resize
	// that is not admitted yet does not change what its containers get.
	allocated, retry := a.allocate(ctx, pod, st)
	st.trace.step("admit")
	status, requeue, syncErr := a.syncRunning(ctx, withLocalAnnotations(allocated, st), st)
	if retry > 0 && (requeue == 0 || retry < requeue) {
		requeue = retry
	}
	if untilDeadline > 0 && (requeue == 0 || untilDeadline < requeue) {
		requeue = untilDeadline
	}
	if status != nil {
		if err := a.writeStatus(ctx, pod, status); err != nil {
			return 0, err
		}
		st.trace.step("statusWrite")
	}
	st.trace.log(ctx, pod)
	return requeue, syncErr
}

// withLocalAnnotations returns the pod as kubelet's pod config hands it to
// its workers (pkg/kubelet/config): a copy with the annotations
// kubernetes.io/config.source "api" and kubernetes.io/config.seen, which
// containers see through the Downward API like any other annotation.
func withLocalAnnotations(pod *v1.Pod, st *podState) *v1.Pod {
	pod = pod.DeepCopy()
	if pod.Annotations == nil {
		pod.Annotations = map[string]string{}
	}
	pod.Annotations[kubetypes.ConfigSourceAnnotationKey] = kubetypes.ApiserverSource
	pod.Annotations[kubetypes.ConfigFirstSeenAnnotationKey] = st.firstSeen
	return pod
}

// terminatePod stops a pod that is being deleted within its grace period,
// releases everything it held, writes its final status and then deletes
// it for good, as kubelet's status manager does.
func (a *Agent) terminatePod(ctx context.Context, pod *v1.Pod) error {
	st := a.state(pod)
	for _, c := range allContainers(pod) {
		a.recordContainer(pod, c, v1.EventTypeNormal, "Killing", "Stopping container %s", c.Name)
	}
	// As kubelet's SyncTerminatingPod: the final status comes from the
	// stopped containers (their exit codes) before they are removed.
	if err := a.stopPod(ctx, pod, gracePeriod(pod)); err != nil {
		return err
	}
	containers, err := a.cfg.Runtime.ListContainers(ctx, string(pod.UID))
	if err != nil {
		return fmt.Errorf("list containers of pod %s: %w", klog.KObj(pod), err)
	}
	// A pod terminal in the API with no container left (the agent
	// restarted after its deletion) keeps the status it has.
	if terminal := pod.Status.Phase == v1.PodSucceeded || pod.Status.Phase == v1.PodFailed; !terminal || len(containers) > 0 {
		status := a.podStatus(pod, st, containers)
		terminalStatus(pod, status)
		status.Conditions = podConditions(pod, status, st, a.cfg.Clock.Now())
		if err := a.writeStatus(ctx, pod, status); err != nil && !apierrors.IsNotFound(err) {
			return err
		}
	}
	if err := a.killPod(ctx, pod, 0); err != nil {
		return err
	}
	// Logs go before the pod: whoever sees it deleted finds nothing of
	// it left on the node.
	if err := a.removeLogs(pod); err != nil {
		return err
	}
	err = a.cfg.Client.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{
		GracePeriodSeconds: new(int64),
		Preconditions:      metav1.NewUIDPreconditions(string(pod.UID)),
	})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return fmt.Errorf("delete pod %s: %w", klog.KObj(pod), err)
	}
	a.forgetState(string(pod.UID))
	a.terminated.Store(cache.MetaObjectToName(pod), pod.UID)
	return nil
}

// releaseTerminal frees the sandbox of a pod that reached Succeeded or
// Failed; its exited containers and logs stay until the pod is deleted.
func (a *Agent) releaseTerminal(ctx context.Context, pod *v1.Pod) error {
	st := a.state(pod)
	if st.terminated {
		return nil
	}
	containers, err := a.cfg.Runtime.ListContainers(ctx, string(pod.UID))
	if err != nil {
		return err
	}
	for _, c := range containers {
		if c.State == runtime.StateRunning || c.State == runtime.StateCreated {
			if err := a.cfg.Runtime.StopContainer(ctx, c.ID, gracePeriod(pod)); err != nil {
				return err
			}
		}
	}
	if !pod.Spec.HostNetwork && st.sandbox {
		if err := a.network.Teardown(ctx, string(pod.UID)); err != nil {
			return fmt.Errorf("tear down network of pod %s: %w", klog.KObj(pod), err)
		}
	}
	st.terminated = true
	return nil
}

// killPod stops and removes every container of the pod and releases its
// sandbox, volumes and files, but not its logs: after a node restart they
// carry the restart count on. Idempotent.
func (a *Agent) killPod(ctx context.Context, pod *v1.Pod, grace time.Duration) error {
	uid := string(pod.UID)
	if err := a.stopPod(ctx, pod, grace); err != nil {
		return err
	}
	if err := a.cfg.Runtime.RemovePod(ctx, uid); err != nil {
		return fmt.Errorf("remove pod %s: %w", klog.KObj(pod), err)
	}
	a.collectImages(ctx)
	if a.network != nil {
		if err := a.network.Teardown(ctx, uid); err != nil {
			return fmt.Errorf("tear down network of pod %s: %w", klog.KObj(pod), err)
		}
	}
	if err := a.cfg.Volumes.TeardownPod(ctx, uid); err != nil {
		return fmt.Errorf("tear down volumes of pod %s: %w", klog.KObj(pod), err)
	}
	if err := os.RemoveAll(a.podDir(uid)); err != nil {
		return err
	}
	a.forgetState(uid)
	return nil
}

// stopPod stops every running container of the pod, sidecars last, and
// leaves them in place with their exit codes. Idempotent.
func (a *Agent) stopPod(ctx context.Context, pod *v1.Pod, grace time.Duration) error {
	containers, err := a.cfg.Runtime.ListContainers(ctx, string(pod.UID))
	if err != nil {
		return fmt.Errorf("list containers of pod %s: %w", klog.KObj(pod), err)
	}
	var order *terminationOrder
	if hasSidecars(pod) {
		var running []string
		for _, c := range containers {
			if c.State == runtime.StateRunning {
				running = append(running, c.Name)
			}
		}
		order = newTerminationOrder(pod, running)
	}
	errc := make(chan error, len(containers))
	for _, c := range containers {
		go func() {
			switch c.State {
			case runtime.StateRunning:
				errc <- a.stopInTurn(ctx, pod, specContainer(pod, c.Name), c.ID, grace, order)
			case runtime.StateCreated:
				errc <- a.cfg.Runtime.StopContainer(ctx, c.ID, grace)
			default:
				errc <- nil
			}
		}()
	}
	var errs []error
	for range containers {
		errs = append(errs, <-errc)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("stop containers of pod %s: %w", klog.KObj(pod), err)
	}
	return nil
}

func (a *Agent) forgetState(uid string) {
	a.objects.tokens.Forget(uid)
	if a.prober != nil {
		a.prober.RemovePod(uid)
	}
	a.evictions.Delete(uid)
	a.mu.Lock()
	delete(a.states, uid)
	delete(a.known, uid)
	a.mu.Unlock()
}

func (a *Agent) podDir(uid string) string { return filepath.Join(a.cfg.DataDir, "pods", uid) }

// syncRunning is one step of kubelet's SyncPod for a pod that should run:
// sandbox, volumes, the next init container, then every app container that
// should be running.
func (a *Agent) syncRunning(ctx context.Context, pod *v1.Pod, st *podState) (*v1.PodStatus, time.Duration, error) {
	uid := string(pod.UID)
	recreate, err := a.checkSandbox(ctx, pod, st)
	st.trace.step("sandboxCheck")
	if err != nil {
		containers, _ := a.cfg.Runtime.ListContainers(ctx, uid)
		return a.podStatus(pod, st, containers), 0, err
	}
	if !recreate {
		containers, err := a.cfg.Runtime.ListContainers(ctx, uid)
		if err != nil {
			return nil, 0, err
		}
		return a.podStatus(pod, st, containers), 0, nil
	}
	// failedSandbox is kubelet's status and event for a sandbox that could
	// not be made.
	failedSandbox := func(err error) (*v1.PodStatus, time.Duration, error) {
		a.record(pod, v1.EventTypeWarning, "FailedCreatePodSandBox", "Failed to create pod sandbox: %v", err)
		containers, _ := a.cfg.Runtime.ListContainers(ctx, uid)
		return a.podStatus(pod, st, containers), 0, err
	}
	if !st.sandbox {
		if err := a.setupSandbox(ctx, pod, st); err != nil {
			// A network started before the failure is joined (and so
			// undone, or kept for the next sync's Setup) first.
			_ = a.joinNetwork(ctx, pod, st)
			st.pending = nil
			return failedSandbox(err)
		}
	}
	// The pod's network may still be attaching (setupSandbox started it):
	// whichever way this sync goes, it is joined before the sync ends.
	defer func() {
		_ = a.joinNetwork(ctx, pod, st)
		st.pending = nil
	}()
	if err := a.setupVolumes(ctx, pod, st); err != nil {
		if jerr := a.joinNetwork(ctx, pod, st); jerr != nil {
			return failedSandbox(jerr)
		}
		containers, _ := a.cfg.Runtime.ListContainers(ctx, uid)
		return a.podStatus(pod, st, containers), 0, err
	}
	st.trace.step("volumes")
	containers, err := a.cfg.Runtime.ListContainers(ctx, uid)
	if err != nil {
		return nil, 0, err
	}
	latest := latestByName(containers)
	var requeue time.Duration
	later := func(d time.Duration) {
		if d > 0 && (requeue == 0 || d < requeue) {
			requeue = d
		}
	}
	resized, retry := a.syncResize(ctx, pod, st, latest)
	later(retry)
	if resized {
		if containers, err = a.cfg.Runtime.ListContainers(ctx, uid); err != nil {
			return nil, 0, err
		}
		latest = latestByName(containers)
	}
	// After a new sandbox the init containers run again, as kubelet's
	// computePodActions starts from the first one when it makes a sandbox.
	st.trace.step("list")
	initStart, initDone, _ := a.initActions(pod, createdSince(latest, st.sandboxSince))
	var appStart []*v1.Container
	done := false
	if initDone {
		var keep int
		appStart, keep = appActions(pod, latest)
		// Sidecars do not keep a pod whose app containers finished alive.
		done = keep == 0 && len(appStart) == 0
	}
	started := false
	if done {
		a.stopSidecars(ctx, pod, containers)
		started = true
	} else {
		// Kubelet starts ephemeral containers before init containers, so
		// that a debug container runs even in a pod whose init fails.
		wait, ephemeral := a.startEphemeral(ctx, pod, st, latest)
		later(wait)
		started = ephemeral
		for _, i := range initStart {
			c := &pod.Spec.InitContainers[i]
			wait := a.startContainer(ctx, pod, c, st, latest[c.Name])
			later(wait)
			if _, failed := st.waiting[c.Name]; isSidecar(c) && wait == 0 && !failed {
				// Kubelet starts the next init container on the sync that
				// its PLEG's ContainerStarted event brings; the runtime here
				// reports exits only, so the pod asks for that sync itself.
				later(time.Millisecond)
			}
			started = true
		}
		for _, c := range appStart {
			later(a.startContainer(ctx, pod, c, st, latest[c.Name]))
			started = true
		}
	}
	if err := a.joinNetwork(ctx, pod, st); err != nil {
		return failedSandbox(err)
	}
	if started {
		if containers, err = a.cfg.Runtime.ListContainers(ctx, uid); err != nil {
			return nil, 0, err
		}
		containers = a.removeOldAttempts(ctx, pod, containers)
		st.trace.step("listAgain")
	}
	a.updateProbes(ctx, pod, st, containers)
	st.trace.step("probes")
	// Projected tokens are refreshed by a sync, as kubelet's volume
	// manager remounts them.
	if at := a.objects.tokens.NextRefresh(uid); !at.IsZero() {
		later(max(at.Sub(a.cfg.Clock.Now()), time.Second))
	}
	// Pod certificates are refreshed by the manager on its own schedule;
	// the sync after the new request's events writes them, and this one
	// catches a sync that came before the manager had read the event.
	if hasPodCertificates(pod) {
		later(podCertificateResync)
	}
	status := a.podStatus(pod, st, containers)
	st.trace.step("podStatus")
	return status, requeue, nil
}

// checkSandbox is kubelet's PodSandboxChanged step of SyncPod: when the
// sandbox the pod had is no longer ready (a reboot took its namespaces,
// its pause container died), it records SandboxChanged, kills the pod's
// containers and releases its network, so that the sync makes a new
// sandbox (a new IP, maybe) and starts the containers again in it, with
// their restart counts going on. As kubelet, a pod that must not restart
// (restartPolicy Never, containers already created) gets no new sandbox:
// its containers are killed and it fails. It reports whether the sync may
// go on to set the sandbox up.
func (a *Agent) checkSandbox(ctx context.Context, pod *v1.Pod, st *podState) (bool, error) {
	uid := string(pod.UID)
	ready, err := a.cfg.Runtime.PodReady(ctx, uid)
	if errors.Is(err, runtime.ErrNotFound) || (err == nil && ready) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("sandbox status of pod %s: %w", klog.KObj(pod), err)
	}
	containers, err := a.cfg.Runtime.ListContainers(ctx, uid)
	if err != nil {
		return false, err
	}
	recreate := pod.Spec.RestartPolicy != v1.RestartPolicyNever || len(containers) == 0
	if recreate {
		klog.FromContext(ctx).V(2).Info("Pod sandbox changed, it will be killed and re-created", "pod", klog.KObj(pod))
		a.record(pod, v1.EventTypeNormal, "SandboxChanged", "Pod sandbox changed, it will be killed and re-created.")
	}
	for _, c := range containers {
		var err error
		switch c.State {
		case runtime.StateRunning:
			spec := specContainer(pod, c.Name)
			if spec != nil {
				a.recordContainer(pod, spec, v1.EventTypeNormal, "Killing", "Stopping container %s", c.Name)
			}
			err = a.stopContainer(ctx, pod, spec, c.ID, gracePeriod(pod))
		case runtime.StateCreated:
			err = a.cfg.Runtime.StopContainer(ctx, c.ID, gracePeriod(pod))
		}
		if err != nil {
			return false, fmt.Errorf("kill pod %s for a new sandbox: %w", klog.KObj(pod), err)
		}
	}
	if !recreate {
		return false, nil
	}
	if !pod.Spec.HostNetwork {
		if err := a.network.Teardown(ctx, uid); err != nil {
			return false, fmt.Errorf("tear down network of pod %s: %w", klog.KObj(pod), err)
		}
	}
	st.sandbox = false
	st.sandboxSince = a.cfg.Clock.Now()
	return true, nil
}

// createdSince is latest without the containers created before since (a
// zero since keeps them all).
func createdSince(latest map[string]*runtime.ContainerStatus, since time.Time) map[string]*runtime.ContainerStatus {
	if since.IsZero() {
		return latest
	}
	kept := make(map[string]*runtime.ContainerStatus, len(latest))
	for name, cs := range latest {
		if !cs.CreatedAt.Before(since) {
			kept[name] = cs
		}
	}
	return kept
}

// removeOldAttempts keeps, per container, the newest attempt and the one
// before it (for `kubectl logs --previous`), as kubelet's container GC
// does with MaxPerPodContainer=1, and returns what is left.
func (a *Agent) removeOldAttempts(ctx context.Context, pod *v1.Pod, containers []*runtime.ContainerStatus) []*runtime.ContainerStatus {
	latest := latestByName(containers)
	kept := containers[:0:0]
	for _, c := range containers {
		if c.State == runtime.StateExited && c.Attempt+1 < latest[c.Name].Attempt {
			if err := a.cfg.Runtime.RemoveContainer(ctx, c.ID); err != nil {
				klog.FromContext(ctx).Error(err, "Removing old container", "pod", klog.KObj(pod), "container", c.Name, "attempt", c.Attempt)
			} else {
				if err := removeContainerLogs(c.LogPath); err != nil {
					klog.FromContext(ctx).Error(err, "Removing logs of old container", "pod", klog.KObj(pod), "container", c.Name, "attempt", c.Attempt)
				}
				continue
			}
		}
		kept = append(kept, c)
	}
	if len(kept) < len(containers) {
		a.collectImages(ctx)
	}
	return kept
}

// imageCollector is the image store's optional garbage collection
// (image.Store.Collect).
type imageCollector interface {
	Collect(ctx context.Context) error
}

// collectImages lets the image store delete the root filesystems of
// replaced images that removed containers were the last to use, as
// containerd collects garbage after deletions. A failure only costs disk
// space until the next collection.
func (a *Agent) collectImages(ctx context.Context) {
	if c, ok := a.cfg.Images.(imageCollector); ok {
		if err := c.Collect(ctx); err != nil {
			klog.FromContext(ctx).Error(err, "Collecting unused images")
		}
	}
}

// latestByName returns each container name's newest attempt.
func latestByName(containers []*runtime.ContainerStatus) map[string]*runtime.ContainerStatus {
	m := map[string]*runtime.ContainerStatus{}
	for _, c := range containers {
		if cur, ok := m[c.Name]; !ok || c.Attempt > cur.Attempt {
			m[c.Name] = c
		}
	}
	return m
}

// previousOf returns the attempt before the latest, if any.
func previousOf(containers []*runtime.ContainerStatus, name string, latest uint32) *runtime.ContainerStatus {
	var prev *runtime.ContainerStatus
	for _, c := range containers {
		if c.Name == name && c.Attempt < latest && (prev == nil || c.Attempt > prev.Attempt) {
			prev = c
		}
	}
	return prev
}

func (a *Agent) writeStatus(ctx context.Context, pod *v1.Pod, status *v1.PodStatus) error {
	// As kubelet's status manager, which writes only when its cached
	// status changed: when the informer's copy holds the status the
	// agent's last write left (another writer's change to the status
	// would show there first), a status that is the same against it needs
	// no GET. In a burst of pod starts that is every pod's second sync,
	// the one its own status write's event brings; on a running pod, every
	// sync a label or annotation change brings (the Downward API's).
	st := a.existingState(pod.UID)
	if st != nil && st.statusSeen != nil && bytes.Equal(statusJSON(&pod.Status), st.statusSeen) {
		patch, err := statusPatch(pod, pod, status)
		if err != nil {
			return err
		}
		if patch == nil {
			return nil
		}
	}
	// As kubelet's status manager (syncPod): the patch is made against
	// the pod as the API server has it now, not the informer's copy. A
	// copy that has not caught up with the agent's own last write (a
	// container that ran ready for a moment, then exited 0) would make
	// the patch leave out a change back to that copy's value: the pod
	// then stayed Succeeded with Ready True (conformance: Container
	// Runtime blackbox test, "should run with the expected status").
	current, err := a.cfg.Client.CoreV1().Pods(pod.Namespace).Get(ctx, pod.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) || (err == nil && current.UID != pod.UID) {
		klog.FromContext(ctx).V(3).Info("Pod gone before its status was written", "pod", klog.KObj(pod))
		return nil
	}
	if err != nil {
		return fmt.Errorf("get pod %s for its status: %w", klog.KObj(pod), err)
	}
	patch, err := statusPatch(current, pod, status)
	if err != nil {
		return err
	}
	if patch == nil {
		if st != nil {
			st.statusSeen = statusJSON(&current.Status)
		}
		return nil
	}
	updated, err := a.cfg.Client.CoreV1().Pods(pod.Namespace).Patch(ctx, pod.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{}, "status")
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		// Deleted meanwhile, or replaced by a pod of the same name (the UID
		// precondition failed): the informer's event syncs it again.
		klog.FromContext(ctx).V(3).Info("Pod gone before its status was written", "pod", klog.KObj(pod), "err", err)
		return nil
	}
	if err != nil {
		return fmt.Errorf("patch status of pod %s: %w", klog.KObj(pod), err)
	}
	if st != nil {
		st.statusSeen = statusJSON(&updated.Status)
	}
	klog.FromContext(ctx).V(3).Info("Wrote pod status", "pod", klog.KObj(pod), "phase", status.Phase)
	return nil
}

// statusJSON is a pod status as writeStatus compares it: its JSON, nil
// if it has none.
func statusJSON(s *v1.PodStatus) []byte {
	b, err := json.Marshal(s)
	if err != nil {
		return nil
	}
	return b
}

// statusPatch returns the patch that makes current's status the status
// the agent computed for the pod it saw (the informer's copy), or nil
// when there is nothing to change.
func statusPatch(current, seen *v1.Pod, status *v1.PodStatus) ([]byte, error) {
	status = status.DeepCopy()
	status.Conditions = mergeConditions(current.Status.Conditions, seen.Status.Conditions, status.Conditions)
	// The patch kubelet sends (k8s.io/kubernetes/pkg/util/pod.PatchPodStatus):
	// a strategic merge patch from the status the API has, with the UID as
	// a precondition. That helper flattens the API error into text, so the
	// patch is made here to tell "the pod is gone" from a real failure.
	oldData, err := json.Marshal(v1.Pod{Status: current.Status})
	if err != nil {
		return nil, err
	}
	newData, err := json.Marshal(v1.Pod{ObjectMeta: metav1.ObjectMeta{UID: seen.UID}, Status: *status})
	if err != nil {
		return nil, err
	}
	patch, err := strategicpatch.CreateTwoWayMergePatch(oldData, newData, v1.Pod{})
	if err != nil {
		return nil, fmt.Errorf("status patch of pod %s: %w", klog.KObj(seen), err)
	}
	if bytes.Equal(patch, fmt.Appendf(nil, `{"metadata":{"uid":%q}}`, seen.UID)) {
		return nil, nil
	}
	return patch, nil
}

// mergeConditions is the conditions part of kubelet's mergePodStatus:
// the conditions other writers own (a readiness gate's, the API's
// DisruptionTarget) as the API has them now, in their order, then the
// agent's own as it computed them. A condition the agent does not own
// but set itself (an eviction's DisruptionTarget: it differs from the
// informer's copy seen) is the agent's.
func mergeConditions(current, seen, computed []v1.PodCondition) []v1.PodCondition {
	mine := func(c v1.PodCondition) bool {
		if slices.Contains(ownedConditions, c.Type) {
			return true
		}
		i := slices.IndexFunc(seen, func(s v1.PodCondition) bool { return s.Type == c.Type })
		return i < 0 || !equality.Semantic.DeepEqual(seen[i], c)
	}
	var set []v1.PodCondition
	for _, c := range computed {
		if mine(c) {
			set = append(set, c)
		}
	}
	out := make([]v1.PodCondition, 0, len(current)+len(set))
	for _, c := range current {
		if !slices.Contains(ownedConditions, c.Type) && !slices.ContainsFunc(set, func(s v1.PodCondition) bool { return s.Type == c.Type }) {
			out = append(out, c)
		}
	}
	return append(out, set...)
}

func allContainers(pod *v1.Pod) []*v1.Container {
	var out []*v1.Container
	for i := range pod.Spec.InitContainers {
		out = append(out, &pod.Spec.InitContainers[i])
	}
	for i := range pod.Spec.Containers {
		out = append(out, &pod.Spec.Containers[i])
	}
	return out
}

func ipStrings(ips []net.IP) []string {
	out := make([]string, len(ips))
	for i, ip := range ips {
		out[i] = ip.String()
	}
	return out
}
