package agent

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
	podutil "k8s.io/kubernetes/pkg/api/v1/pod"

	"github.com/pocketkube/pocketkube/internal/node/runtime"
)

// Kubelet's eviction values (pkg/kubelet/eviction).
const (
	reasonEvicted = "Evicted"
	// evictionGrace is immediateEvictionGracePeriodSeconds: an evicted
	// pod's containers get 1 s after SIGTERM, whatever the pod asks.
	evictionGrace = time.Second
)

// eviction is a pod the eviction manager asked to evict.
type eviction struct {
	message string
	// condition is the DisruptionTarget condition kubelet's node-pressure
	// eviction adds to the status; nil for other evictions.
	condition *v1.PodCondition
	// grace is what the containers get after SIGTERM; at least
	// evictionGrace.
	grace time.Duration
	// recorded is set once the Evicted event went out; only the worker
	// syncing the pod touches it.
	recorded bool
	// done is set once the containers are stopped, the volumes released
	// and the status written.
	done atomic.Bool
}

// ActivePods returns the pods bound to this node that run or will: not
// deleted and not in a terminal phase (kubelet's GetActivePods), for the
// eviction manager. The pods are the lister's: never modify them.
func (a *Agent) ActivePods() ([]*v1.Pod, error) {
	pods, err := a.podLister.List(labels.Everything())
	if err != nil {
		return nil, err
	}
	var out []*v1.Pod
	for _, p := range pods {
		if p.DeletionTimestamp == nil && p.Status.Phase != v1.PodSucceeded && p.Status.Phase != v1.PodFailed {
			out = append(out, p)
		}
	}
	return out, nil
}

// Evict ends the pod as kubelet's eviction manager does (its killPodFunc):
// the pod's worker records a Warning event Evicted with message, stops the
// containers with a 1 s grace period, writes phase Failed, reason Evicted
// and message, and releases the sandbox and volumes. It returns at once;
// the work is the pod's next sync, so that it never races one.
func (a *Agent) Evict(ctx context.Context, pod *v1.Pod, message string) {
	uid := string(pod.UID)
	if _, loaded := a.evictions.LoadOrStore(uid, &eviction{message: message, grace: evictionGrace}); !loaded {
		klog.FromContext(ctx).V(3).Info("Evicting pod", "pod", klog.KObj(pod), "podUID", uid, "message", message)
	}
	a.queue.Add(cache.MetaObjectToName(pod))
}

// KillEvicted is Evict for kubelet's eviction manager
// (internal/node/eviction's Pressure), which records the Evicted event
// itself: the pod's status also gets condition (DisruptionTarget), and
// the containers get grace after SIGTERM (a soft threshold's), at least
// the 1 s of a hard one.
func (a *Agent) KillEvicted(ctx context.Context, pod *v1.Pod, message string, condition *v1.PodCondition, grace time.Duration) {
	uid := string(pod.UID)
	grace = max(grace, evictionGrace)
	if _, loaded := a.evictions.LoadOrStore(uid, &eviction{message: message, condition: condition, recorded: true, grace: grace}); !loaded {
		klog.FromContext(ctx).V(3).Info("Evicting pod", "pod", klog.KObj(pod), "podUID", uid, "message", message)
	}
	a.queue.Add(cache.MetaObjectToName(pod))
}

// PodCleanedUp reports whether an evicted pod is down: its containers
// stopped, its sandbox and volumes released, its status written (kubelet's
// podResourcesAreReclaimed, which the eviction manager waits for before
// it looks at the node again). A pod not being evicted is cleaned up.
func (a *Agent) PodCleanedUp(pod *v1.Pod) bool {
	e := a.evicting(string(pod.UID))
	return e == nil || e.done.Load()
}

// evicting returns the eviction asked for the pod, or nil.
func (a *Agent) evicting(uid string) *eviction {
	if e, ok := a.evictions.Load(uid); ok {
		return e.(*eviction)
	}
	return nil
}

// evictPod does what Evict asked, in the pod's sync; it is idempotent,
// since the lister may show the pod running for a few syncs more.
func (a *Agent) evictPod(ctx context.Context, pod *v1.Pod, st *podState, e *eviction) error {
	if !e.recorded {
		a.record(pod, v1.EventTypeWarning, reasonEvicted, "%s", e.message)
		e.recorded = true
	}
	containers, err := a.cfg.Runtime.ListContainers(ctx, string(pod.UID))
	if err != nil {
		return fmt.Errorf("list containers of evicted pod %s: %w", klog.KObj(pod), err)
	}
	var errs []error
	for _, c := range containers {
		if c.State == runtime.StateRunning || c.State == runtime.StateCreated {
			if sc := specContainer(pod, c.Name); sc != nil {
				a.recordContainer(pod, sc, v1.EventTypeNormal, "Killing", "Stopping container %s", c.Name)
			}
			errs = append(errs, a.cfg.Runtime.StopContainer(ctx, c.ID, e.grace))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("stop containers of evicted pod %s: %w", klog.KObj(pod), err)
	}
	if containers, err = a.cfg.Runtime.ListContainers(ctx, string(pod.UID)); err != nil {
		return fmt.Errorf("list containers of evicted pod %s: %w", klog.KObj(pod), err)
	}
	if err := a.releaseTerminal(ctx, pod); err != nil {
		return err
	}
	if err := a.cfg.Volumes.TeardownPod(ctx, string(pod.UID)); err != nil {
		return fmt.Errorf("tear down volumes of evicted pod %s: %w", klog.KObj(pod), err)
	}
	status := a.podStatus(pod, st, containers)
	status.Phase, status.Reason, status.Message = v1.PodFailed, reasonEvicted, e.message
	status.Conditions = podConditions(pod, status, st, a.cfg.Clock.Now())
	if e.condition != nil {
		podutil.UpdatePodCondition(status, e.condition)
	}
	if err := a.writeStatus(ctx, pod, status); err != nil {
		return err
	}
	e.done.Store(true)
	return nil
}
