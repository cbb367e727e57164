package app

import (
	"reflect"
	"testing"

	"github.com/coredns/caddy/caddyfile"
	"github.com/coredns/coredns/plugin/forward"
	"go.etcd.io/etcd/server/v3/etcdserver"
	"go.etcd.io/raft/v3/tracker"
	"k8s.io/apiextensions-apiserver/pkg/controller/establish"
	"k8s.io/apiserver/pkg/storage/cacher"
	"k8s.io/client-go/tools/cache"
	cloudprovideroptions "k8s.io/cloud-provider/options"
	"k8s.io/controller-manager/pkg/leadermigration"
	"k8s.io/kube-aggregator/pkg/controllers/status/remote"
	schedulerframework "k8s.io/kube-scheduler/framework"
	apiserveroptions "k8s.io/kubernetes/cmd/kube-apiserver/app/options"
	"k8s.io/kubernetes/pkg/controller/deployment"
	"k8s.io/kubernetes/pkg/proxy/nftables"
	ipallocatorcontroller "k8s.io/kubernetes/pkg/registry/core/service/ipallocator/controller"
	"k8s.io/kubernetes/pkg/scheduler/framework/plugins/noderesources"
	nodeauthorizer "k8s.io/kubernetes/plugin/pkg/auth/authorizer/node"
	"sigs.k8s.io/knftables"

	"github.com/pocketkube/pocketkube/internal/cluster"
	"github.com/pocketkube/pocketkube/internal/logs"
	"github.com/pocketkube/pocketkube/internal/node/agent"
	"github.com/pocketkube/pocketkube/internal/node/serviceproxy"
	"github.com/pocketkube/pocketkube/internal/pki"
)

// TestLogComponents checks how far each component of logComponents reaches,
// with functions of other packages than the ones that name it: a line
// logged in one of these functions, called from pocketkube's own code (as
// everything is), carries the tag.
func TestLogComponents(t *testing.T) {
	tests := []struct {
		fn   any
		want string
	}{
		{pki.LoadAuthority, "pocketkube"},
		{agent.New, "node"},
		{serviceproxy.Run, "kube-proxy"},
		{nftables.NewProxier, "kube-proxy"},
		{knftables.New, "kube-proxy"},
		{forward.New, "dns"},
		{caddyfile.Parse, "dns"},
		{etcdserver.NewServer, "etcd"},
		{tracker.MakeProgressTracker, "etcd"},
		{apiserveroptions.NewServerRunOptions, "apiserver"},
		{ipallocatorcontroller.NewRepairIPAddress, "apiserver"},
		{nodeauthorizer.NewAuthorizer, "apiserver"},
		{cacher.NewCacherFromConfig, "apiserver"},
		{remote.New, "apiserver"},
		{establish.NewEstablishingController, "apiserver"},
		{deployment.NewDeploymentController, "controller-manager"},
		{leadermigration.NewLeaderMigrator, "controller-manager"},
		{cloudprovideroptions.NewCloudControllerManagerOptions, "controller-manager"},
		{noderesources.NewFit, "scheduler"},
		{schedulerframework.NewStatus, "scheduler"},
		{cache.NewReflector, "pocketkube"}, // no component's: the caller's
	}
	// Tag reads return addresses: one past a function's entry.
	caller := reflect.ValueOf(cluster.Run).Pointer() + 1
	for _, tt := range tests {
		pc := reflect.ValueOf(tt.fn).Pointer() + 1
		if got := logs.Tag(logComponents, []uintptr{pc, caller}); got != tt.want {
			t.Errorf("a line from %s is tagged %q, want %q", logs.PackageOf(tt.fn), got, tt.want)
		}
	}
}
