package metricsserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	openapinamer "k8s.io/apiserver/pkg/endpoints/openapi"
	genericapiserver "k8s.io/apiserver/pkg/server"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/util/retry"
	"k8s.io/klog/v2"
	apiregistrationv1 "k8s.io/kube-aggregator/pkg/apis/apiregistration/v1"
	aggregator "k8s.io/kube-aggregator/pkg/client/clientset_generated/clientset"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/metrics-server/cmd/metrics-server/app/options"
	"sigs.k8s.io/metrics-server/pkg/api"
)

// The objects Run keeps, as metrics-server's own manifests name them.
const (
	Namespace      = "kube-system"
	ServiceName    = "metrics-server"
	APIServiceName = "v1beta1.metrics.k8s.io"
	// DefaultPort is the host port metrics-server serves on unless told
	// otherwise: the secure port of metrics-server's older manifests
	// (newer ones use 10250, the kubelet's).
	DefaultPort = 4443
	// MetricResolution is how often the kubelets are scraped: the
	// resolution metrics-server's manifests set (its flag's default is
	// 60 s), and the HPA's 15 s sync period.
	MetricResolution = 15 * time.Second
	// managedBy marks the EndpointSlice as ours, so that the EndpointSlice
	// controllers leave it alone.
	managedBy = "pocketkube"
)

// Config says how metrics-server is reached and with which credentials.
// Every field but Port is required.
type Config struct {
	// Kubeconfig is the admin kubeconfig metrics-server uses for the API
	// server and the kubelets.
	Kubeconfig string
	// Address is the host address metrics-server listens on, which the
	// EndpointSlice points at; the API server must reach it.
	Address net.IP
	// Port is the port it listens on; default DefaultPort.
	Port int
	// CertFile and KeyFile are its serving certificate, for
	// pki.MetricsServerDNSName (the Service's <name>.<namespace>.svc, which
	// the aggregator checks), signed by the cluster CA.
	CertFile, KeyFile string
	// CAFile is the cluster CA: the APIService's caBundle and what the
	// kubelets' serving certificates are verified against.
	CAFile string
	// NodeName is the node of the server metrics-server runs on, which
	// its endpoint names.
	NodeName string
	// Several says the cluster may have several servers, each running
	// metrics-server: each publishes its own EndpointSlice
	// (ServiceName-NodeName) and keeps the others' readiness
	// (keepServerSlices); NodeName is then required.
	Several bool
}

// ensureRetry is how often Run tries again to create its objects.
const ensureRetry = time.Second

