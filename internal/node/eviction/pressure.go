package eviction

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2"
	kubeleteviction "k8s.io/kubernetes/pkg/kubelet/eviction"
	evictionapi "k8s.io/kubernetes/pkg/kubelet/eviction/api"
	"k8s.io/kubernetes/pkg/kubelet/lifecycle"
	"k8s.io/utils/clock"
)

// DefaultHard is kubelet's --eviction-hard default on Linux
// (pkg/kubelet/eviction DefaultEvictionHard).
const DefaultHard = "imagefs.available<15%,imagefs.inodesFree<5%,memory.available<100Mi,nodefs.available<10%,nodefs.inodesFree<5%"

// DefaultPressureTransitionPeriod is kubelet's
// --eviction-pressure-transition-period: how long a pressure condition
// stays True after its threshold was last crossed.
const DefaultPressureTransitionPeriod = 5 * time.Minute

// ParseHard parses kubelet's --eviction-hard: comma-separated
// signal<quantity or signal<percent% statements, such as
// "memory.available<100Mi,nodefs.available<10%". Signals it leaves out
// have no threshold, as with kubelet; "" has none at all.
func ParseHard(s string) ([]evictionapi.Threshold, error) {
	hard, err := ParseMap(s, "<")
	if err != nil {
		return nil, err
	}
	return ParseThresholds(hard, nil, nil, nil)
}

