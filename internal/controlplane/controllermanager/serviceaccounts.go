package controllermanager

import (
	"context"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"
)

// ServiceAccounts are the ServiceAccounts of kube-system that the
// controller-manager Run starts creates for its controllers, one each,
// with --use-service-account-credentials: upstream's default controllers
// and kubeadm's bootstrap-token ones (a fresh v1.37.2 cluster's
// kube-system, less "default", which the serviceaccount controller makes).
// Each name is a subject of upstream's bootstrap RBAC policy
// (TestServiceAccountsAreUpstreamPolicy). Route, service (cloud provider)
// and selinux-warning (disabled by default) have a binding there but no
// controller here, so no account.
var ServiceAccounts = []string{
	"attachdetach-controller", "bootstrap-signer", "certificate-controller",
	"clusterrole-aggregation-controller", "cronjob-controller", "daemon-set-controller",
	"deployment-controller", "device-taint-eviction-controller", "disruption-controller",
	"endpoint-controller", "endpointslice-controller", "endpointslicemirroring-controller",
	"ephemeral-volume-controller", "expand-controller", "generic-garbage-collector",
	"horizontal-pod-autoscaler", "job-controller", "kube-apiserver-serving-clustertrustbundle-publisher",
	"legacy-service-account-token-cleaner", "namespace-controller", "node-controller",
	"persistent-volume-binder", "pod-garbage-collector", "podcertificaterequestcleaner",
	"pv-protection-controller", "pvc-protection-controller", "replicaset-controller",
	"replication-controller", "resource-claim-controller", "resourcequota-controller",
	"root-ca-cert-publisher", "service-account-controller", "service-cidrs-controller",
	"statefulset-controller", "storage-version-migrator-controller", "token-cleaner",
	"ttl-after-finished-controller", "ttl-controller", "validatingadmissionpolicy-status-controller",
	"volumeattributesclass-protection-controller",
}

// serviceAccountWorkers is how many creates CreateServiceAccounts has in
// flight.
const serviceAccountWorkers = 8

// CreateServiceAccounts creates the ServiceAccounts that are missing, as
// soon as the API server takes them (kube-system exists), until ctx ends.
//
// The controller-manager builds its controllers one after another, and
// each build first gets or creates its account (a GET, a namespace GET, a
// create: upstream's getOrCreateServiceAccount) before the next starts.
// Made here while the API server still runs its start-up hooks, the
// accounts are found by the build's first GET. They are the objects the
// controller-manager would have made (name and namespace only), so it
// cannot tell; one it makes first is no error here.
func CreateServiceAccounts(ctx context.Context, client kubernetes.Interface) {
	logger := klog.FromContext(ctx)
	var missing []string
	_ = wait.PollUntilContextCancel(ctx, 50*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		l, err := client.CoreV1().ServiceAccounts(metav1.NamespaceSystem).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, nil
		}
		have := sets.New[string]()
		for _, sa := range l.Items {
			have.Insert(sa.Name)
		}
		for _, name := range ServiceAccounts {
			if !have.Has(name) {
				missing = append(missing, name)
			}
		}
		return true, nil
	})
	names := make(chan string)
	done := make(chan struct{})
	for range serviceAccountWorkers {
		go func() {
			defer func() { done <- struct{}{} }()
			for name := range names {
				sa := &v1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: metav1.NamespaceSystem, Name: name}}
				err := wait.PollUntilContextCancel(ctx, 50*time.Millisecond, true, func(ctx context.Context) (bool, error) {
					_, err := client.CoreV1().ServiceAccounts(metav1.NamespaceSystem).Create(ctx, sa, metav1.CreateOptions{})
					// kube-system not there yet is NotFound: ask again.
					return err == nil || apierrors.IsAlreadyExists(err), nil
				})
				if err != nil {
					logger.V(2).Info("ServiceAccount not created ahead of the controller-manager", "serviceAccount", name, "err", err)
				}
			}
		}()
	}
	for _, name := range missing {
		select {
		case names <- name:
		case <-ctx.Done():
		}
	}
	close(names)
	for range serviceAccountWorkers {
		<-done
	}
	logger.V(1).Info("Created the controllers' ServiceAccounts ahead of the controller-manager", "count", len(missing))
}
