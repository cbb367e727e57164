package bootstrap

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"
)

// DNSServiceIP is the kube-dns Service's ClusterIP, as kubeadm picks it:
// the tenth address of the service range.
var DNSServiceIP = net.ParseIP("10.96.0.10")

// retryInterval is how often Run tries again while the API server is not
// yet ready for an object: on a first start kube-system may not exist for a
// moment, and a node registers a moment after it starts.
const retryInterval = 200 * time.Millisecond

// Config says which of the cluster's objects Run sets up. A zero Config sets
// up nothing (and deletes the default StorageClass Run made before).
type Config struct {
	// ServerNode, when set, is the node that runs the control plane; Run
	// waits for it to register and labels it with ServerNodeLabels.
	ServerNode string
	// DNS, when set, publishes a cluster DNS server as kube-system/kube-dns.
	DNS *DNS
	// Join, when set, lets other machines join the cluster as nodes.
	Join *Join
	// StorageProvisioner, when set, is the provisioner of the default
	// StorageClass DefaultStorageClassName, which Run creates when it is
	// missing. Unset, Run deletes that class if it created it before.
	StorageProvisioner string
	// NetworkPolicyUser, when set, is the user the node's NetworkPolicy
	// enforcer authenticates as; it is bound to the ClusterRole
	// NetworkPolicyRoleName. With Join, so is group system:nodes
	// (NodesNetworkPolicyBindingName): the enforcer of a joined node runs
	// with the node's own credentials.
	NetworkPolicyUser string
}

// DNS is a cluster DNS server to publish. ServiceIP, Endpoint and User are
// required.
type DNS struct {
	// ServiceIP is the kube-dns Service's ClusterIP, usually DNSServiceIP.
	ServiceIP net.IP
	// Endpoint is the address the server listens on, port 53.
	Endpoint net.IP
	// User is the user the server authenticates as; it is bound to the
	// ClusterRole DNSRoleName.
	User string
	// NodeName is the node the server runs on, which its endpoint names.
	NodeName string
	// Several says the cluster may have several servers, each serving
	// cluster DNS: each publishes its own endpoint beside the others'
	// (KeepDNSEndpoints; NodeName is then required).
	Several bool
}

// Run sets up the objects cfg asks for with client, retrying while the API
// server refuses, until they are in place or ctx is done. The parts are
// independent and run concurrently; Run returns when all have returned, with
// their errors joined (ctx's error for a part that was still waiting).
func Run(ctx context.Context, client kubernetes.Interface, cfg Config) error {
	if d := cfg.DNS; d != nil && (d.ServiceIP == nil || d.Endpoint == nil || d.User == "") {
		return errors.New("bootstrap: DNS needs ServiceIP, Endpoint and User")
	}
	if d := cfg.DNS; d != nil && d.Several && d.NodeName == "" {
		return errors.New("bootstrap: DNS of several servers needs NodeName")
	}
	if j := cfg.Join; j != nil && (j.Server == "" || j.CAFile == "" || j.TokenFile == "") {
		return errors.New("bootstrap: Join needs Server, CAFile and TokenFile")
	}
	var wg sync.WaitGroup
	var labelErr, dnsErr, joinErr, storageErr, netpolErr error
	if cfg.ServerNode != "" {
		wg.Go(func() {
			if err := labelServerNode(ctx, client, cfg.ServerNode); err != nil {
				labelErr = fmt.Errorf("label server node %s: %w", cfg.ServerNode, err)
			}
		})
	}
	if cfg.DNS != nil {
		wg.Go(func() {
			if err := publishDNS(ctx, client, *cfg.DNS); err != nil {
				dnsErr = fmt.Errorf("publish the kube-dns Service: %w", err)
			}
		})
	}
	if cfg.Join != nil {
		wg.Go(func() {
			if err := retry(ctx, "Setting up the join token", func(ctx context.Context) error {
				return setUpJoin(ctx, client, *cfg.Join)
			}); err != nil {
				joinErr = fmt.Errorf("set up joining: %w", err)
			}
		})
	}
	if cfg.NetworkPolicyUser != "" {
		wg.Go(func() {
			if err := retry(ctx, "Granting the NetworkPolicy enforcer its access", func(ctx context.Context) error {
				if err := ensureRBAC(ctx, client, NetworkPolicyRoleName, networkPolicyRules, cfg.NetworkPolicyUser); err != nil || cfg.Join == nil {
					return err
				}
				return ensureNodesNetworkPolicy(ctx, client)
			}); err != nil {
				netpolErr = fmt.Errorf("grant the NetworkPolicy enforcer its access: %w", err)
			}
		})
	}
	wg.Go(func() { storageErr = storageClass(ctx, client, cfg.StorageProvisioner) })
	wg.Wait()
	return errors.Join(labelErr, dnsErr, joinErr, storageErr, netpolErr)
}

// retry runs step every retryInterval until it succeeds or ctx is done,
// logging each failure as what, will retry.
func retry(ctx context.Context, what string, step func(context.Context) error) error {
	return wait.PollUntilContextCancel(ctx, retryInterval, true, func(ctx context.Context) (bool, error) {
		err := step(ctx)
		if err != nil {
			klog.FromContext(ctx).V(2).Info(what+", will retry", "err", err)
		}
		return err == nil, nil
	})
}

// publishDNS creates kube-system/kube-dns, pointing at d.Endpoint:53, and
// lets d.User read what the server serves.
func publishDNS(ctx context.Context, client kubernetes.Interface, d DNS) error {
	return wait.PollUntilContextCancel(ctx, retryInterval, true, func(ctx context.Context) (bool, error) {
		err := ensureDNSRBAC(ctx, client, d.User)
		if err == nil {
			err = ensureDNSService(ctx, client, d)
		}
		if errors.Is(err, ErrClusterIPMismatch) {
			return false, err
		}
		if err != nil {
			klog.FromContext(ctx).V(2).Info("Publishing the kube-dns Service, will retry", "err", err)
		}
		return err == nil, nil
	})
}
