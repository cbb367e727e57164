// Package apiserver runs upstream kube-apiserver in this process.
//
// It is the only code that knows kube-apiserver's flags: Args turns a
// pocketkube Config into the command line kubeadm would give a control-plane
// node, and Run hands that command line to upstream's own options, Complete,
// Validate and Run, as cmd/kube-apiserver/app/testing/testserver.go does.
// Handlers, validation, admission, RBAC and discovery are therefore exactly
// upstream's.
//
// Caveats: upstream keeps process-wide state (feature gates, metrics
// registries, the component-globals registry), so Run may be called once per
// process. Run does not install a signal handler; cancel ctx to stop.
package apiserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/wait"
	genericapiserver "k8s.io/apiserver/pkg/server"
	schedulingclient "k8s.io/client-go/kubernetes/typed/scheduling/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
	"k8s.io/kubernetes/cmd/kube-apiserver/app/options"
	schedulingapiv1 "k8s.io/kubernetes/pkg/apis/scheduling/v1"
	rbacrest "k8s.io/kubernetes/pkg/registry/rbac/rest"
	schedulingrest "k8s.io/kubernetes/pkg/registry/scheduling/rest"

	"github.com/pocketkube/pocketkube/internal/controlplane/cmdline"
	"github.com/pocketkube/pocketkube/internal/pki"
)

// Config is what pocketkube decides about the API server.
type Config struct {
	// BindAddress and Port are where it serves HTTPS. Port is required.
	BindAddress net.IP
	Port        int
	// AdvertiseAddress is the address the kubernetes Service's endpoints
	// point at: one that pods can route to. Required.
	AdvertiseAddress net.IP
	// ServiceClusterIPRange is the CIDR ClusterIPs come from. Required.
	ServiceClusterIPRange string
	// EtcdServers are the storage endpoints. Required. EtcdCAFile,
	// EtcdCertFile and EtcdKeyFile secure them when set.
	EtcdServers                           []string
	EtcdCAFile, EtcdCertFile, EtcdKeyFile string
	// PKI holds the certificate and key files. Required.
	PKI pki.Paths
	// ServiceAccountIssuer is the tokens' iss claim and default audience.
	ServiceAccountIssuer string
}

// Validate reports the first missing required field.
func (c Config) Validate() error {
	switch {
	case c.Port <= 0 || c.Port > 65535:
		return fmt.Errorf("apiserver: port %d out of range", c.Port)
	case c.AdvertiseAddress == nil:
		return errors.New("apiserver: AdvertiseAddress is required")
	case c.ServiceClusterIPRange == "":
		return errors.New("apiserver: ServiceClusterIPRange is required")
	case len(c.EtcdServers) == 0:
		return errors.New("apiserver: EtcdServers is required")
	case c.PKI.CA == "":
		return errors.New("apiserver: PKI is required")
	case c.ServiceAccountIssuer == "":
		return errors.New("apiserver: ServiceAccountIssuer is required")
	}
	return nil
}

