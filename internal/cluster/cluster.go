// Package cluster runs what `pocketkube up` runs: the control plane
// (internal/controlplane) and, once the API server is ready, this
// machine's node (internal/node) with the credentials the control plane
// issued it. It is the one place that knows both; they never import each
// other, and the node talks to the control plane only through the API.
//
// Stopping is cancellation. The node stops first, so that its pods are
// stopped while the API server still answers, then the control plane.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"

	"time"

	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"

	"github.com/pocketkube/pocketkube/internal/controlplane"
	"github.com/pocketkube/pocketkube/internal/node"
	"github.com/pocketkube/pocketkube/internal/node/coredns"
)

// DNSServiceIP is the kube-dns Service's ClusterIP, as kubeadm picks it:
// the tenth address of the service range.
var DNSServiceIP = net.ParseIP("10.96.0.10")

// publishDNS creates kube-system/kube-dns, pointing at endpoint:53, and
// lets the node's DNS server (CoreDNS, as system:kube-proxy) read what it
// serves, with the admin's credentials.
func publishDNS(ctx context.Context, adminKubeconfig string, endpoint net.IP) error {
	restCfg, err := clientcmd.BuildConfigFromFlags("", adminKubeconfig)
	if err != nil {
		return err
	}
	client, err := kubernetes.NewForConfig(restCfg)
	if err != nil {
		return err
	}
	// On a first start kube-system may not exist for a moment; retry until
	// it works or ctx ends.
	return wait.PollUntilContextCancel(ctx, 200*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		err := coredns.EnsureRBAC(ctx, client, "system:kube-proxy")
		if err == nil {
			err = coredns.EnsureService(ctx, client, DNSServiceIP, endpoint)
		}
		if errors.Is(err, coredns.ErrClusterIPMismatch) {
			return false, err
		}
		if err != nil {
			klog.FromContext(ctx).V(2).Info("Publishing the kube-dns Service, will retry", "err", err)
		}
		return err == nil, nil
	})
}

// Config is a control plane and, unless Node is nil, a node.
type Config struct {
	ControlPlane controlplane.Config
	// Node is the node's configuration; Run fills in what the control
	// plane provides (kubeconfig, certificates, addresses). nil runs the
	// control plane alone.
	Node *node.Config
	// OnReady is called once the API server is ready, before the node
	// starts.
	OnReady func(controlplane.Ready)
}

// Run runs the cluster until ctx is done or a part fails, then stops it.
func Run(ctx context.Context, cfg Config) error {
	logger := klog.FromContext(ctx)
	if cfg.Node != nil {
		cfg.ControlPlane.NodeName = cfg.Node.NodeName
	}
	ready := make(chan controlplane.Ready, 1)
	cfg.ControlPlane.OnReady = func(r controlplane.Ready) {
		if cfg.OnReady != nil {
			cfg.OnReady(r)
		}
		ready <- r
	}
	cpCtx, stopControlPlane := context.WithCancel(context.WithoutCancel(ctx))
	defer stopControlPlane()
	cpDone := make(chan error, 1)
	go func() { cpDone <- controlplane.Run(cpCtx, cfg.ControlPlane) }()

	var r controlplane.Ready
	select {
	case r = <-ready:
	case err := <-cpDone:
		return err
	case <-ctx.Done():
		stopControlPlane()
		return <-cpDone
	}
	if cfg.Node == nil {
		select {
		case err := <-cpDone:
			return err
		case <-ctx.Done():
			stopControlPlane()
			return <-cpDone
		}
	}

	go func() {
		if err := controlplane.LabelServerNode(ctx, r.Kubeconfig, cfg.Node.NodeName); err != nil && ctx.Err() == nil {
			logger.Error(err, "Labelling the server node")
		}
	}()
	n := *cfg.Node
	n.Kubeconfig = r.NodeKubeconfig
	n.NodeIPs = []net.IP{r.AdvertiseAddress}
	n.ServingCert, n.ServingKey, n.ClientCA = r.NodeServingCert, r.NodeServingKey, r.CA
	n.ProxyKubeconfig, n.ClusterCIDR = r.ProxyKubeconfig, controlplane.ClusterCIDR
	if len(n.ClusterDNS) == 0 {
		// No DNS server of the user's: this node serves cluster DNS at
		// the advertised address, behind the kube-dns Service.
		n.ClusterDNS, n.DNSListen = []net.IP{DNSServiceIP}, r.AdvertiseAddress
		go func() {
			if err := publishDNS(ctx, r.Kubeconfig, r.AdvertiseAddress); err != nil && ctx.Err() == nil {
				logger.Error(err, "Publishing the kube-dns Service")
			}
		}()
	}
	nodeCtx, stopNode := context.WithCancel(klog.NewContext(ctx, klog.LoggerWithName(logger, "node")))
	defer stopNode()
	nodeDone := make(chan error, 1)
	go func() { nodeDone <- node.Run(nodeCtx, n) }()

	var nodeErr, cpErr error
	select {
	case nodeErr = <-nodeDone: // failed on its own, or stopped by ctx
	case cpErr = <-cpDone:
		stopNode()
		nodeErr = <-nodeDone
		return errors.Join(cpErr, nodeErr)
	}
	stopControlPlane()
	cpErr = <-cpDone
	if nodeErr != nil {
		nodeErr = fmt.Errorf("node: %w", nodeErr)
	}
	return errors.Join(nodeErr, cpErr)
}
