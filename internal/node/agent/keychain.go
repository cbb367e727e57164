package agent

import (
	"context"
	"encoding/json"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "k8s.io/api/core/v1"

	"github.com/pocketkube/pocketkube/internal/node/pullcreds"
)

// pullKeychain turns the pod's imagePullSecrets into credentials; a
// secret that cannot be read is skipped, as kubelet does, with an event.
// nil means none.
func (a *Agent) pullKeychain(ctx context.Context, pod *v1.Pod) keychain {
	var secrets []*v1.Secret
	for _, ref := range pod.Spec.ImagePullSecrets {
		s, err := a.objects.Secret(ctx, pod.Namespace, ref.Name)
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

// sourcedAuth is a secret's entry for a registry.
type sourcedAuth struct {
	authn.AuthConfig
	secret *v1.Secret
}

// dockerConfigKeychain reads kubernetes.io/dockerconfigjson and
// kubernetes.io/dockercfg secrets: every secret's entry per registry, in
// the pod's order.
func dockerConfigKeychain(secrets []*v1.Secret) keychain {
	auths := keychain{}
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
			auths[host] = append(auths[host], sourcedAuth{AuthConfig: a, secret: s})
		}
	}
	return auths
}

// keychain is the pod's credentials by registry host.
type keychain map[string][]sourcedAuth

func (k keychain) Resolve(r authn.Resource) (authn.Authenticator, error) {
	if a := k.first(r.RegistryStr()); a != nil {
		return authn.FromConfig(a.AuthConfig), nil // the first secret naming a registry wins
	}
	return authn.Anonymous, nil
}

func (k keychain) first(host string) *sourcedAuth {
	if host == "index.docker.io" {
		host = "docker.io"
	}
	if as := k[host]; len(as) > 0 {
		return &as[0]
	}
	return nil
}

// registryOf is the registry host of a normalised reference.
func registryOf(ref string) string {
	r, err := name.ParseReference(ref)
	if err != nil {
		return ""
	}
	return r.Context().RegistryStr()
}

func secretOf(a sourcedAuth) pullcreds.Secret {
	return pullcreds.Secret{
		UID: string(a.secret.UID), Namespace: a.secret.Namespace, Name: a.secret.Name,
		Username: a.Username, Password: a.Password, Auth: a.Auth,
		IdentityToken: a.IdentityToken, RegistryToken: a.RegistryToken,
	}
}

// secretsFor is every pull secret of the pod with credentials for ref's
// registry (kubelet's keyring lookup, as pull-manager credentials).
func (k keychain) secretsFor(ref string) []pullcreds.Secret {
	host := registryOf(ref)
	if host == "index.docker.io" {
		host = "docker.io"
	}
	var out []pullcreds.Secret
	for _, a := range k[host] {
		out = append(out, secretOf(a))
	}
	return out
}

// usedFor is the secret a pull of ref authenticates with, nil when the
// pull is anonymous.
func (k keychain) usedFor(ref string) *pullcreds.Secret {
	if a := k.first(registryOf(ref)); a != nil {
		s := secretOf(*a)
		return &s
	}
	return nil
}
