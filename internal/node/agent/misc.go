package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"path/filepath"
	"strings"
	"time"

	"sync"

	"github.com/google/go-containerregistry/pkg/authn"
	authenticationv1 "k8s.io/api/authentication/v1"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/tools/reference"
	"k8s.io/kubernetes/third_party/forked/golang/expansion"
	"k8s.io/utils/clock"

	"github.com/pocketkube/pocketkube/internal/node/volume"
)

// apiTimeout bounds the agent's single GETs.
const apiTimeout = 10 * time.Second

// apiObjects reads the ConfigMaps and Secrets pods reference from the
// pods' object watches once they have synced, as kubelet's watch-based
// managers do, else straight from the API server (the Node authorizer lets a
// node get and watch exactly those); and it issues their service account
// tokens.
type apiObjects struct {
	client      kubernetes.Interface
	watches     *objectWatches // nil: always GET
	clock       clock.Clock
	allocatable func() v1.ResourceList

	mu     sync.Mutex
	tokens map[string]*authenticationv1.TokenRequest
}

var (
	_ volume.Sources           = (*apiObjects)(nil)
	_ volume.TokenSource       = (*apiObjects)(nil)
	_ volume.AllocatableSource = (*apiObjects)(nil)
)

// ConfigMap gets a ConfigMap; a missing one is kubelet's error
// (`configmap "x" not found`, singular, as its configmap manager says).
func (o *apiObjects) ConfigMap(namespace, name string) (*v1.ConfigMap, error) {
	if o.watches != nil {
		if obj, exists, ok := o.watches.cached("configmaps", namespace, name); ok {
			if !exists {
				return nil, apierrors.NewNotFound(v1.Resource("configmap"), name)
			}
			return obj.(*v1.ConfigMap), nil
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), apiTimeout)
	defer cancel()
	cm, err := o.client.CoreV1().ConfigMaps(namespace).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, apierrors.NewNotFound(v1.Resource("configmap"), name)
	}
	return cm, err
}

// Secret gets a Secret; a missing one is kubelet's error.
func (o *apiObjects) Secret(namespace, name string) (*v1.Secret, error) {
	if o.watches != nil {
		if obj, exists, ok := o.watches.cached("secrets", namespace, name); ok {
			if !exists {
				return nil, apierrors.NewNotFound(v1.Resource("secret"), name)
			}
			return obj.(*v1.Secret), nil
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), apiTimeout)
	defer cancel()
	s, err := o.client.CoreV1().Secrets(namespace).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, apierrors.NewNotFound(v1.Resource("secret"), name)
	}
	return s, err
}

func (o *apiObjects) NodeAllocatable() v1.ResourceList { return o.allocatable() }

// Kubelet's token manager (pkg/kubelet/token): a token is requested again
// once 80 % of its lifetime, or 24 h, has passed, up to 10 s early (a random
// jitter, so that the tokens of many pods are not all refreshed at once).
const (
	tokenRefreshFraction = 0.8
	tokenMaxAge          = 24 * time.Hour
	tokenMaxJitter       = 10 * time.Second
)

func tokenKey(namespace, sa string, req *authenticationv1.TokenRequest) string {
	key := fmt.Sprintf("%s/%s/%v/%d", namespace, sa, req.Spec.Audiences, ptrOr(req.Spec.ExpirationSeconds, 0))
	if ref := req.Spec.BoundObjectRef; ref != nil {
		key += "/" + ref.Kind + "/" + ref.Name + "/" + string(ref.UID)
	}
	return key
}

func ptrOr(p *int64, d int64) int64 {
	if p == nil {
		return d
	}
	return *p
}

// refreshAt is when kubelet would request a token again.
func refreshAt(tr *authenticationv1.TokenRequest, now time.Time) time.Time {
	exp := tr.Status.ExpirationTimestamp.Time
	ttl := time.Duration(ptrOr(tr.Spec.ExpirationSeconds, 3600)) * time.Second
	issued := exp.Add(-ttl)
	at := issued.Add(time.Duration(tokenRefreshFraction * float64(ttl)))
	if m := issued.Add(tokenMaxAge); m.Before(at) {
		at = m
	}
	return at.Add(-tokenJitter(tr))
}

// tokenJitter is a token's refresh jitter in [0, tokenMaxJitter): drawn
// from the token's own bytes, so that every check of one token agrees.
func tokenJitter(tr *authenticationv1.TokenRequest) time.Duration {
	h := fnv.New64a()
	h.Write([]byte(tr.Status.Token))
	return time.Duration(h.Sum64() % uint64(tokenMaxJitter))
}

// ServiceAccountToken returns a cached token for req, or requests one.
// When a refresh fails, the old token is used until it expires, as
// kubelet does.
func (o *apiObjects) ServiceAccountToken(ctx context.Context, namespace, sa string, req *authenticationv1.TokenRequest) (*authenticationv1.TokenRequest, error) {
	key := tokenKey(namespace, sa, req)
	now := o.clock.Now()
	o.mu.Lock()
	cached := o.tokens[key]
	o.mu.Unlock()
	if cached != nil && now.Before(refreshAt(cached, now)) {
		return cached, nil
	}
	ctx, cancel := context.WithTimeout(ctx, apiTimeout)
	defer cancel()
	tr, err := o.client.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, sa, req, metav1.CreateOptions{})
	if err != nil {
		if cached != nil && now.Before(cached.Status.ExpirationTimestamp.Time) {
			return cached, nil
		}
		return nil, err
	}
	o.mu.Lock()
	o.tokens[key] = tr
	o.mu.Unlock()
	return tr, nil
}

