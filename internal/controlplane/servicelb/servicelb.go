// Package servicelb gives Services of type LoadBalancer an address: the
// addresses of the cluster's nodes, where kube-proxy's rules already serve
// every Service port (as k3s's servicelb and cloud-provider-kind do for a
// local cluster).
//
// The controller is upstream's: k8s.io/cloud-provider's service
// controller, the one every cloud-controller-manager runs, with a
// [cloudprovider.LoadBalancer] of ours that has no load balancer to set up.
// EnsureLoadBalancer answers with the ready nodes' InternalIPs (the
// controller passes the nodes it would balance over) and refuses a Service
// that asks for a port and protocol another LoadBalancer Service holds
// (one that has its address already, else an older one): both would be the
// same address and port, and kube-proxy would send the traffic to only one. The controller then reports the refusal as
// its SyncLoadBalancerFailed event and retries with back-off, so the
// Service gets its address once the port is free. The refused Service
// also carries the condition LoadBalancerPortsError (True, reason
// PortInUse, the same message), which `kubectl get -o yaml` and a chart's
// readiness check can see without reading events; it is removed once the
// port is free. Services with a
// loadBalancerClass are left to whoever implements that class, as the
// service controller does for any cloud.
//
// With several servers (Config.LeaderElect), the controller runs only on
// the server that holds the Lease kube-system/LeaseName, as the
// controller-manager and the scheduler run there: two controllers would
// write the same Services' status and conditions from informers that are
// not in step. A server that loses the lease stops its controller and
// campaigns again; one that stops releases it, so that another takes over
// at once rather than after the lease's 15 s.
//
// Limits: a change of the nodes' addresses reaches a Service's status at
// its next sync (UpdateLoadBalancer cannot write status), not at once.
package servicelb

import (
	"context"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/uuid"
	utilfeature "k8s.io/apiserver/pkg/util/feature"
	corev1apply "k8s.io/client-go/applyconfigurations/core/v1"
	metav1apply "k8s.io/client-go/applyconfigurations/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	cloudprovider "k8s.io/cloud-provider"
	servicecontroller "k8s.io/cloud-provider/controllers/service"
	controllersmetrics "k8s.io/component-base/metrics/prometheus/controllers"
	"k8s.io/klog/v2"

	"github.com/pocketkube/pocketkube/internal/shutdown"
)

// ProviderName is the cloud provider name the service controller reports.
const ProviderName = "pocketkube"

// PortInUseReason is the reason of the LoadBalancerPortsError condition of
// a Service refused for a port an older LoadBalancer Service holds.
const PortInUseReason = "PortInUse"

// fieldManager owns the condition in the Services' status.
const fieldManager = "pocketkube-servicelb"

// LeaseName names the Lease in kube-system that the servers' controllers
// elect their leader with (Config.LeaderElect).
const LeaseName = "pocketkube-servicelb"

// Upstream components' leader-election timing (component-base's
// defaults for --leader-elect-lease-duration, -renew-deadline and
// -retry-period).
const (
	leaseDuration = 15 * time.Second
	renewDeadline = 10 * time.Second
	retryPeriod   = 2 * time.Second
)

// Config says how the controller runs. The zero Config runs it at once,
// for a single server.
type Config struct {
	// LeaderElect runs the controller only while this process holds the
	// Lease kube-system/LeaseName, for a cluster of several servers.
	LeaderElect bool
	// Identity is this process's name in the Lease; default the
	// hostname and a random suffix, as upstream's components.
	Identity string
}

// Run runs the service controller with client until ctx is done.
func Run(ctx context.Context, client kubernetes.Interface, cfg Config) error {
	if !cfg.LeaderElect {
		return run(ctx, client)
	}
	id := cfg.Identity
	if id == "" {
		host, err := os.Hostname()
		if err != nil {
			return fmt.Errorf("servicelb leader election identity: %w", err)
		}
		id = host + "_" + string(uuid.NewUUID())
	}
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Namespace: metav1.NamespaceSystem, Name: LeaseName},
		Client:     client.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: id},
	}
	logger := klog.FromContext(ctx)
	for ctx.Err() == nil {
		// The elector calls OnStartedLeading in a goroutine and does not
		// wait for it; the term runs here instead, so that two terms
		// never overlap and Run returns only once the last has ended.
		leading := make(chan context.Context, 1)
		elector, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
			Lock:          lock,
			LeaseDuration: leaseDuration,
			RenewDeadline: renewDeadline,
			RetryPeriod:   retryPeriod,
			// A stopping server hands the lease over at once.
			ReleaseOnCancel: true,
			Name:            LeaseName,
			Callbacks: leaderelection.LeaderCallbacks{
				OnStartedLeading: func(lctx context.Context) { leading <- lctx },
				OnStoppedLeading: func() {},
			},
		})
		if err != nil {
			return fmt.Errorf("servicelb leader election: %w", err)
		}
		// The elector's context ends only once the term has: the lease
		// is released (ReleaseOnCancel) after the controller stopped,
		// never while it still writes.
		ectx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		electorDone := make(chan struct{})
		go func() {
			defer close(electorDone)
			elector.Run(ectx)
		}()
		select {
		case lctx := <-leading:
			logger.V(1).Info("Leading the LoadBalancer service controller", "lease", LeaseName, "identity", id)
			// The term ends with the lease (lctx) or with Run's ctx.
			tctx, tcancel := context.WithCancel(lctx)
			stop := context.AfterFunc(ctx, tcancel)
			err = run(tctx, client)
			stop()
			tcancel()
		case <-electorDone:
		case <-ctx.Done():
		}
		cancel()
		<-electorDone
		if err != nil {
			return err
		}
		if ctx.Err() == nil {
			// Its state is the API's: a new term starts from fresh
			// informers.
			logger.Info("Lost the LoadBalancer service controller's lease, campaigning again", "lease", LeaseName)
		}
	}
	return nil
}

