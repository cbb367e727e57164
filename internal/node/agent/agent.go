package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"golang.org/x/time/rate"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/flowcontrol"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"
	"k8s.io/kubernetes/pkg/kubelet/clustertrustbundle"
	"k8s.io/kubernetes/pkg/kubelet/podcertificate"
	"k8s.io/kubernetes/pkg/security/apparmor"
	"k8s.io/utils/clock"

	"github.com/pocketkube/pocketkube/internal/node/machine"
	"github.com/pocketkube/pocketkube/internal/node/prober"
	"github.com/pocketkube/pocketkube/internal/node/pullcreds"
	"github.com/pocketkube/pocketkube/internal/node/token"
	"github.com/pocketkube/pocketkube/internal/shutdown"
)

// Config is what an Agent needs. Fields without a default are required.
type Config struct {
	// Client talks to the API server with the node's credentials.
	Client kubernetes.Interface
	// EventClient records the agent's events. As kubelet's eventClient
	// (--event-qps, --event-burst) it should have a rate limiter of its
	// own: a pod start records three events, and in Client's limiter
	// they would wait ahead of the pods' token requests and status
	// writes. Defaults to Client.
	EventClient kubernetes.Interface
	// NodeName is the Node's name: the host's lowercase hostname.
	NodeName string
	// Hostname is the kubernetes.io/hostname label and the Hostname
	// address. Defaults to NodeName.
	Hostname string
	// NodeIPs are the node's InternalIP addresses, primary first.
	NodeIPs []net.IP
	// KubeletPort is where the kubelet API serves. Defaults to 10250.
	KubeletPort int32
	// KubeletVersion is reported as nodeInfo.kubeletVersion.
	KubeletVersion string
	// Machine is the host's facts (machine.Read).
	Machine machine.Machine

	// DataDir holds the node's per-pod files (etc-hosts, logs).
	DataDir string
	// Runtime, Images and Volumes run containers, provide their root
	// filesystems and prepare their volumes.
	Runtime Runtime
	Images  Images
	Volumes Volumes
	// NewNetwork makes pod networking once the node has its pod CIDR.
	NewNetwork func(ctx context.Context, podCIDR string) (Network, error)
	// ClusterDNS are the cluster DNS server addresses written into pods'
	// resolv.conf; none means pods get the host's (kubelet's fallback).
	ClusterDNS []net.IP
	// ClusterDomain defaults to "cluster.local".
	ClusterDomain string
	// SeccompDefault is kubelet's --seccomp-default: containers that set
	// no seccompProfile get RuntimeDefault instead of Unconfined.
	// Localhost profiles are read from DataDir/seccomp, as kubelet reads
	// them from <root-dir>/seccomp.
	SeccompDefault bool
	// AppArmor tells whether the host can enforce AppArmor profiles, as
	// kubelet's validator. Defaults to apparmor.NewValidator().
	AppArmor apparmor.Validator

	// Pressure is kubelet's eviction manager (internal/node/eviction's
	// Pressure): it sets the node's MemoryPressure, DiskPressure and
	// PIDPressure conditions and admits pods first. nil: no pressure
	// conditions are ever True, every pod is admitted.
	Pressure Pressure

	// Workers is how many pods sync at once. Defaults to 8: a pod's
	// first sync spends much of its time waiting (for runc, the CNI
	// plugins, the API server), and with 4 a 100-pod burst on 2 cores
	// queued its pods for seconds behind 4 syncs while a CPU was idle
	// part of the time; 8 started the burst sooner in every run measured
	// (docs/BENCHMARKS.md, "100 pods: where the CPU goes"). Kubelet has
	// no limit: a goroutine per pod.
	Workers int
	// PullCredentials, when set, is kubelet's image pull manager
	// (KubeletEnsureSecretPulledImages): an image present on the node is
	// used by a pod only if its policy and records allow it; otherwise
	// the pod pulls it with its own credentials. nil lets every pod use
	// every image present.
	PullCredentials *pullcreds.Manager
	// Clock defaults to the real clock.
	Clock clock.Clock
}