// ParseMap parses one of kubelet's map flags: comma-separated key<value
// pairs (sep "<": --eviction-hard and --eviction-soft, kubelet's
// LangleSeparatedMapStringString) or key=value pairs (sep "=":
// --eviction-soft-grace-period and --eviction-minimum-reclaim,
// MapStringString).
func ParseMap(s, sep string) (map[string]string, error) {
	m := map[string]string{}
	for stmt := range strings.SplitSeq(s, ",") {
		stmt = strings.TrimSpace(stmt)
		if stmt == "" {
			continue
		}
		k, v, ok := strings.Cut(stmt, sep)
		if !ok {
			return nil, fmt.Errorf("malformed pair %q, expect 'key%svalue'", stmt, sep)
		}
		m[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	return m, nil
}

// ParseThresholds is kubelet's ParseThresholdConfig over its four flags,
// each parsed by ParseMap: the hard thresholds, then the soft ones, each
// with the grace period it must hold for before a pod is evicted (a soft
// threshold without one is an error, as with kubelet), and the minimum
// reclaim of any signal.
func ParseThresholds(hard, soft, softGracePeriod, minimumReclaim map[string]string) ([]evictionapi.Threshold, error) {
	return kubeleteviction.ParseThresholdConfig(nil, hard, soft, softGracePeriod, minimumReclaim)
}

// FormatThresholds writes the hard thresholds of ts back in
// --eviction-hard's syntax, sorted by signal, for logs.
func FormatThresholds(ts []evictionapi.Threshold) string {
	var out []string
	for _, t := range ts {
		if t.GracePeriod == 0 {
			out = append(out, formatThreshold(t))
		}
	}
	sort.Strings(out)
	return strings.Join(out, ",")
}

// FormatSoft writes the soft thresholds of ts as --eviction-soft and
// --eviction-soft-grace-period would give them, and the minimum reclaims
// of all as --eviction-minimum-reclaim, for logs.
func FormatSoft(ts []evictionapi.Threshold) (soft, gracePeriods, minimumReclaims string) {
	var s, g, r []string
	for _, t := range ts {
		if t.GracePeriod != 0 {
			s = append(s, formatThreshold(t))
			g = append(g, string(t.Signal)+"="+t.GracePeriod.String())
		}
		if t.MinReclaim != nil {
			v := fmt.Sprintf("%.6g%%", t.MinReclaim.Percentage*100)
			if t.MinReclaim.Quantity != nil {
				v = t.MinReclaim.Quantity.String()
			}
			if e := string(t.Signal) + "=" + v; !slices.Contains(r, e) {
				r = append(r, e)
			}
		}
	}
	sort.Strings(s)
	sort.Strings(g)
	sort.Strings(r)
	return strings.Join(s, ","), strings.Join(g, ","), strings.Join(r, ",")
}

func formatThreshold(t evictionapi.Threshold) string {
	v := fmt.Sprintf("%.6g%%", t.Value.Percentage*100)
	if t.Value.Quantity != nil {
		v = t.Value.Quantity.String()
	}
	return string(t.Signal) + "<" + v
}

// Killer ends a pod the pressure manager evicts; the manager has recorded
// the Evicted event already. It may return before the pod is down.
type Killer interface {
	// KillEvicted ends the pod as Evicter.Evict does, with the status
	// reason Evicted, message and the DisruptionTarget condition kubelet
	// gives it, and without a second Evicted event. grace is what its
	// containers get between SIGTERM and SIGKILL: kubelet's 1 s for a
	// hard threshold, for a soft one the pod's terminationGracePeriodSeconds
	// capped at MaxPodGracePeriodSeconds.
	KillEvicted(ctx context.Context, pod *v1.Pod, message string, condition *v1.PodCondition, grace time.Duration)
	// PodCleanedUp reports whether an evicted pod's containers are
	// stopped and its volumes released (kubelet's podResourcesAreReclaimed).
	PodCleanedUp(pod *v1.Pod) bool
}

// PressureConfig configures a Pressure manager. Every field but Period,
// TransitionPeriod, ImageGC and Clock is required.
type PressureConfig struct {
	// Thresholds are the eviction thresholds (ParseThresholds): hard
	// ones, soft ones with their grace periods, minimum reclaims.
	Thresholds []evictionapi.Threshold
	// MaxPodGracePeriodSeconds is kubelet's --eviction-max-pod-grace-period:
	// the longest grace period a pod evicted for a soft threshold gets
	// (0, kubelet's default, means none beyond kubelet's minimum).
	MaxPodGracePeriodSeconds int64
	// NodeName names the node events are about.
	NodeName string
	// Client records events.
	Client kubernetes.Interface
	// Summary measures the node and its pods.
	Summary *Summary
	// Killer ends evicted pods.
	Killer Killer
	// ImageGC frees image-store space no image uses any more, before
	// pods are evicted for disk pressure.
	ImageGC func(ctx context.Context) error
	// Period is kubelet's evictionMonitoringPeriod; default DefaultPeriod.
	Period time.Duration
	// TransitionPeriod defaults to DefaultPressureTransitionPeriod.
	TransitionPeriod time.Duration
	// Clock defaults to the real clock.
	Clock clock.WithTicker
}

// Pressure is kubelet's eviction manager itself (k8s.io/kubernetes
// pkg/kubelet/eviction), run over this node's measurements: it tells
// the node's pressure conditions, admits pods, and evicts one pod each
// Period while a hard threshold is crossed.
type Pressure struct {
	cfg   PressureConfig
	mgr   kubeleteviction.Manager
	admit lifecycle.PodAdmitHandler
	// ctx is Run's, for the kill function upstream calls without one.
	ctx context.Context
	// broadcaster sends the manager's events; Run shuts it down.
	broadcaster record.EventBroadcaster
}

// NewPressure checks cfg and builds the manager; Run starts it. Its
// events stop being retried once ctx is done, so that a stop does not
// wait on a retry to an API server that is gone (as the agent's).
func NewPressure(ctx context.Context, cfg PressureConfig) (*Pressure, error) {
	if cfg.NodeName == "" || cfg.Client == nil || cfg.Summary == nil || cfg.Killer == nil {
		return nil, errors.New("eviction: NodeName, Client, Summary and Killer are required")
	}
	if cfg.Period == 0 {
		cfg.Period = DefaultPeriod
	}
	if cfg.TransitionPeriod == 0 {
		cfg.TransitionPeriod = DefaultPressureTransitionPeriod
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	p := &Pressure{cfg: cfg, ctx: context.Background()}
	p.broadcaster = record.NewBroadcaster(record.WithContext(ctx))
	recorder := p.broadcaster.NewRecorder(scheme.Scheme, v1.EventSource{Component: "kubelet", Host: cfg.NodeName})
	// Kubelet's nodeRef: the UID is the node's name.
	nodeRef := &v1.ObjectReference{Kind: "Node", Name: cfg.NodeName, UID: types.UID(cfg.NodeName)}
	p.mgr, p.admit = kubeleteviction.NewManager(cfg.Summary, kubeleteviction.Config{
		PressureTransitionPeriod: cfg.TransitionPeriod,
		Thresholds:               cfg.Thresholds,
		MaxPodGracePeriodSeconds: cfg.MaxPodGracePeriodSeconds,
	}, p.kill, imageGC(cfg.ImageGC), containerGC{}, recorder, nodeRef, cfg.Clock, false)
	return p, nil
}

// kill is kubelet's killPodFunc: the status function upstream passes
// holds the message and the DisruptionTarget condition, gracePeriod the
// seconds the containers get.
func (p *Pressure) kill(pod *v1.Pod, _ bool, gracePeriod *int64, fn func(*v1.PodStatus)) error {
	status := pod.Status.DeepCopy()
	fn(status)
	var cond *v1.PodCondition
	for i := range status.Conditions {
		if status.Conditions[i].Type == v1.DisruptionTarget {
			cond = &status.Conditions[i]
		}
	}
	grace := time.Duration(0)
	if gracePeriod != nil && *gracePeriod > 0 {
		grace = time.Duration(*gracePeriod) * time.Second
	}
	p.cfg.Killer.KillEvicted(p.ctx, pod, status.Message, cond, grace)
	return nil
}

// Run checks the node every Period until ctx is done.
func (p *Pressure) Run(ctx context.Context) {
	p.ctx = ctx
	p.broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: p.cfg.Client.CoreV1().Events("")})
	defer p.broadcaster.Shutdown()
	logger := klog.FromContext(ctx)
	soft, grace, reclaim := FormatSoft(p.cfg.Thresholds)
	logger.Info("Eviction manager: thresholds", "evictionHard", FormatThresholds(p.cfg.Thresholds),
		"evictionSoft", soft, "evictionSoftGracePeriod", grace, "evictionMinimumReclaim", reclaim,
		"evictionMaxPodGracePeriod", p.cfg.MaxPodGracePeriodSeconds)
	pods := func() []*v1.Pod {
		pods, err := p.cfg.Summary.Pods()
		if err != nil {
			logger.Error(err, "Eviction manager: listing pods")
		}
		return pods
	}
	p.mgr.Start(ctx, diskInfo{nodeFs: p.cfg.Summary.NodeFsDir, imageFs: p.cfg.Summary.ImageFsDir}, pods, p.cfg.Killer.PodCleanedUp, p.cfg.Period)
	<-ctx.Done()
}

// IsUnderMemoryPressure reports the node's MemoryPressure condition.
func (p *Pressure) IsUnderMemoryPressure() bool { return p.mgr.IsUnderMemoryPressure() }

// IsUnderDiskPressure reports the node's DiskPressure condition.
func (p *Pressure) IsUnderDiskPressure() bool { return p.mgr.IsUnderDiskPressure() }

// IsUnderPIDPressure reports the node's PIDPressure condition.
func (p *Pressure) IsUnderPIDPressure() bool { return p.mgr.IsUnderPIDPressure() }

// Admit is kubelet's eviction admission: under MemoryPressure alone it
// refuses BestEffort pods that do not tolerate the memory-pressure taint;
// under any other pressure every pod but critical ones.
func (p *Pressure) Admit(ctx context.Context, attrs *lifecycle.PodAdmitAttributes) lifecycle.PodAdmitResult {
	return p.admit.Admit(ctx, attrs)
}

// imageGC is kubelet's ImageGC over the image store's garbage collection.
type imageGC func(ctx context.Context) error

func (f imageGC) DeleteUnusedImages(ctx context.Context) error {
	if f == nil {
		return nil
	}
	return f(ctx)
}

// containerGC is kubelet's ContainerGC, which pocketkube does not have:
// the exited containers of an ended pod keep their writable layers until
// the pod is deleted, where kubelet's container GC may remove them first.
type containerGC struct{}

func (containerGC) DeleteAllUnusedContainers(context.Context) error { return nil }