// run runs the service controller until ctx is done.
func run(ctx context.Context, client kubernetes.Interface) error {
	factory := informers.NewSharedInformerFactory(client, 0)
	services := factory.Core().V1().Services()
	cloud := &provider{lb: &loadBalancer{services: services.Lister(), client: client}}
	c, err := servicecontroller.New(cloud, client, services, factory.Core().V1().Nodes(), ProviderName, utilfeature.DefaultFeatureGate)
	if err != nil {
		return fmt.Errorf("create service controller: %w", err)
	}
	factory.Start(ctx.Done())
	defer shutdown.Informers(klog.FromContext(ctx), shutdown.InformerWait, factory)
	klog.FromContext(ctx).V(1).Info("Starting the LoadBalancer service controller")
	c.Run(ctx, 1, controllersmetrics.NewControllerManagerMetrics("pocketkube"))
	return nil
}

// loadBalancer is the node addresses as every LoadBalancer Service's
// address.
type loadBalancer struct {
	services corelisters.ServiceLister
	client   kubernetes.Interface
}

var _ cloudprovider.LoadBalancer = (*loadBalancer)(nil)

func (l *loadBalancer) GetLoadBalancer(_ context.Context, _ string, svc *v1.Service) (*v1.LoadBalancerStatus, bool, error) {
	return &svc.Status.LoadBalancer, len(svc.Status.LoadBalancer.Ingress) > 0, nil
}

func (l *loadBalancer) GetLoadBalancerName(_ context.Context, _ string, svc *v1.Service) string {
	return cloudprovider.DefaultLoadBalancerName(svc)
}

func (l *loadBalancer) EnsureLoadBalancer(ctx context.Context, _ string, svc *v1.Service, nodes []*v1.Node) (*v1.LoadBalancerStatus, error) {
	if err := l.ensurePorts(ctx, svc); err != nil {
		return nil, err
	}
	return Status(nodes), nil
}

func (l *loadBalancer) UpdateLoadBalancer(ctx context.Context, _ string, svc *v1.Service, _ []*v1.Node) error {
	return l.ensurePorts(ctx, svc)
}

func (l *loadBalancer) EnsureLoadBalancerDeleted(ctx context.Context, _ string, svc *v1.Service) error {
	// A Service that stops being a LoadBalancer keeps no condition of ours.
	return l.setPortsCondition(ctx, svc, nil)
}

// ensurePorts checks svc's ports and keeps its LoadBalancerPortsError
// condition in step: set while refused, gone once the ports are free.
func (l *loadBalancer) ensurePorts(ctx context.Context, svc *v1.Service) error {
	clash := l.checkPorts(svc)
	if err := l.setPortsCondition(ctx, svc, clash); err != nil {
		return err
	}
	return clash
}

// setPortsCondition writes svc's LoadBalancerPortsError condition for
// clash (nil: no condition) when it differs from what svc has, with
// server-side apply: the service controller's patches of
// status.loadBalancer and other owners' conditions are left alone.
func (l *loadBalancer) setPortsCondition(ctx context.Context, svc *v1.Service, clash error) error {
	have := meta.FindStatusCondition(svc.Status.Conditions, v1.LoadBalancerPortsError)
	if clash == nil && (have == nil || have.Reason != PortInUseReason) {
		return nil
	}
	if clash != nil && have != nil && have.Status == metav1.ConditionTrue && have.Reason == PortInUseReason && have.Message == clash.Error() {
		return nil
	}
	status := corev1apply.ServiceStatus()
	if clash != nil {
		status.WithConditions(metav1apply.Condition().
			WithType(v1.LoadBalancerPortsError).
			WithStatus(metav1.ConditionTrue).
			WithReason(PortInUseReason).
			WithMessage(clash.Error()).
			WithObservedGeneration(svc.Generation).
			WithLastTransitionTime(metav1.Now()))
	}
	apply := corev1apply.Service(svc.Name, svc.Namespace).WithStatus(status)
	if _, err := l.client.CoreV1().Services(svc.Namespace).ApplyStatus(ctx, apply, metav1.ApplyOptions{FieldManager: fieldManager, Force: true}); err != nil {
		return fmt.Errorf("set condition %s of Service %s/%s: %w", v1.LoadBalancerPortsError, svc.Namespace, svc.Name, err)
	}
	return nil
}

