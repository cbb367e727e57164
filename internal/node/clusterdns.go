package node

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"

	"github.com/pocketkube/pocketkube/internal/node/coredns"
)

// runClusterDNS serves cluster DNS with CoreDNS on cfg.DNSListen:53 until
// ctx is done, with the Service proxy's credentials (system:kube-proxy,
// which the control plane binds to the system:coredns ClusterRole; the
// node's own identity may not list EndpointSlices). The kube-dns Service
// that sends 10.96.0.10 here is internal/bootstrap's to publish.
func runClusterDNS(ctx context.Context, cfg Config) error {
	if err := waitForDNSAccess(ctx, cfg.ProxyKubeconfig); err != nil {
		if ctx.Err() != nil {
			return nil // stopped before the RBAC came: nothing to stop
		}
		return err
	}
	pods, err := netip.ParsePrefix(cfg.ClusterCIDR)
	if err != nil {
		return fmt.Errorf("cluster CIDR: %w", err)
	}
	return coredns.Run(ctx, coredns.Config{
		Addr:       net.JoinHostPort(cfg.DNSListen.String(), "53"),
		Kubeconfig: cfg.ProxyKubeconfig,
		// Pods, and the node itself (always answered).
		Clients: []netip.Prefix{pods},
	})
}

// waitForDNSAccess waits until the credentials may list namespaces, which
// only the system:coredns binding grants. Started before that binding
// exists (on a first `up` it is created moments after the node starts),
// CoreDNS's informers back off on 403 and it then serves from unsynced
// caches for its 5 s start-up wait, answering NXDOMAIN that its cache keeps.
func waitForDNSAccess(ctx context.Context, kubeconfig string) error {
	restCfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return fmt.Errorf("load kubeconfig: %w", err)
	}
	client, err := kubernetes.NewForConfig(restCfg)
	if err != nil {
		return err
	}
	return wait.PollUntilContextCancel(ctx, 50*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		_, err := client.CoreV1().Namespaces().List(ctx, metav1.ListOptions{Limit: 1})
		if err != nil && !apierrors.IsForbidden(err) {
			klog.FromContext(ctx).V(2).Info("Waiting for the API server before starting cluster DNS", "err", err)
		}
		return err == nil, nil
	})
}
