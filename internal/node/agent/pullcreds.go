package agent

import (
	"context"

	v1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"

	"github.com/pocketkube/pocketkube/internal/node/image"
	"github.com/pocketkube/pocketkube/internal/node/pullcreds"
)

// podCredentials reads the pod's pull secrets once, when first needed,
// as kubelet's makeLookupPullCredentialsFunc.
type podCredentials struct {
	a    *Agent
	pod  *v1.Pod
	done bool
	kc   keychain
}

func (p *podCredentials) keychain(ctx context.Context) keychain {
	if !p.done {
		p.kc, p.done = p.a.pullKeychain(ctx, p.pod), true
	}
	return p.kc
}

// mayUsePresent is kubelet's MustAttemptImagePull for an image present
// on the node: whether the pod may use it without pulling it with its
// own credentials (always, with no pull manager).
func (a *Agent) mayUsePresent(ctx context.Context, ref string, img image.Image, creds *podCredentials) bool {
	pm := a.cfg.PullCredentials
	if pm == nil {
		return true
	}
	must, err := pm.MustAttemptImagePull(ctx, ref, img.ID, pullcreds.PodCredentials(func() ([]pullcreds.Secret, error) {
		return creds.keychain(ctx).secretsFor(ref), nil
	}))
	if err != nil {
		klog.FromContext(ctx).Error(err, "Cannot check the pod's credentials for an image pulled with credentials; pulling it", "image", ref)
	}
	return !must
}

// presentMessage is kubelet's event for an image used without a pull.
func (a *Agent) presentMessage() string {
	if a.cfg.PullCredentials != nil {
		return "Container image %q already present on machine and can be accessed by the pod"
	}
	return "Container image %q already present on machine"
}

// pull pulls ref with the pod's credentials, recording the pull intent
// and the credentials used as kubelet's pullImage does.
func (a *Agent) pull(ctx context.Context, ref string, creds *podCredentials) (image.Image, error) {
	kc := creds.keychain(ctx)
	opts := image.PullOptions{}
	if kc != nil {
		opts.Auth = kc
	}
	pm := a.cfg.PullCredentials
	if pm == nil {
		return a.cfg.Images.Pull(ctx, ref, opts)
	}
	if err := pm.RecordPullIntent(klog.FromContext(ctx), ref); err != nil {
		return image.Image{}, err
	}
	img, err := a.cfg.Images.Pull(ctx, ref, opts)
	if err != nil {
		pm.RecordImagePullFailed(ctx, ref)
		return img, err
	}
	pm.RecordImagePulled(ctx, ref, img.ID, pullcreds.PulledWith(kc.usedFor(ref)))
	return img, nil
}
