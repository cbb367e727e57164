// Package pullcreds is kubelet's KubeletEnsureSecretPulledImages: an
// image the node pulled with a pod's pull secret may be used by another
// pod only if that pod shows the same credentials (or its pull is
// retried with its own). It wraps upstream's image pull manager
// (k8s.io/kubernetes/pkg/kubelet/images/pullmanager) with its
// file-backed records, kept under DIR/image_manager/{pulling,pulled} as
// kubelet keeps them under its root directory, and kubelet's
// verification policies.
package pullcreds

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"
	"k8s.io/kubernetes/pkg/credentialprovider"
	kubeletconfig "k8s.io/kubernetes/pkg/kubelet/apis/config"
	kubecontainer "k8s.io/kubernetes/pkg/kubelet/container"
	"k8s.io/kubernetes/pkg/kubelet/images/pullmanager"
)

// kubelet's imagePullCredentialsVerificationPolicy values.
const (
	NeverVerify                  = string(kubeletconfig.NeverVerify)
	NeverVerifyPreloadedImages   = string(kubeletconfig.NeverVerifyPreloadedImages)
	NeverVerifyAllowlistedImages = string(kubeletconfig.NeverVerifyAllowlistedImages)
	AlwaysVerify                 = string(kubeletconfig.AlwaysVerify)
	// DefaultPolicy is kubelet's default.
	DefaultPolicy = NeverVerifyPreloadedImages
)

// Validate checks a policy and its allowlist with kubelet's
// ValidateKubeletConfiguration messages.
func Validate(policy string, allowlist []string) error {
	var errs []error
	switch policy {
	case NeverVerify, NeverVerifyPreloadedImages, NeverVerifyAllowlistedImages, AlwaysVerify:
	default:
		errs = append(errs, fmt.Errorf("invalid configuration: option %q specified for imagePullCredentialsVerificationPolicy. Valid options are %q, %q, %q or %q",
			policy, NeverVerify, NeverVerifyPreloadedImages, NeverVerifyAllowlistedImages, AlwaysVerify))
	}
	if len(allowlist) > 0 && policy != NeverVerifyAllowlistedImages {
		errs = append(errs, fmt.Errorf("invalid configuration: can't set `preloadedImagesVerificationAllowlist` if `imagePullCredentialsVertificationPolicy` is not \"NeverVerifyAllowlistedImages\""))
	} else if err := pullmanager.ValidateAllowlistImagesPatterns(allowlist); err != nil {
		errs = append(errs, fmt.Errorf("invalid configuration: invalid image pattern in `preloadedImagesVerificationAllowlist`: %w", err))
	}
	return errors.Join(errs...)
}

// Image is what the manager needs of an image the node holds: its ID
// (the imageRef of the records, "sha256:<config digest>") and the names
// it goes by.
type Image struct {
	ID          string
	RepoTags    []string
	RepoDigests []string
}

// Config configures a Manager.
type Config struct {
	// Dir is the node agent's root directory; the records go to
	// Dir/image_manager as kubelet's go to /var/lib/kubelet/image_manager.
	Dir string
	// Policy is kubelet's imagePullCredentialsVerificationPolicy;
	// empty is DefaultPolicy.
	Policy string
	// Allowlist is kubelet's preloadedImagesVerificationAllowlist.
	Allowlist []string
	// ListImages lists the node's images; at start the manager turns
	// the pull intents a crash left behind into records of the images
	// that did arrive, as kubelet does.
	ListImages func(ctx context.Context) ([]Image, error)
	// MaxPods sizes the in-memory caches as kubelet does (default 110).
	MaxPods int32
}

// Manager is kubelet's ImagePullManager.
type Manager struct {
	pullmanager.ImagePullManager
}

// New validates cfg and opens the records as kubelet's
// NewKubeGenericRuntimeManager does.
func New(ctx context.Context, cfg Config) (*Manager, error) {
	if cfg.Policy == "" {
		cfg.Policy = DefaultPolicy
	}
	if err := Validate(cfg.Policy, cfg.Allowlist); err != nil {
		return nil, err
	}
	if cfg.MaxPods <= 0 {
		cfg.MaxPods = 110
	}
	policy, err := pullmanager.NewImagePullCredentialVerificationPolicy(kubeletconfig.ImagePullCredentialsVerificationPolicy(cfg.Policy), cfg.Allowlist)
	if err != nil {
		return nil, err
	}
	logger := klog.FromContext(ctx)
	fs, err := pullmanager.NewFSPullRecordsAccessor(logger, cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("failed to setup the FSPullRecordsAccessor: %w", err)
	}
	// kubelet's sizes with parallel pulls unbounded (maxParallelPulls 0).
	records := pullmanager.NewCachedPullRecordsAccessor(logger, fs, 2*cfg.MaxPods, 5*cfg.MaxPods, 0)
	m, err := pullmanager.NewImagePullManager(ctx, records, policy, imageLister(cfg.ListImages), 0)
	if err != nil {
		return nil, fmt.Errorf("failed to create image pull manager: %w", err)
	}
	return &Manager{m}, nil
}

