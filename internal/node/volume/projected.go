package volume

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	authenticationv1 "k8s.io/api/authentication/v1"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/kubernetes/pkg/volume"
	"k8s.io/kubernetes/pkg/volume/configmap"
	"k8s.io/kubernetes/pkg/volume/downwardapi"
	"k8s.io/kubernetes/pkg/volume/secret"
	volumeutil "k8s.io/kubernetes/pkg/volume/util"
)

const (
	downwardAPIPluginDir = "kubernetes.io~downward-api"
	projectedPluginDir   = "kubernetes.io~projected"
)

// TokenSource issues service account tokens bound to a pod (the TokenRequest
// API), for serviceAccountToken projections. Sources that can implement it.
type TokenSource interface {
	ServiceAccountToken(ctx context.Context, namespace, serviceAccount string, req *authenticationv1.TokenRequest) (*authenticationv1.TokenRequest, error)
}

// TrustBundleSource gives clusterTrustBundle projections their PEM trust
// anchors: kubelet's clustertrustbundle.Manager (deduplicated, in an order
// fixed per process; allowMissing gives no anchors instead of an error).
// Sources that can implement it.
type TrustBundleSource interface {
	GetTrustAnchorsByName(ctx context.Context, name string, allowMissing bool) ([]byte, error)
	GetTrustAnchorsBySigner(ctx context.Context, signerName string, labelSelector *metav1.LabelSelector, allowMissing bool) ([]byte, error)
}

// PodCertificateSource gives podCertificate projections their private key
// and certificate chain (PEM): kubelet's podcertificate.Manager, which
// creates and watches the pod's PodCertificateRequests. sourceIndex is the
// source's index in the projected volume's sources. Until the certificate
// is issued it returns the manager's error, and the volume is not set up.
// Sources that can implement it.
type PodCertificateSource interface {
	GetPodCertificateCredentialBundle(ctx context.Context, namespace, podName, podUID, volumeName string, sourceIndex int) (privKey, certChain []byte, err error)
}

// AllocatableSource gives the node's allocatable resources, which
// resourceFieldRef items read for limits a container does not set. Sources
// that can implement it.
type AllocatableSource interface {
	NodeAllocatable() v1.ResourceList
}

// downwardHost is the one volume.VolumeHost method upstream's
// downwardapi.CollectData calls: GetNodeAllocatable. Any other call would
// panic on the nil embedded interface, which the tests would catch.
type downwardHost struct {
	volume.VolumeHost
	src Sources
}

func (h downwardHost) GetNodeAllocatable() (v1.ResourceList, error) {
	if a, ok := h.src.(AllocatableSource); ok {
		return a.NodeAllocatable(), nil
	}
	return nil, errors.New("node allocatable is not known")
}

// setupDownwardAPI is kubelet's downwardAPIVolumeMounter.SetUpAt: the items
// through upstream's CollectData, on a tmpfs, always read-only. It is run
// on every pod update, so label and annotation files follow the pod.
func (m *Manager) setupDownwardAPI(ctx context.Context, pod *v1.Pod, vol *v1.Volume, src Sources) (*Mounted, error) {
	s := vol.DownwardAPI
	payload, err := downwardapi.CollectData(s.Items, pod, downwardHost{src: src}, modeOrDefault(s.DefaultMode), nil)
	if err != nil {
		return nil, err
	}
	return m.writeVolume(ctx, pod, vol.Name, downwardAPIPluginDir, true, payload)
}