// Agent runs the node: registration, lease, and the pods bound to it.
type Agent struct {
	cfg      Config
	node     *nodeStatus
	recorder record.EventRecorder

	informers  informers.SharedInformerFactory
	services   informers.SharedInformerFactory
	podLister  corelisters.PodLister
	podsSynced cache.InformerSynced
	queue      workqueue.TypedRateLimitingInterface[cache.ObjectName]

	serviceLister  corelisters.ServiceLister
	servicesSynced cache.InformerSynced
	objects        *apiObjects
	network        Network
	watches        *objectWatches
	prober         *prober.Manager

	restartBackoff *flowcontrol.Backoff
	pullBackoff    *flowcontrol.Backoff
	prevPullErr    sync.Map // back-off key → "ErrImagePull: <last pull error>"

	// evictions holds the pods the eviction manager asked to evict, by
	// UID (*eviction), until the agent forgets the pod.
	evictions sync.Map

	// mu guards known and states: the pods the agent runs, by UID, with
	// their key, so a deleted pod's containers can be found after it left
	// the lister.
	mu     sync.Mutex
	known  map[string]cache.ObjectName
	states map[string]*podState

	// terminated holds, by key, the UID of a pod the agent stopped,
	// cleaned up and deleted for good while a finalizer keeps it in the
	// API: as kubelet's pod workers, nothing of it is done again. An
	// entry goes when the key's pod is gone or another UID. Used only by
	// the worker that syncs the key.
	terminated sync.Map // cache.ObjectName → types.UID

	// heldEvents holds, by UID, the events of a pod whose network is
	// attaching (*heldEvents; see joinNetwork).
	heldEvents sync.Map
}

// New checks cfg and returns an Agent that Run starts.
func New(cfg Config) (*Agent, error) {
	switch {
	case cfg.Client == nil:
		return nil, errors.New("agent: Client is required")
	case cfg.NodeName == "":
		return nil, errors.New("agent: NodeName is required")
	case len(cfg.NodeIPs) == 0:
		return nil, errors.New("agent: NodeIPs is required")
	case cfg.Runtime == nil || cfg.Images == nil || cfg.Volumes == nil || cfg.NewNetwork == nil:
		return nil, errors.New("agent: Runtime, Images, Volumes and NewNetwork are required")
	case cfg.DataDir == "":
		return nil, errors.New("agent: DataDir is required")
	}
	if cfg.ClusterDomain == "" {
		cfg.ClusterDomain = "cluster.local"
	}
	if cfg.Hostname == "" {
		cfg.Hostname = cfg.NodeName
	}
	if cfg.KubeletPort == 0 {
		cfg.KubeletPort = 10250
	}
	if cfg.Workers == 0 {
		cfg.Workers = 8
	}
	if cfg.EventClient == nil {
		cfg.EventClient = cfg.Client
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	if cfg.AppArmor == nil {
		cfg.AppArmor = apparmor.NewValidator()
	}
	a := &Agent{
		cfg:            cfg,
		known:          map[string]cache.ObjectName{},
		states:         map[string]*podState{},
		restartBackoff: newBackOff(cfg.Clock),
		pullBackoff:    newBackOff(cfg.Clock),
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(podRateLimiter(),
			workqueue.TypedRateLimitingQueueConfig[cache.ObjectName]{Name: "pods"}),
	}
	a.watches = newObjectWatches(cfg.Client, func(k cache.ObjectName) { a.queue.Add(k) })
	a.objects = &apiObjects{client: cfg.Client, watches: a.watches, allocatable: a.allocatable, tokens: token.NewManager(cfg.Client, cfg.Clock),
		podCerts: &podcertificate.NoOpManager{}}
	a.informers = informers.NewSharedInformerFactoryWithOptions(cfg.Client, 0,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("spec.nodeName", cfg.NodeName).String()
		}))
	podInformer := a.informers.Core().V1().Pods()
	a.podLister = podInformer.Lister()
	a.podsSynced = podInformer.Informer().HasSynced
	if err := podInformer.Informer().AddIndexers(cache.Indexers{podUIDIndex: podUIDIndexFunc}); err != nil {
		return nil, fmt.Errorf("index pods: %w", err)
	}
	// The pod certificate manager learns of pods as kubelet's does
	// (HandlePodAdditions, HandlePodRemoves); tracking only queues the
	// pod's sources on the manager's own queue.
	_, err := podInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) {
			a.enqueue(obj)
			if pod, ok := obj.(*v1.Pod); ok {
				a.objects.podCerts.TrackPod(context.Background(), pod)
			}
		},
		UpdateFunc: func(old, cur any) {
			if old.(*v1.Pod).ResourceVersion == cur.(*v1.Pod).ResourceVersion {
				return
			}
			a.enqueue(cur)
		},
		DeleteFunc: func(obj any) {
			a.enqueue(obj)
			if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = t.Obj
			}
			if pod, ok := obj.(*v1.Pod); ok {
				a.objects.podCerts.ForgetPod(context.Background(), pod)
			}
		},
	})
	if err != nil {
		return nil, fmt.Errorf("watch pods: %w", err)
	}
	// Services feed the pods' service environment variables; a node may
	// list them all (the system:node role), pods only its own.
	a.services = informers.NewSharedInformerFactory(cfg.Client, 0)
	a.serviceLister = a.services.Core().V1().Services().Lister()
	a.servicesSynced = a.services.Core().V1().Services().Informer().HasSynced
	return a, nil
}

