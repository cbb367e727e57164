package agent

import (
	"context"
	"encoding/json"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "k8s.io/api/core/v1"
)

// pullKeychain turns the pod's imagePullSecrets into credentials; a
// secret that cannot be read is skipped, as kubelet does, with an event.
func (a *Agent) pullKeychain(ctx context.Context, pod *v1.Pod) authn.Keychain {
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
