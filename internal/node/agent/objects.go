package agent

import (
	"context"
	"errors"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/kubernetes/pkg/kubelet/clustertrustbundle"
	"k8s.io/kubernetes/pkg/kubelet/podcertificate"

	"github.com/pocketkube/pocketkube/internal/node/token"
	"github.com/pocketkube/pocketkube/internal/node/volume"
)

// apiTimeout bounds the agent's single GETs.
const apiTimeout = 10 * time.Second

// forbiddenWait is about how long a read the Node authorizer refuses is
// asked again (untilAllowed): the second kubelet's watch-based managers wait
// for an object's watch to sync (watch_based_manager.go, Get).
const forbiddenWait = time.Second

// apiObjects reads the ConfigMaps and Secrets pods reference from the
// pods' object watches once they have synced, as kubelet's watch-based
// managers do, else straight from the API server (the Node authorizer lets a
// node get and watch exactly those); and it issues their service account
// tokens.
type apiObjects struct {
	client      kubernetes.Interface
	watches     *objectWatches // nil: always GET
	allocatable func() v1.ResourceList

	tokens *token.Manager
	// trustBundles is kubelet's ClusterTrustBundle manager, set by Run
	// (its informer lives as long as Run's context).
	trustBundles clustertrustbundle.Manager
	// podCerts is kubelet's pod certificate manager: a NoOpManager until
	// Run starts the issuing one (before the informers start).
	podCerts podcertificate.Manager
}

var (
	_ volume.Sources              = (*apiObjects)(nil)
	_ volume.TokenSource          = (*apiObjects)(nil)
	_ volume.AllocatableSource    = (*apiObjects)(nil)
	_ volume.ClaimSource          = (*apiObjects)(nil)
	_ volume.TrustBundleSource    = (*apiObjects)(nil)
	_ volume.PodCertificateSource = (*apiObjects)(nil)
)

// ConfigMap gets a ConfigMap; a missing one is kubelet's error
// (`configmap "x" not found`, singular, as its configmap manager says).
func (o *apiObjects) ConfigMap(ctx context.Context, namespace, name string) (*v1.ConfigMap, error) {
	return getObject(ctx, o.watches, "configmaps", "configmap", namespace, name, o.client.CoreV1().ConfigMaps(namespace).Get)
}

// Secret gets a Secret; a missing one is kubelet's error.
func (o *apiObjects) Secret(ctx context.Context, namespace, name string) (*v1.Secret, error) {
	return getObject(ctx, o.watches, "secrets", "secret", namespace, name, o.client.CoreV1().Secrets(namespace).Get)
}

// getObject reads an object of resource from watches once they have synced
// it, else with get, bounded by apiTimeout. A missing object is reported
// with kind, singular.
func getObject[T any](ctx context.Context, watches *objectWatches, resource, kind, namespace, name string,
	get func(context.Context, string, metav1.GetOptions) (T, error)) (T, error) {
	var none T
	ctx, cancel := context.WithTimeout(ctx, apiTimeout)
	defer cancel()
	obj, err := untilAllowed(ctx, func() (T, error) {
		if watches != nil {
			if cached, exists, ok := watches.cached(resource, namespace, name); ok {
				if !exists {
					return none, apierrors.NewNotFound(v1.Resource(kind), name)
				}
				return cached.(T), nil
			}
		}
		return get(ctx, name, metav1.GetOptions{})
	})
	if apierrors.IsNotFound(err) {
		return none, apierrors.NewNotFound(v1.Resource(kind), name)
	}
	return obj, err
}

// untilAllowed calls try again while the API server refuses it, for about
// forbiddenWait. The Node authorizer learns what a node may read from its
// own pod watch, which can lag the agent's: for a pod just bound, the
// ConfigMaps, Secrets, claims and tokens it references are "no relationship
// found" for a moment. kubelet waits as long for its object watches to sync.
func untilAllowed[T any](ctx context.Context, try func() (T, error)) (T, error) {
	obj, err := try()
	deadline := time.Now().Add(forbiddenWait)
	for wait := 10 * time.Millisecond; apierrors.IsForbidden(err) && time.Now().Add(wait).Before(deadline); wait = min(2*wait, 200*time.Millisecond) {
		select {
		case <-ctx.Done():
			return obj, err
		case <-time.After(wait):
		}
		obj, err = try()
	}
	return obj, err
}

func (o *apiObjects) NodeAllocatable() v1.ResourceList { return o.allocatable() }

// ServiceAccountToken returns the token manager's token for req.
func (o *apiObjects) ServiceAccountToken(ctx context.Context, namespace, sa string, req *authenticationv1.TokenRequest) (*authenticationv1.TokenRequest, error) {
	return untilAllowed(ctx, func() (*authenticationv1.TokenRequest, error) { return o.tokens.Get(ctx, namespace, sa, req) })
}

// PersistentVolumeClaim gets a claim from the API server, as kubelet's
// volume manager does (no watch); errors are the API server's.
func (o *apiObjects) PersistentVolumeClaim(ctx context.Context, namespace, name string) (*v1.PersistentVolumeClaim, error) {
	ctx, cancel := context.WithTimeout(ctx, apiTimeout)
	defer cancel()
	return untilAllowed(ctx, func() (*v1.PersistentVolumeClaim, error) {
		return o.client.CoreV1().PersistentVolumeClaims(namespace).Get(ctx, name, metav1.GetOptions{})
	})
}

// PersistentVolume gets a PV from the API server; errors are the API server's.
func (o *apiObjects) PersistentVolume(ctx context.Context, name string) (*v1.PersistentVolume, error) {
	ctx, cancel := context.WithTimeout(ctx, apiTimeout)
	defer cancel()
	return untilAllowed(ctx, func() (*v1.PersistentVolume, error) {
		return o.client.CoreV1().PersistentVolumes().Get(ctx, name, metav1.GetOptions{})
	})
}

// errNoTrustBundles is the answer before Run set the manager up.
var errNoTrustBundles = errors.New("ClusterTrustBundle manager is not running")

// GetTrustAnchorsByName is kubelet's ClusterTrustBundle manager's.
func (o *apiObjects) GetTrustAnchorsByName(ctx context.Context, name string, allowMissing bool) ([]byte, error) {
	if o.trustBundles == nil {
		return nil, errNoTrustBundles
	}
	return o.trustBundles.GetTrustAnchorsByName(ctx, name, allowMissing)
}

// GetTrustAnchorsBySigner is kubelet's ClusterTrustBundle manager's.
func (o *apiObjects) GetTrustAnchorsBySigner(ctx context.Context, signerName string, labelSelector *metav1.LabelSelector, allowMissing bool) ([]byte, error) {
	if o.trustBundles == nil {
		return nil, errNoTrustBundles
	}
	return o.trustBundles.GetTrustAnchorsBySigner(ctx, signerName, labelSelector, allowMissing)
}

// GetPodCertificateCredentialBundle is kubelet's pod certificate manager's:
// the key and chain of a podCertificate source once issued, else the
// manager's error ("credential bundle is not issued yet").
func (o *apiObjects) GetPodCertificateCredentialBundle(ctx context.Context, namespace, podName, podUID, volumeName string, sourceIndex int) ([]byte, []byte, error) {
	return o.podCerts.GetPodCertificateCredentialBundle(ctx, namespace, podName, podUID, volumeName, sourceIndex)
}