// newBackOff is kubelet's back-off, timed by clock, the clock the rest of
// the agent reads.
func newBackOff(clock clock.Clock) *flowcontrol.Backoff {
	b := flowcontrol.NewBackOff(backOffInitial, backOffMax)
	b.Clock = clock
	return b
}

func (a *Agent) enqueue(obj any) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	pod, ok := obj.(*v1.Pod)
	if !ok {
		return
	}
	a.queue.Add(cache.MetaObjectToName(pod))
}

// Run registers the node, then runs its pods until ctx is done; then it
// stops every pod's containers gracefully and returns.
func (a *Agent) Run(ctx context.Context) error {
	defer utilruntime.HandleCrash()
	logger := klog.FromContext(ctx)

	// Stopped while starting, a step fails with what the stop did to it
	// (a command killed by ctx's end): a stop, with nothing to stop yet.
	startErr := func(err error) error {
		if ctx.Err() != nil {
			logger.V(2).Info("Stopped while starting", "err", err)
			return nil
		}
		return err
	}
	runtimeVersion, err := a.cfg.Runtime.Version(ctx)
	if err != nil {
		return startErr(fmt.Errorf("runtime version: %w", err))
	}
	// kubelet's: its informer starts on first use, for the API version
	// the server has; cache size as kubelet's (2 × max pods).
	a.objects.trustBundles = clustertrustbundle.NewLazyInformerManager(ctx, a.cfg.Client, 2*maxPods)
	a.node = &nodeStatus{
		client: a.cfg.Client,
		clock:  a.cfg.Clock,
		info: nodeInfo{
			name:           a.cfg.NodeName,
			hostname:       a.cfg.Hostname,
			ips:            a.cfg.NodeIPs,
			port:           a.cfg.KubeletPort,
			kubeletVersion: a.cfg.KubeletVersion,
			runtimeVersion: "runc://" + runtimeVersion,
			machine:        a.cfg.Machine,
		},
		pressure: a.cfg.Pressure,
	}
	if err := wait.PollUntilContextCancel(ctx, time.Second, true, func(ctx context.Context) (bool, error) {
		if err := a.node.register(ctx); err != nil {
			logger.Error(err, "Registering node; will retry")
			return false, nil
		}
		return true, nil
	}); err != nil {
		a.stopLeftovers(ctx) // cancelled before registering
		return nil
	}

	broadcaster, recorder := newRecorder(ctx, a.cfg.EventClient, a.cfg.NodeName)
	defer broadcaster.Shutdown()
	a.recorder = recorder
	a.node.recorder = recorder
	if a.prober, err = prober.New(prober.Config{Exec: execSync{a.cfg.Runtime}, OnChange: a.EnqueueUID, Recorder: recorder}); err != nil {
		return err
	}
	defer a.prober.Close()
	a.startPodCertificates(ctx)

	statusCtx, stopStatus := context.WithCancel(ctx)
	defer stopStatus()
	go a.node.run(statusCtx)

	node, err := a.waitPodCIDR(ctx)
	if err != nil {
		a.stopLeftovers(ctx)
		return nil
	}
	if a.network, err = a.cfg.NewNetwork(ctx, node.Spec.PodCIDR); err != nil {
		if ctx.Err() != nil {
			a.stopLeftovers(ctx)
		}
		return startErr(fmt.Errorf("set up pod network for %s: %w", node.Spec.PodCIDR, err))
	}

	a.informers.Start(ctx.Done())
	a.services.Start(ctx.Done())
	defer shutdown.Informers(logger, informerStopWait, a.informers, a.services)
	if !cache.WaitForCacheSync(ctx.Done(), a.podsSynced, a.servicesSynced) {
		a.stopLeftovers(ctx)
		return nil
	}
	if err := a.adoptLeftovers(ctx); err != nil {
		logger.Error(err, "Listing pods left from an earlier run")
	}

	workCtx, stopWorkers := context.WithCancel(ctx)
	var workers sync.WaitGroup
	for range a.cfg.Workers {
		workers.Go(func() { wait.UntilWithContext(workCtx, a.runWorker, time.Second) })
	}
	logger.Info("Node agent running", "node", a.cfg.NodeName, "workers", a.cfg.Workers)
	<-ctx.Done()
	a.queue.ShutDown()
	stopWorkers()
	workers.Wait()
	a.stopAll(context.WithoutCancel(ctx))
	return nil
}