// Run runs metrics-server until ctx is done, after making the Service,
// its EndpointSlice and the APIService point at it.
func Run(ctx context.Context, cfg Config) error {
	if cfg.Kubeconfig == "" || cfg.Address == nil || cfg.CertFile == "" || cfg.KeyFile == "" || cfg.CAFile == "" {
		return errors.New("metricsserver: Kubeconfig, Address, CertFile, KeyFile and CAFile are required")
	}
	if cfg.Several && cfg.NodeName == "" {
		return errors.New("metricsserver: NodeName is required with several servers")
	}
	if cfg.Port == 0 {
		cfg.Port = DefaultPort
	}
	o := options.NewOptions()
	o.Kubeconfig = cfg.Kubeconfig
	o.MetricResolution = MetricResolution
	o.SecureServing.BindAddress = cfg.Address
	o.SecureServing.BindPort = cfg.Port
	o.SecureServing.ServerCert.CertKey.CertFile = cfg.CertFile
	o.SecureServing.ServerCert.CertKey.KeyFile = cfg.KeyFile
	o.Authentication.RemoteKubeConfigFile = cfg.Kubeconfig
	o.Authorization.RemoteKubeConfigFile = cfg.Kubeconfig
	o.KubeletClient.KubeletUseNodeStatusPort = true
	o.KubeletClient.KubeletCAFile = cfg.CAFile
	o.KubeletClient.KubeletPreferredAddressTypes = []string{string(corev1.NodeInternalIP), string(corev1.NodeExternalIP), string(corev1.NodeHostName)}
	// Options.Validate would also apply its logging options to the
	// process' klog, which is the control plane's to configure.
	if errs := o.KubeletClient.Validate(); len(errs) > 0 {
		return fmt.Errorf("metrics-server options: %w", errors.Join(errs...))
	}
	serverCfg, err := o.ServerConfig()
	if err != nil {
		return fmt.Errorf("configure metrics-server: %w", err)
	}
	// metrics-server's generated OpenAPI definitions are keyed by Go
	// package path; the v0.37 types name their models by
	// OpenAPIModelName (io.k8s.metrics...), which only k8s.io/kubernetes'
	// definitions of the same release are keyed by; openAPIDefinitions
	// keeps only those metrics-server serves.
	apiCfg := serverCfg.Apiserver
	namer := openapinamer.NewDefinitionNamer(api.Scheme)
	v2, v3 := genericapiserver.DefaultOpenAPIConfig(openAPIDefinitions, namer), genericapiserver.DefaultOpenAPIV3Config(openAPIDefinitions, namer)
	v2.Info, v3.Info = apiCfg.OpenAPIConfig.Info, apiCfg.OpenAPIV3Config.Info
	apiCfg.OpenAPIConfig, apiCfg.OpenAPIV3Config = v2, v3
	srv, err := serverCfg.Complete()
	if err != nil {
		return fmt.Errorf("build metrics-server: %w", err)
	}
	// Until the objects are in place: an API server that cannot write
	// yet (its etcd between leaders, a quorum coming back) must not end
	// the server, whose other parts wait for the same etcd.
	if err := wait.PollUntilContextCancel(ctx, ensureRetry, true, func(ctx context.Context) (bool, error) {
		err := ensureObjects(ctx, cfg)
		if err != nil {
			klog.FromContext(ctx).Info("Ensuring the metrics-server objects, will retry", "err", err)
		}
		return err == nil, nil
	}); err != nil {
		return nil // ctx is done
	}
	klog.FromContext(ctx).Info("Starting metrics-server", "address", net.JoinHostPort(cfg.Address.String(), fmt.Sprint(cfg.Port)))
	if cfg.Several {
		client, _, err := clients(cfg.Kubeconfig)
		if err != nil {
			return err
		}
		go keepServerSlices(ctx, client, cfg)
	}
	if err := srv.RunUntil(ctx.Done()); err != nil {
		return fmt.Errorf("metrics-server: %w", err)
	}
	return nil
}