// nextTokenRefresh is the soonest refresh of pod uid's tokens, or zero.
func (o *apiObjects) nextTokenRefresh(uid string) time.Time {
	o.mu.Lock()
	defer o.mu.Unlock()
	var next time.Time
	for k, tr := range o.tokens {
		if strings.HasSuffix(k, "/"+uid) {
			if at := refreshAt(tr, o.clock.Now()); next.IsZero() || at.Before(next) {
				next = at
			}
		}
	}
	return next
}

// forgetTokens drops pod uid's tokens once the pod is gone.
func (o *apiObjects) forgetTokens(uid string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for k := range o.tokens {
		if strings.HasSuffix(k, "/"+uid) {
			delete(o.tokens, k)
		}
	}
}

// pullKeychain turns the pod's imagePullSecrets into credentials; a
// secret that cannot be read is skipped, as kubelet does, with an event.
func (a *Agent) pullKeychain(ctx context.Context, pod *v1.Pod) authn.Keychain {
	var secrets []*v1.Secret
	for _, ref := range pod.Spec.ImagePullSecrets {
		s, err := a.objects.Secret(pod.Namespace, ref.Name)
		if err != nil {
			a.record(pod, v1.EventTypeWarning, "FailedToRetrieveImagePullSecret", "Unable to retrieve some image pull secrets (%s); attempting to pull the image may not succeed.", ref.Name)
			continue
		}
		secrets = append(secrets, s)
	}
	if len(secrets) == 0 {
		return nil
	}
	return dockerConfigKeychain(secrets)
}

// record records an event about the pod, as kubelet does.
func (a *Agent) record(pod *v1.Pod, eventType, reason, format string, args ...any) {
	if a.recorder == nil {
		return
	}
	a.recorder.Eventf(pod, eventType, reason, format, args...)
}

// recordContainer records an event about one container of the pod, with
// the fieldPath kubelet's GenerateContainerRef gives it.
func (a *Agent) recordContainer(pod *v1.Pod, c *v1.Container, eventType, reason, format string, args ...any) {
	if a.recorder == nil {
		return
	}
	ref, err := reference.GetReference(scheme.Scheme, pod)
	if err != nil {
		return
	}
	ref.FieldPath = containerFieldPath(pod, c)
	a.recorder.Eventf(ref, eventType, reason, format, args...)
}

func containerFieldPath(pod *v1.Pod, c *v1.Container) string {
	for i := range pod.Spec.InitContainers {
		if pod.Spec.InitContainers[i].Name == c.Name {
			return fmt.Sprintf("spec.initContainers{%s}", c.Name)
		}
	}
	return fmt.Sprintf("spec.containers{%s}", c.Name)
}

func newRecorder(ctx context.Context, client kubernetes.Interface, node string) (record.EventBroadcaster, record.EventRecorder) {
	b := record.NewBroadcaster(record.WithContext(ctx))
	b.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: client.CoreV1().Events("")})
	return b, b.NewRecorder(scheme.Scheme, v1.EventSource{Component: "kubelet", Host: node})
}

// expandSubPath is kubelet's subPathExpr expansion
// (ExpandContainerVolumeMounts): a missing or empty variable is an error.
func expandSubPath(expr string, env []v1.EnvVar) (string, error) {
	m := make(map[string]string, len(env))
	for _, e := range env {
		m[e.Name] = e.Value
	}
	var missing []string
	out := expansion.Expand(expr, func(name string) string {
		v, ok := m[name]
		if !ok || v == "" {
			missing = append(missing, name)
		}
		return v
	})
	if len(missing) > 0 {
		return "", fmt.Errorf("missing value for %s", strings.Join(missing, ", "))
	}
	if filepath.IsAbs(out) {
		return "", fmt.Errorf("error SubPath `%s` must not be an absolute path", out)
	}
	return out, nil
}

// dockerConfigKeychain reads kubernetes.io/dockerconfigjson and
// kubernetes.io/dockercfg secrets.
func dockerConfigKeychain(secrets []*v1.Secret) authn.Keychain {
	auths := map[string]authn.AuthConfig{}
	for _, s := range secrets {
		var cfg struct {
			Auths map[string]authn.AuthConfig `json:"auths"`
		}
		switch s.Type {
		case v1.SecretTypeDockerConfigJson:
			if json.Unmarshal(s.Data[v1.DockerConfigJsonKey], &cfg) != nil {
				continue
			}
		case v1.SecretTypeDockercfg:
			if json.Unmarshal(s.Data[v1.DockerConfigKey], &cfg.Auths) != nil {
				continue
			}
		}
		for host, a := range cfg.Auths {
			host = strings.TrimPrefix(strings.TrimPrefix(host, "https://"), "http://")
			host, _, _ = strings.Cut(host, "/")
			if host == "index.docker.io" {
				host = "docker.io"
			}
			if _, ok := auths[host]; !ok { // the first secret naming a registry wins
				auths[host] = a
			}
		}
	}
	return keychain(auths)
}

type keychain map[string]authn.AuthConfig

func (k keychain) Resolve(r authn.Resource) (authn.Authenticator, error) {
	host := r.RegistryStr()
	if host == "index.docker.io" {
		host = "docker.io"
	}
	if a, ok := k[host]; ok {
		return authn.FromConfig(a), nil
	}
	return authn.Anonymous, nil
}