// Args returns kube-apiserver's command line for c, as kubeadm writes it in
// a control-plane static pod.
func Args(c Config) []string {
	bind := "0.0.0.0"
	if c.BindAddress != nil {
		bind = c.BindAddress.String()
	}
	args := []string{
		"--advertise-address=" + c.AdvertiseAddress.String(),
		"--bind-address=" + bind,
		"--secure-port=" + strconv.Itoa(c.Port),
		"--allow-privileged=true",
		"--anonymous-auth=true",
		"--authorization-mode=Node,RBAC",
		"--client-ca-file=" + c.PKI.CA,
		"--enable-admission-plugins=NodeRestriction",
		// The aggregated APIs (metrics-server) run on the host, behind
		// selector-less Services: dial their endpoints, not the ClusterIP,
		// which only the node's Service proxy routes.
		"--enable-aggregator-routing=true",
		"--enable-bootstrap-token-auth=true",
		"--etcd-servers=" + strings.Join(c.EtcdServers, ","),
		// The node's kubelet serving certificate is issued by the
		// cluster CA with the node's name and addresses (pki.Config
		// NodeName, NodeIPs): the API server verifies the kubelet it
		// hands logs, exec and port-forward to, instead of trusting
		// whatever answers at a Node's address.
		"--kubelet-certificate-authority=" + c.PKI.CA,
		"--kubelet-client-certificate=" + c.PKI.KubeletClient,
		"--kubelet-client-key=" + c.PKI.KubeletClientKey,
		"--kubelet-preferred-address-types=InternalIP,ExternalIP,Hostname",
		"--proxy-client-cert-file=" + c.PKI.FrontProxyClient,
		"--proxy-client-key-file=" + c.PKI.FrontProxyClientKey,
		"--requestheader-allowed-names=" + pki.FrontProxyClientUser,
		"--requestheader-client-ca-file=" + c.PKI.FrontProxyCA,
		"--requestheader-extra-headers-prefix=X-Remote-Extra-",
		"--requestheader-group-headers=X-Remote-Group",
		"--requestheader-username-headers=X-Remote-User",
		"--service-account-issuer=" + c.ServiceAccountIssuer,
		"--service-account-key-file=" + c.PKI.ServiceAccountPublicKey,
		"--service-account-signing-key-file=" + c.PKI.ServiceAccountKey,
		"--service-cluster-ip-range=" + c.ServiceClusterIPRange,
		// On stop, answer new requests 429 with Retry-After until the
		// requests in flight have drained, then give the open
		// connections 2 s (not the request timeout's 60 s) to go: a
		// client's open watch otherwise kept the API server from
		// returning for the whole stop timeout, and Ctrl-C took ~10 s.
		"--shutdown-send-retry-after=true",
		"--tls-cert-file=" + c.PKI.Serving,
		"--tls-private-key-file=" + c.PKI.ServingKey,
	}
	if c.EtcdCAFile != "" {
		args = append(args, "--etcd-cafile="+c.EtcdCAFile)
	}
	if c.EtcdCertFile != "" {
		args = append(args, "--etcd-certfile="+c.EtcdCertFile, "--etcd-keyfile="+c.EtcdKeyFile)
	}
	return args
}

// Options parses args into upstream's kube-apiserver options, exactly as
// the kube-apiserver command would.
func Options(args []string) (*options.ServerRunOptions, error) {
	s := options.NewServerRunOptions()
	if err := cmdline.Parse("kube-apiserver", s.Flags(), args); err != nil {
		return nil, err
	}
	return s, nil
}

// Run runs kube-apiserver until ctx is cancelled, then shuts it down
// gracefully and returns.
func Run(ctx context.Context, c Config) error {
	if err := c.Validate(); err != nil {
		return err
	}
	s, err := Options(Args(c))
	if err != nil {
		return err
	}
	if err := s.GenericServerRunOptions.ComponentGlobalsRegistry.Set(); err != nil {
		return fmt.Errorf("kube-apiserver feature gates: %w", err)
	}
	// As the kube-apiserver command does: its loopback clients must not log
	// the warnings it issues to itself.
	rest.SetDefaultWarningHandler(rest.NoWarnings{})
	completed, err := s.Complete(ctx)
	if err != nil {
		return fmt.Errorf("complete kube-apiserver options: %w", err)
	}
	if errs := completed.Validate(); len(errs) != 0 {
		return fmt.Errorf("validate kube-apiserver options: %w", utilerrors.NewAggregate(errs))
	}
	if err := run(ctx, completed); err != nil {
		return fmt.Errorf("kube-apiserver: %w", err)
	}
	return nil
}