// checkPorts refuses svc when another LoadBalancer Service holds one of its
// ports: see holdsBefore for which of two wins.
func (l *loadBalancer) checkPorts(svc *v1.Service) error {
	all, err := l.services.List(labels.Everything())
	if err != nil {
		return err
	}
	for _, other := range all {
		if other.UID == svc.UID || !servedHere(other) || other.DeletionTimestamp != nil || !holdsBefore(other, svc) {
			continue
		}
		for _, p := range svc.Spec.Ports {
			for _, op := range other.Spec.Ports {
				if p.Port == op.Port && protocol(p) == protocol(op) {
					return fmt.Errorf("port %d/%s is already used by LoadBalancer Service %s/%s on the same node addresses",
						p.Port, protocol(p), other.Namespace, other.Name)
				}
			}
		}
	}
	return nil
}

// servedHere says whether svc is a LoadBalancer Service this controller
// gives an address (no loadBalancerClass, as the service controller
// decides).
func servedHere(svc *v1.Service) bool {
	return svc.Spec.Type == v1.ServiceTypeLoadBalancer && svc.Spec.LoadBalancerClass == nil
}

// holdsBefore says whether a keeps a port that a and b both ask for: the
// one that already has its address keeps it (a Service created in the same
// second as the holder must not take the port from it by its name), then
// the older by creation time, then by namespace/name.
func holdsBefore(a, b *v1.Service) bool {
	if ha, hb := len(a.Status.LoadBalancer.Ingress) > 0, len(b.Status.LoadBalancer.Ingress) > 0; ha != hb {
		return ha
	}
	return older(a, b)
}

func older(a, b *v1.Service) bool {
	if !a.CreationTimestamp.Equal(&b.CreationTimestamp) {
		return a.CreationTimestamp.Before(&b.CreationTimestamp)
	}
	return a.Namespace+"/"+a.Name < b.Namespace+"/"+b.Name
}

func protocol(p v1.ServicePort) v1.Protocol {
	if p.Protocol == "" {
		return v1.ProtocolTCP
	}
	return p.Protocol
}

// Status is the LoadBalancer status for a Service served on nodes: their
// InternalIPs, IPv4 first, each once, mode VIP (kube-proxy also catches the
// traffic pods send to them).
func Status(nodes []*v1.Node) *v1.LoadBalancerStatus {
	var ips []string
	for _, n := range nodes {
		for _, a := range n.Status.Addresses {
			if a.Type == v1.NodeInternalIP && net.ParseIP(a.Address) != nil && !slices.Contains(ips, a.Address) {
				ips = append(ips, a.Address)
			}
		}
	}
	slices.SortFunc(ips, func(a, b string) int {
		a4, b4 := net.ParseIP(a).To4() != nil, net.ParseIP(b).To4() != nil
		if a4 != b4 {
			if a4 {
				return -1
			}
			return 1
		}
		return strings.Compare(a, b)
	})
	st := &v1.LoadBalancerStatus{}
	vip := v1.LoadBalancerIPModeVIP
	for _, ip := range ips {
		st.Ingress = append(st.Ingress, v1.LoadBalancerIngress{IP: ip, IPMode: &vip})
	}
	return st
}

// provider is a cloud with load balancers only.
type provider struct {
	lb *loadBalancer
}

var _ cloudprovider.Interface = (*provider)(nil)

func (p *provider) Initialize(cloudprovider.ControllerClientBuilder, <-chan struct{}) {}
func (p *provider) LoadBalancer() (cloudprovider.LoadBalancer, bool)                  { return p.lb, true }
func (p *provider) Instances() (cloudprovider.Instances, bool)                        { return nil, false }
func (p *provider) InstancesV2() (cloudprovider.InstancesV2, bool)                    { return nil, false }
func (p *provider) Zones() (cloudprovider.Zones, bool)                                { return nil, false }
func (p *provider) Clusters() (cloudprovider.Clusters, bool)                          { return nil, false }
func (p *provider) Routes() (cloudprovider.Routes, bool)                              { return nil, false }
func (p *provider) ProviderName() string                                              { return ProviderName }
func (p *provider) HasClusterID() bool                                                { return true }