// maxSyncRetryDelay caps the delay before a failed syncPod is tried
// again: kubelet retries a failed pod sync after 10 s (its pod workers'
// backOffPeriod) and writes pending statuses every 10 s.
const maxSyncRetryDelay = 10 * time.Second

// podRateLimiter is the workqueue's default controller rate limiter with
// its per-pod exponential back-off capped at maxSyncRetryDelay instead of
// 1000 s: after the API server was unreachable for a while, the status
// the pod's sync could not write is written within 10 s of its return,
// as kubelet's status manager does, not after a back-off that grew as
// long as the outage.
func podRateLimiter() workqueue.TypedRateLimiter[cache.ObjectName] {
	return workqueue.NewTypedMaxOfRateLimiter(
		workqueue.NewTypedItemExponentialFailureRateLimiter[cache.ObjectName](5*time.Millisecond, maxSyncRetryDelay),
		&workqueue.TypedBucketRateLimiter[cache.ObjectName]{Limiter: rate.NewLimiter(rate.Limit(10), 100)},
	)
}

// informerStopWait bounds how long a stop waits for the informers.
const informerStopWait = shutdown.InformerWait

// waitPodCIDR waits until the node-ipam controller gave the node its pod
// CIDR: pod networking is configured from it, as on any cluster.
func (a *Agent) waitPodCIDR(ctx context.Context) (*v1.Node, error) {
	var node *v1.Node
	err := wait.PollUntilContextCancel(ctx, 100*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		n, err := a.cfg.Client.CoreV1().Nodes().Get(ctx, a.cfg.NodeName, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		node = n
		return n.Spec.PodCIDR != "", nil
	})
	return node, err
}

// adoptLeftovers queues the pods the manager still has state for after a
// restart: syncPod then either keeps running them or kills them. The logs
// of pods no longer bound here go.
func (a *Agent) adoptLeftovers(ctx context.Context) error {
	uids, err := a.leftoverUIDs(ctx)
	if err != nil {
		return err
	}
	pods, err := a.podLister.List(labels.Everything())
	if err != nil {
		return err
	}
	byUID := map[string]*v1.Pod{}
	for _, p := range pods {
		byUID[string(p.UID)] = p
	}
	for _, uid := range uids {
		if p, ok := byUID[uid]; ok {
			a.remember(p)
			continue
		}
		klog.FromContext(ctx).Info("Removing pod left from an earlier run", "podUID", uid)
		if err := a.killPod(ctx, &v1.Pod{ObjectMeta: metav1.ObjectMeta{UID: types.UID(uid)}}, 0); err != nil {
			klog.FromContext(ctx).Error(err, "Removing leftover pod", "podUID", uid)
		}
	}
	return a.removeOrphanedLogs(ctx, pods)
}

func (a *Agent) remember(pod *v1.Pod) {
	a.mu.Lock()
	a.known[string(pod.UID)] = cache.MetaObjectToName(pod)
	a.mu.Unlock()
}

func (a *Agent) forget(uid string) {
	a.mu.Lock()
	delete(a.known, uid)
	a.mu.Unlock()
}

// uidsFor returns the UIDs the agent runs under key.
func (a *Agent) uidsFor(key cache.ObjectName) []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var uids []string
	for uid, k := range a.known {
		if k == key {
			uids = append(uids, uid)
		}
	}
	return uids
}

// shutdownGracePeriod caps each pod's grace period when the node stops,
// as kubelet's shutdownGracePeriod does, so that Ctrl-C returns within the
// 10 s `pocketkube up` promises even with pods that ignore SIGTERM.
const shutdownGracePeriod = 3 * time.Second