// run is upstream's app.Run (cmd/kube-apiserver/app/server.go) with two
// post-start hooks swapped for copies that try at once instead of after
// upstream's 1 s poll interval: see priorityClassesHook and rbacHook.
func run(ctx context.Context, opts options.CompletedOptions) error {
	if opts.InformerName == nil {
		name, err := cache.NewInformerName("kube-apiserver")
		if err != nil {
			return err
		}
		opts.InformerName = name
	}
	config, err := app.NewConfig(opts)
	if err != nil {
		return err
	}
	// The hooks keep upstream's names (/readyz?verbose lists
	// poststarthook/scheduling/bootstrap-system-priority-classes and
	// poststarthook/rbac/bootstrap-roles, which upstream's health handlers
	// spec looks for): disabled in the kube-apiserver, added to the
	// aggregator at the head of the chain, whose set of disabled hooks
	// must then be one of its own (the configs share the kube-apiserver's).
	disabled := config.KubeAPIs.ControlPlane.Generic.DisabledPostStartHooks
	config.Aggregator.GenericConfig.DisabledPostStartHooks = sets.NewString(disabled.UnsortedList()...)
	disabled.Insert(schedulingrest.PostStartHookName, rbacrest.PostStartHookName)
	completed, err := config.Complete()
	if err != nil {
		return err
	}
	server, err := app.CreateServerChain(completed)
	if err != nil {
		return err
	}
	if err := server.GenericAPIServer.AddPostStartHook(schedulingrest.PostStartHookName, priorityClassesHook); err != nil {
		return err
	}
	if err := server.GenericAPIServer.AddPostStartHook(rbacrest.PostStartHookName, rbacHook(bootstrapPolicy())); err != nil {
		return err
	}
	prepared, err := server.PrepareRun()
	if err != nil {
		return err
	}
	return prepared.Run(ctx)
}

// priorityClassesHook creates system-node-critical and
// system-cluster-critical as upstream's hook does
// (pkg/registry/scheduling/rest AddSystemPriorityClasses), and /readyz
// waits for it as for upstream's. Upstream's polls with wait.Poll, whose
// first try comes after its 1 s interval: a second of every cold start,
// the largest single wait before /readyz (docs/BENCHMARKS.md, "Where the
// start goes"). This one tries at once and then every 100 ms, with the
// same 30 s limit and the same errors that end it.
func priorityClassesHook(hookCtx genericapiserver.PostStartHookContext) error {
	client, err := schedulingclient.NewForConfig(hookCtx.LoopbackClientConfig)
	if err != nil {
		return fmt.Errorf("unable to add default system priority classes: %w", err)
	}
	err = wait.PollUntilContextTimeout(hookCtx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		return ensurePriorityClasses(ctx, client)
	})
	if err != nil {
		return fmt.Errorf("unable to add default system priority classes: %w", err)
	}
	return nil
}

// ensurePriorityClasses is one try of upstream's loop: done when every
// system priority class exists; not done (try again) while the API server
// cannot serve the request yet; an error ends the hook.
func ensurePriorityClasses(ctx context.Context, client schedulingclient.SchedulingV1Interface) (bool, error) {
	for _, pc := range schedulingapiv1.SystemPriorityClasses() {
		_, err := client.PriorityClasses().Get(ctx, pc.Name, metav1.GetOptions{})
		if err == nil {
			continue
		}
		if !apierrors.IsNotFound(err) {
			klog.FromContext(ctx).Info("Unable to get PriorityClass, retrying", "priorityClass", pc.Name, "err", err)
			return false, nil
		}
		_, err = client.PriorityClasses().Create(ctx, pc, metav1.CreateOptions{})
		switch {
		case err == nil || apierrors.IsAlreadyExists(err):
			klog.FromContext(ctx).Info("Created PriorityClass", "priorityClass", pc.Name, "value", pc.Value)
		case apierrors.IsServiceUnavailable(err):
			klog.FromContext(ctx).Info("Unable to create PriorityClass, retrying", "priorityClass", pc.Name, "err", err)
			return false, nil
		default:
			return false, err
		}
	}
	return true, nil
}