// setupProjected is kubelet's projectedVolumeMounter (collectData): every
// source into one payload, later sources winning on the same path, on a
// tmpfs. A serviceAccountToken file is 0600 and owned by the pod's single
// effective runAsUser when there is one, or when fsGroup is set (which
// then makes it 0640).
func (m *Manager) setupProjected(ctx context.Context, pod *v1.Pod, vol *v1.Volume, src Sources) (*Mounted, error) {
	s := vol.Projected
	defaultMode := modeOrDefault(s.DefaultMode)
	var errs []error
	payload := map[string]FileProjection{}
	merge := func(p map[string]FileProjection) {
		for k, v := range p {
			payload[k] = v
		}
	}
	for sourceIndex, source := range s.Sources {
		switch {
		case source.Secret != nil:
			optional := source.Secret.Optional != nil && *source.Secret.Optional
			obj, err := src.Secret(ctx, pod.Namespace, source.Secret.Name)
			if err != nil {
				if !apierrors.IsNotFound(err) || !optional {
					errs = append(errs, notFoundText(err, "secret", source.Secret.Name))
					continue
				}
				obj = &v1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: pod.Namespace, Name: source.Secret.Name}}
			}
			p, err := secret.MakePayload(source.Secret.Items, obj, defaultMode, nil, optional)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			merge(p)
		case source.ConfigMap != nil:
			optional := source.ConfigMap.Optional != nil && *source.ConfigMap.Optional
			obj, err := src.ConfigMap(ctx, pod.Namespace, source.ConfigMap.Name)
			if err != nil {
				if !apierrors.IsNotFound(err) || !optional {
					errs = append(errs, notFoundText(err, "configmap", source.ConfigMap.Name))
					continue
				}
				obj = &v1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: pod.Namespace, Name: source.ConfigMap.Name}}
			}
			p, err := configmap.MakePayload(source.ConfigMap.Items, obj, defaultMode, nil, optional)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			merge(p)
		case source.DownwardAPI != nil:
			p, err := downwardapi.CollectData(source.DownwardAPI.Items, pod, downwardHost{src: src}, defaultMode, nil)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			merge(p)
		case source.ServiceAccountToken != nil:
			tokens, ok := src.(TokenSource)
			if !ok {
				errs = append(errs, errors.New("service account tokens are not available on this node"))
				continue
			}
			tp := source.ServiceAccountToken
			fsUser := volumeutil.FsUserFrom(pod)
			mode := *defaultMode
			if fsUser != nil || (pod.Spec.SecurityContext != nil && pod.Spec.SecurityContext.FSGroup != nil) {
				mode = 0o600
			}
			var auds []string
			if tp.Audience != "" {
				auds = []string{tp.Audience}
			}
			tr, err := tokens.ServiceAccountToken(ctx, pod.Namespace, pod.Spec.ServiceAccountName, &authenticationv1.TokenRequest{
				Spec: authenticationv1.TokenRequestSpec{
					Audiences:         auds,
					ExpirationSeconds: tp.ExpirationSeconds,
					BoundObjectRef:    &authenticationv1.BoundObjectReference{APIVersion: "v1", Kind: "Pod", Name: pod.Name, UID: pod.UID},
				},
			})
			if err != nil {
				errs = append(errs, err)
				continue
			}
			payload[tp.Path] = FileProjection{Data: []byte(tr.Status.Token), Mode: mode, FsUser: fsUser}
		case source.ClusterTrustBundle != nil:
			// kubelet's projected plugin: the trust anchors of one bundle
			// by name, or of every bundle of a signer its label selector
			// matches, from kubelet's ClusterTrustBundle manager.
			ctb := source.ClusterTrustBundle
			bundles, ok := src.(TrustBundleSource)
			if !ok {
				errs = append(errs, errors.New("ClusterTrustBundles are not available on this node"))
				continue
			}
			allowEmpty := ctb.Optional != nil && *ctb.Optional
			var anchors []byte
			var err error
			switch {
			case ctb.Name != nil:
				anchors, err = bundles.GetTrustAnchorsByName(ctx, *ctb.Name, allowEmpty)
			case ctb.SignerName != nil:
				anchors, err = bundles.GetTrustAnchorsBySigner(ctx, *ctb.SignerName, ctb.LabelSelector, allowEmpty)
			default:
				err = errors.New("ClusterTrustBundle projection requires either name or signerName to be set")
			}
			if err != nil {
				errs = append(errs, err)
				continue
			}
			fsUser := volumeutil.FsUserFrom(pod)
			mode := *defaultMode
			if fsUser != nil || (pod.Spec.SecurityContext != nil && pod.Spec.SecurityContext.FSGroup != nil) {
				mode = 0o600
			}
			payload[ctb.Path] = FileProjection{Data: anchors, Mode: mode, FsUser: fsUser}
		case source.PodCertificate != nil:
			// kubelet's projected plugin: the key and chain of the
			// source's current certificate, as a credential bundle (key
			// first, then the chain) and/or as two files.
			certs, ok := src.(PodCertificateSource)
			if !ok {
				errs = append(errs, fmt.Errorf("projected volume %q: pod certificates are not available on this node", vol.Name))
				continue
			}
			key, chain, err := certs.GetPodCertificateCredentialBundle(ctx, pod.Namespace, pod.Name, string(pod.UID), vol.Name, sourceIndex)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			pc := source.PodCertificate
			fsUser := volumeutil.FsUserFrom(pod)
			mode := *defaultMode
			if fsUser != nil || (pod.Spec.SecurityContext != nil && pod.Spec.SecurityContext.FSGroup != nil) {
				mode = 0o600
			}
			if pc.CredentialBundlePath != "" {
				var bundle bytes.Buffer
				bundle.Write(key)
				bundle.Write(chain)
				payload[pc.CredentialBundlePath] = FileProjection{Data: bundle.Bytes(), Mode: mode, FsUser: fsUser}
			}
			if pc.KeyPath != "" {
				payload[pc.KeyPath] = FileProjection{Data: key, Mode: mode, FsUser: fsUser}
			}
			if pc.CertificateChainPath != "" {
				payload[pc.CertificateChainPath] = FileProjection{Data: chain, Mode: mode, FsUser: fsUser}
			}
		}
	}
	if len(errs) > 0 {
		return nil, utilerrors.NewAggregate(errs)
	}
	return m.writeVolume(ctx, pod, vol.Name, projectedPluginDir, true, payload)
}

// notFoundText gives a missing object kubelet's text, whatever the source
// said; other errors pass through.
func notFoundText(err error, resource, name string) error {
	if apierrors.IsNotFound(err) {
		return apierrors.NewNotFound(v1.Resource(resource), name)
	}
	return err
}
