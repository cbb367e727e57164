package app

import (
	"github.com/coredns/caddy"
	"github.com/coredns/coredns/core/dnsserver"
	"go.etcd.io/etcd/server/v3/embed"
	"go.etcd.io/raft/v3"
	apiextensionsapiserver "k8s.io/apiextensions-apiserver/pkg/apiserver"
	genericapiserver "k8s.io/apiserver/pkg/server"
	cloudprovider "k8s.io/cloud-provider"
	controllermanager "k8s.io/controller-manager/app"
	aggregatorapiserver "k8s.io/kube-aggregator/pkg/apiserver"
	schedulerconfigv1 "k8s.io/kube-scheduler/config/v1"
	apiserverapp "k8s.io/kubernetes/cmd/kube-apiserver/app"
	controllermanagerapp "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	schedulerapp "k8s.io/kubernetes/cmd/kube-scheduler/app"
	"k8s.io/kubernetes/pkg/controller"
	"k8s.io/kubernetes/pkg/controlplane"
	"k8s.io/kubernetes/pkg/kubeapiserver"
	"k8s.io/kubernetes/pkg/proxy"
	registryrbac "k8s.io/kubernetes/pkg/registry/rbac"
	"k8s.io/kubernetes/pkg/scheduler"
	"k8s.io/kubernetes/pkg/serviceaccount"
	"k8s.io/kubernetes/plugin/pkg/admission/admit"
	"sigs.k8s.io/knftables"
	provisioncontroller "sigs.k8s.io/sig-storage-lib-external-provisioner/v13/controller"

	"github.com/pocketkube/pocketkube/internal/cluster"
	"github.com/pocketkube/pocketkube/internal/logs"
	"github.com/pocketkube/pocketkube/internal/node"
	"github.com/pocketkube/pocketkube/internal/node/coredns"
	"github.com/pocketkube/pocketkube/internal/node/serviceproxy"
)

// logComponents say which packages' log lines carry which tag (logs.Tag);
// the innermost frame of a logging goroutine that one of them holds names
// the component. Each package is named by one of its symbols, so that one
// that moves fails to compile here.
var logComponents = []logs.Component{
	{Tag: "pocketkube", Packages: []logs.Packages{logs.ModuleOf(cluster.Run)}},
	{Tag: "node", Packages: []logs.Packages{
		logs.PackageOf(node.Run),
		logs.ModuleOf(provisioncontroller.NewProvisionController), // each node's local-path provisioner's
	}},
	{Tag: "kube-proxy", Packages: []logs.Packages{
		logs.PackageOf(serviceproxy.Run),
		logs.PackageOf(proxy.NewEndpointSliceCache), // k8s.io/kubernetes/pkg/proxy
		logs.ModuleOf(knftables.New),
	}},
	{Tag: "dns", Packages: []logs.Packages{
		logs.PackageOf(coredns.Run),
		logs.ModuleOf(dnsserver.NewServer), // github.com/coredns/coredns
		logs.ModuleOf(caddy.Start),
	}},
	{Tag: "etcd", Packages: []logs.Packages{
		logs.ModuleOf(embed.StartEtcd), // go.etcd.io/etcd/server/v3
		logs.ModuleOf(raft.NewRawNode),
	}},
	{Tag: "apiserver", Packages: []logs.Packages{
		logs.PackageOf(apiserverapp.NewAPIServerCommand),
		logs.PackageOf(controlplane.DefaultAPIResourceConfigSource),
		logs.PackageOf(registryrbac.EscalationAllowed).Parent(), // k8s.io/kubernetes/pkg/registry
		logs.PackageOf(kubeapiserver.NewStorageFactoryConfig),
		logs.PackageOf(serviceaccount.JWTTokenGenerator),
		logs.PackageOf(admit.NewAlwaysAdmit).Parent().Parent(), // k8s.io/kubernetes/plugin/pkg
		logs.ModuleOf(genericapiserver.NewConfig),              // k8s.io/apiserver
		logs.ModuleOf(aggregatorapiserver.DefaultAPIResourceConfigSource),
		logs.ModuleOf(apiextensionsapiserver.DefaultAPIResourceConfigSource),
	}},
	{Tag: "controller-manager", Packages: []logs.Packages{
		logs.PackageOf(controllermanagerapp.NewControllerManagerCommand),
		logs.PackageOf(controller.NewControllerExpectations), // k8s.io/kubernetes/pkg/controller
		logs.ModuleOf(controllermanager.IsControllerEnabled),
		logs.ModuleOf(cloudprovider.GetCloudProvider),
	}},
	{Tag: "scheduler", Packages: []logs.Packages{
		logs.PackageOf(schedulerapp.NewSchedulerCommand),
		logs.PackageOf(scheduler.New),
		logs.ModuleOf((*schedulerconfigv1.KubeSchedulerConfiguration).DeepCopy),
	}},
}
