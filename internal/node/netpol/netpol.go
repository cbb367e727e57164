package netpol

import (
	"context"
	"errors"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"
	"sigs.k8s.io/knftables"

	"github.com/pocketkube/pocketkube/internal/shutdown"
)

// Config is what the enforcer needs. Both fields are required.
type Config struct {
	// Kubeconfig holds credentials that may list and watch pods,
	// namespaces and NetworkPolicies (pocketkube binds the ClusterRole
	// system:kube-network-policies to system:kube-proxy for it).
	Kubeconfig string
	// NodeName is the node whose pods the rules protect.
	NodeName string
}

// retryInterval is how soon a failed nft run is tried again, and how often
// Run asks whether its credentials may read policies yet.
const retryInterval = 200 * time.Millisecond

// Run enforces the cluster's NetworkPolicies on cfg.NodeName's pods until
// ctx is done, then deletes its table and returns. The error is nil after
// a cancellation.
func Run(ctx context.Context, cfg Config) error {
	if cfg.Kubeconfig == "" || cfg.NodeName == "" {
		return errors.New("netpol: Kubeconfig and NodeName are required")
	}
	logger := klog.FromContext(ctx)
	restCfg, err := clientcmd.BuildConfigFromFlags("", cfg.Kubeconfig)
	if err != nil {
		return fmt.Errorf("load kubeconfig: %w", err)
	}
	restCfg.UserAgent = "pocketkube-netpol"
	client, err := kubernetes.NewForConfig(restCfg)
	if err != nil {
		return err
	}
	nft, err := knftables.New(knftables.InetFamily, TableName)
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	if err := waitForAccess(ctx, client); err != nil {
		return nil // stopped before the RBAC came
	}

	// The policies never need the managed fields.
	trim := informers.WithTransform(func(obj any) (any, error) {
		if accessor, err := meta.Accessor(obj); err == nil {
			accessor.SetManagedFields(nil)
		}
		return obj, nil
	})
	factory := informers.NewSharedInformerFactoryWithOptions(client, 0, trim)
	pods := factory.Core().V1().Pods()
	namespaces := factory.Core().V1().Namespaces()
	policies := factory.Networking().V1().NetworkPolicies()
	dirty := make(chan struct{}, 1)
	mark := func() {
		select {
		case dirty <- struct{}{}:
		default:
		}
	}
	handler := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { mark() },
		UpdateFunc: func(any, any) { mark() },
		DeleteFunc: func(any) { mark() },
	}
	for _, inf := range []cache.SharedIndexInformer{pods.Informer(), namespaces.Informer(), policies.Informer()} {
		if _, err := inf.AddEventHandler(handler); err != nil {
			return err
		}
	}
	informerCtx, stopInformers := context.WithCancel(ctx)
	defer stopInformers()
	factory.Start(informerCtx.Done())
	defer shutdown.Informers(klog.FromContext(ctx), shutdown.InformerWait, factory)
	for typ, ok := range factory.WaitForCacheSync(ctx.Done()) {
		if !ok {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("sync %v informer", typ)
		}
	}
	logger.Info("NetworkPolicy enforcer started", "table", "inet "+TableName)

	var applied string // the transaction last run, to skip one that changes nothing
	for {
		select {
		case <-ctx.Done():
			stopInformers()
			if err := deleteTable(context.WithoutCancel(ctx), nft); err != nil {
				logger.Error(err, "Deleting the NetworkPolicy table failed; `nft delete table inet "+TableName+"` deletes it")
			}
			logger.Info("NetworkPolicy enforcer stopped")
			return nil
		case <-dirty:
		}
		s := state{nodeName: cfg.NodeName}
		s.pods, _ = pods.Lister().List(labels.Everything())
		s.namespaces, _ = namespaces.Lister().List(labels.Everything())
		s.policies, _ = policies.Lister().List(labels.Everything())
		tx := nft.NewTransaction()
		compile(tx, s)
		text := tx.String()
		if text == applied {
			continue
		}
		start := time.Now()
		if err := nft.Run(ctx, tx); err != nil {
			if ctx.Err() != nil {
				continue // the stop, next round
			}
			logger.Error(err, "Writing the NetworkPolicy rules failed; retrying")
			time.AfterFunc(retryInterval, mark)
			continue
		}
		applied = text
		logger.V(2).Info("Wrote the NetworkPolicy rules", "operations", tx.NumOperations(), "policies", len(s.policies), "duration", time.Since(start))
	}
}

// Cleanup deletes the table if there is one: at a stop, and at a start
// with enforcement off, where a run that was killed may have left one.
func Cleanup(ctx context.Context) error {
	nft, err := knftables.New(knftables.InetFamily, TableName)
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	return deleteTable(ctx, nft)
}

// deleteTable deletes nft's table if there is one. Run deletes its own with
// the interface it wrote through: a new one (Cleanup) runs two nft
// processes more before the delete.
func deleteTable(ctx context.Context, nft knftables.Interface) error {
	tx := nft.NewTransaction()
	tx.Add(&knftables.Table{})
	tx.Delete(&knftables.Table{})
	return nft.Run(ctx, tx)
}

// waitForAccess waits until client may list NetworkPolicies, which only
// the ClusterRoleBinding the control plane creates grants: on a first
// start it comes moments after the node starts, and informers would back
// off for seconds on 403. The error is ctx's.
func waitForAccess(ctx context.Context, client kubernetes.Interface) error {
	return wait.PollUntilContextCancel(ctx, retryInterval, true, func(ctx context.Context) (bool, error) {
		_, err := client.NetworkingV1().NetworkPolicies("").List(ctx, metav1.ListOptions{Limit: 1})
		if err != nil && !apierrors.IsForbidden(err) {
			klog.FromContext(ctx).V(2).Info("Waiting for the API server before enforcing NetworkPolicies", "err", err)
		}
		return err == nil, nil
	})
}