// stopAll stops every pod on the node on shutdown, in parallel, each
// within its grace period capped at shutdownGracePeriod, as kubelet's
// graceful node shutdown does.
func (a *Agent) stopAll(ctx context.Context) {
	logger := klog.FromContext(ctx)
	a.mu.Lock()
	known := make(map[string]cache.ObjectName, len(a.known))
	for k, v := range a.known {
		known[k] = v
	}
	a.mu.Unlock()
	var wg sync.WaitGroup
	for uid, key := range known {
		pod, err := a.podLister.Pods(key.Namespace).Get(key.Name)
		if err != nil || string(pod.UID) != uid {
			pod = &v1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name, UID: types.UID(uid)}}
		}
		wg.Go(func() {
			if err := a.killPod(ctx, pod, min(gracePeriod(pod), shutdownGracePeriod)); err != nil {
				logger.Error(err, "Stopping pod", "pod", klog.KObj(pod))
			}
		})
	}
	wg.Wait()
	logger.Info("Stopped all pods", "count", len(known))
}

// stopLeftovers stops and removes the pods an earlier run left on the node
// (after a kill -9 or a crash) when the agent is stopped before it took
// them over (adoptLeftovers, once its caches synced): Ctrl-C stops every
// pod, whenever it comes. Without the API's copy of the pods, each gets
// the shutdown grace period and no preStop hook. The next start makes them
// again, as after any stop.
func (a *Agent) stopLeftovers(ctx context.Context) {
	ctx = context.WithoutCancel(ctx)
	logger := klog.FromContext(ctx)
	uids, err := a.cfg.Runtime.ListPods(ctx)
	if err != nil {
		logger.Error(err, "Listing the pods left from an earlier run, to stop them")
		return
	}
	var wg sync.WaitGroup
	for _, uid := range uids {
		wg.Go(func() {
			if err := a.killPod(ctx, &v1.Pod{ObjectMeta: metav1.ObjectMeta{UID: types.UID(uid)}}, shutdownGracePeriod); err != nil {
				logger.Error(err, "Stopping a pod left from an earlier run", "podUID", uid)
			}
		})
	}
	wg.Wait()
	if len(uids) > 0 {
		logger.Info("Stopped the pods left from an earlier run before taking them over", "count", len(uids))
	}
}

// gracePeriod is the pod's termination grace period: the deletion's when
// it is being deleted, else its spec's (default 30 s).
func gracePeriod(pod *v1.Pod) time.Duration {
	if pod.DeletionGracePeriodSeconds != nil {
		return time.Duration(*pod.DeletionGracePeriodSeconds) * time.Second
	}
	if pod.Spec.TerminationGracePeriodSeconds != nil {
		return time.Duration(*pod.Spec.TerminationGracePeriodSeconds) * time.Second
	}
	return 30 * time.Second
}

func (a *Agent) runWorker(ctx context.Context) {
	for a.processNextWorkItem(ctx) {
	}
}

func (a *Agent) processNextWorkItem(ctx context.Context) bool {
	key, shutdown := a.queue.Get()
	if shutdown {
		return false
	}
	defer a.queue.Done(key)
	requeue, err := a.syncPod(ctx, key)
	if err != nil {
		utilruntime.HandleErrorWithContext(ctx, err, "Syncing pod", "pod", key)
		a.queue.AddRateLimited(key)
		return true
	}
	a.queue.Forget(key)
	if requeue > 0 {
		a.queue.AddAfter(key, requeue)
	}
	return true
}

// EnqueueUID asks for the pod with this UID to be synced: the runtime
// calls it when a container exits, the prober when a result changes.
func (a *Agent) EnqueueUID(uid string) {
	a.mu.Lock()
	key, ok := a.known[uid]
	a.mu.Unlock()
	if ok {
		a.queue.Add(key)
	}
}

// leftoverUIDs lists the pods that the runtime, the network or the
// volumes still hold state for, e.g. after pocketkube was killed.
func (a *Agent) leftoverUIDs(ctx context.Context) ([]string, error) {
	seen := map[string]bool{}
	rt, err := a.cfg.Runtime.ListPods(ctx)
	if err != nil {
		return nil, err
	}
	nw, err := a.network.List(ctx)
	if err != nil {
		return nil, err
	}
	vol, err := a.cfg.Volumes.Pods()
	if err != nil {
		return nil, err
	}
	var uids []string
	for _, list := range [][]string{rt, nw, vol} {
		for _, uid := range list {
			if !seen[uid] {
				seen[uid] = true
				uids = append(uids, uid)
			}
		}
	}
	return uids, nil
}