// Secret is a pod's pull secret that holds credentials for the registry
// of an image, with the credentials it gives.
type Secret struct {
	UID, Namespace, Name string
	// Username, Password, Auth, IdentityToken and RegistryToken are the
	// secret's entry for the registry.
	Username, Password, Auth, IdentityToken, RegistryToken string
}

// Hash is kubelet's hashAuthConfig of the credentials: records keep it,
// never the credentials.
func (s Secret) Hash() string {
	b, err := json.Marshal(credentialprovider.AuthConfig{
		Username: s.Username, Password: s.Password, Auth: s.Auth,
		IdentityToken: s.IdentityToken, RegistryToken: s.RegistryToken,
	})
	if err != nil {
		return ""
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func (s Secret) record() kubeletconfig.ImagePullSecret {
	return kubeletconfig.ImagePullSecret{UID: s.UID, Namespace: s.Namespace, Name: s.Name, CredentialHash: s.Hash()}
}

// PodCredentials is the GetPodCredentials of a pod whose pull secrets
// give secrets for the image's registry (kubelet's keyring lookup).
func PodCredentials(secrets func() ([]Secret, error)) pullmanager.GetPodCredentials {
	return func() ([]kubeletconfig.ImagePullSecret, *kubeletconfig.ImagePullServiceAccount, error) {
		ss, err := secrets()
		if err != nil {
			return nil, nil, err
		}
		out := make([]kubeletconfig.ImagePullSecret, 0, len(ss))
		for _, s := range ss {
			out = append(out, s.record())
		}
		return out, nil, nil
	}
}

// PulledWith is kubelet's trackedToImagePullCreds: the record of a pull
// made with the secret used, or with none (node credentials or
// anonymous: any pod of the node may use the image).
func PulledWith(used *Secret) *kubeletconfig.ImagePullCredentials {
	if used == nil {
		return &kubeletconfig.ImagePullCredentials{NodePodsAccessible: true}
	}
	return &kubeletconfig.ImagePullCredentials{KubernetesSecrets: []kubeletconfig.ImagePullSecret{used.record()}}
}

// PostGC is the image garbage collector's hook: the records of images
// no longer on the node, and older than the collection, are removed
// (kubelet's PruneUnknownRecords as a PostImageGCHook).
func (m *Manager) PostGC(ctx context.Context, remainingImageIDs []string, gcStart time.Time) {
	m.PruneUnknownRecords(ctx, remainingImageIDs, gcStart)
}

// imageLister is the kubecontainer.ImageService the pull manager asks
// for the node's images; it uses ListImages only.
type imageLister func(ctx context.Context) ([]Image, error)

var _ kubecontainer.ImageService = imageLister(nil)

func (l imageLister) ListImages(ctx context.Context) ([]kubecontainer.Image, error) {
	if l == nil {
		return nil, nil
	}
	imgs, err := l(ctx)
	out := make([]kubecontainer.Image, 0, len(imgs))
	for _, img := range imgs {
		out = append(out, kubecontainer.Image{ID: img.ID, RepoTags: img.RepoTags, RepoDigests: img.RepoDigests})
	}
	return out, err
}

var errUnsupported = errors.New("pullcreds: not an image service")

func (imageLister) PullImage(context.Context, kubecontainer.ImageSpec, []credentialprovider.TrackedAuthConfig, *runtimeapi.PodSandboxConfig) (string, *credentialprovider.TrackedAuthConfig, error) {
	return "", nil, errUnsupported
}
func (imageLister) GetImageRef(context.Context, kubecontainer.ImageSpec) (string, error) {
	return "", errUnsupported
}
func (imageLister) RemoveImage(context.Context, kubecontainer.ImageSpec) error { return errUnsupported }
func (imageLister) ImageStats(context.Context) (*kubecontainer.ImageStats, error) {
	return nil, errUnsupported
}
func (imageLister) ImageFsInfo(context.Context) (*runtimeapi.ImageFsInfoResponse, error) {
	return nil, errUnsupported
}
func (imageLister) GetImageSize(context.Context, kubecontainer.ImageSpec) (uint64, error) {
	return 0, errUnsupported
}