// ensureObjects creates or updates the Service, its EndpointSlice and the
// APIService that route metrics.k8s.io to this process.
func ensureObjects(ctx context.Context, cfg Config) error {
	client, agg, err := clients(cfg.Kubeconfig)
	if err != nil {
		return err
	}
	ca, err := os.ReadFile(cfg.CAFile)
	if err != nil {
		return fmt.Errorf("read cluster CA: %w", err)
	}
	labels := map[string]string{"k8s-app": "metrics-server"}
	port := int32(cfg.Port)
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: ServiceName, Namespace: Namespace, Labels: labels},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{
			Name: "https", Protocol: corev1.ProtocolTCP, Port: 443, TargetPort: intstr.FromInt32(port),
		}}},
	}
	if err := apply(ctx, "Service", svc.Name,
		func() error {
			_, err := client.CoreV1().Services(Namespace).Create(ctx, svc, metav1.CreateOptions{})
			return err
		},
		func() error {
			cur, err := client.CoreV1().Services(Namespace).Get(ctx, svc.Name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			cur.Labels, cur.Spec.Selector, cur.Spec.Ports = labels, nil, svc.Spec.Ports
			_, err = client.CoreV1().Services(Namespace).Update(ctx, cur, metav1.UpdateOptions{})
			return err
		}); err != nil {
		return err
	}
	slice := desiredSlice(cfg, true)
	if err := apply(ctx, "EndpointSlice", slice.Name,
		func() error {
			_, err := client.DiscoveryV1().EndpointSlices(Namespace).Create(ctx, slice, metav1.CreateOptions{})
			return err
		},
		func() error {
			cur, err := client.DiscoveryV1().EndpointSlices(Namespace).Get(ctx, slice.Name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			cur.Labels, cur.AddressType, cur.Endpoints, cur.Ports = slice.Labels, slice.AddressType, slice.Endpoints, slice.Ports
			_, err = client.DiscoveryV1().EndpointSlices(Namespace).Update(ctx, cur, metav1.UpdateOptions{})
			return err
		}); err != nil {
		return err
	}
	api := &apiregistrationv1.APIService{
		ObjectMeta: metav1.ObjectMeta{Name: APIServiceName, Labels: labels},
		Spec: apiregistrationv1.APIServiceSpec{
			Service:              &apiregistrationv1.ServiceReference{Namespace: Namespace, Name: ServiceName, Port: ptr.To[int32](443)},
			Group:                "metrics.k8s.io",
			Version:              "v1beta1",
			CABundle:             ca,
			GroupPriorityMinimum: 100,
			VersionPriority:      100,
		},
	}
	return apply(ctx, "APIService", api.Name,
		func() error {
			_, err := agg.ApiregistrationV1().APIServices().Create(ctx, api, metav1.CreateOptions{})
			return err
		},
		func() error {
			cur, err := agg.ApiregistrationV1().APIServices().Get(ctx, api.Name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			cur.Labels, cur.Spec = labels, api.Spec
			_, err = agg.ApiregistrationV1().APIServices().Update(ctx, cur, metav1.UpdateOptions{})
			return err
		})
}

// apply creates an object, or updates it when it exists.
func apply(ctx context.Context, kind, name string, create, update func() error) error {
	err := create()
	if apierrors.IsAlreadyExists(err) {
		// Each update reads the object again: another server's
		// metrics-server, or the aggregator's availability controller
		// writing the APIService's status, may have written it meanwhile
		// (a conflict here ended a server that started beside another).
		err = retry.RetryOnConflict(retry.DefaultRetry, update)
	}
	if err != nil {
		return fmt.Errorf("ensure %s %s: %w", kind, name, err)
	}
	klog.FromContext(ctx).V(2).Info("Ensured metrics-server object", "kind", kind, "name", name)
	return nil
}

// RemoveAPIService deletes the APIService a run with metrics on left, so
// that a cluster with metrics disabled does not advertise an API nobody
// serves. The Service and its EndpointSlice stay: they route nowhere.
func RemoveAPIService(ctx context.Context, kubeconfig string) error {
	_, agg, err := clients(kubeconfig)
	if err != nil {
		return err
	}
	err = agg.ApiregistrationV1().APIServices().Delete(ctx, APIServiceName, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete APIService %s: %w", APIServiceName, err)
	}
	return nil
}

func clients(kubeconfig string) (kubernetes.Interface, aggregator.Interface, error) {
	rc, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, nil, fmt.Errorf("load kubeconfig: %w", err)
	}
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, nil, err
	}
	agg, err := aggregator.NewForConfig(rc)
	if err != nil {
		return nil, nil, err
	}
	return client, agg, nil
}

// sliceName is the name of the EndpointSlice of cfg's metrics-server: the
// Service's name for a single server, one per server's node with several.
func sliceName(cfg Config) string {
	if !cfg.Several {
		return ServiceName
	}
	return ServiceName + "-" + cfg.NodeName
}

// desiredSlice is the EndpointSlice that routes the Service to cfg's
// metrics-server, its endpoint ready or not.
func desiredSlice(cfg Config, ready bool) *discoveryv1.EndpointSlice {
	family := discoveryv1.AddressTypeIPv4
	if cfg.Address.To4() == nil {
		family = discoveryv1.AddressTypeIPv6
	}
	port := int32(cfg.Port)
	ep := discoveryv1.Endpoint{
		Addresses:  []string{cfg.Address.String()},
		Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(ready)},
	}
	if cfg.NodeName != "" {
		ep.NodeName = ptr.To(cfg.NodeName)
	}
	return &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: sliceName(cfg), Namespace: Namespace, Labels: map[string]string{
			discoveryv1.LabelServiceName: ServiceName, discoveryv1.LabelManagedBy: managedBy,
		}},
		AddressType: family,
		Endpoints:   []discoveryv1.Endpoint{ep},
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("https"), Protocol: ptr.To(corev1.ProtocolTCP), Port: &port}},
	}
}
