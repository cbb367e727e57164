package agent

import (
	"fmt"
	"slices"
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/klog/v2"
	"k8s.io/klog/v2/ktesting"

	"github.com/pocketkube/pocketkube/internal/node/image"
	"github.com/pocketkube/pocketkube/internal/node/pullcreds"
)

// TestSyncPodEnsureSecretPulledImages: busybox is on the node, pulled
// with the secret ns/regcred (kubelet's record); under kubelet's default
// policy a pod with IfNotPresent or Never uses it only with the secret.
func TestSyncPodEnsureSecretPulledImages(t *testing.T) {
	regcred := &v1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "regcred", UID: "regcred-uid"},
		Type:       v1.SecretTypeDockerConfigJson,
		Data:       map[string][]byte{v1.DockerConfigJsonKey: []byte(`{"auths":{"https://index.docker.io/v1/":{"username":"u","password":"p"}}}`)},
	}
	other := &v1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "other", UID: "other-uid"},
		Type:       v1.SecretTypeDockerConfigJson,
		Data:       map[string][]byte{v1.DockerConfigJsonKey: []byte(`{"auths":{"docker.io":{"username":"u","password":"guess"}}}`)},
	}
	for _, tc := range []struct {
		name       string
		policy     v1.PullPolicy
		secret     string
		pullErr    error
		wantPull   bool
		wantStatus string
		wantEvent  string
	}{
		{name: "with the secret", policy: v1.PullIfNotPresent, secret: "regcred",
			wantStatus: "c running restarts=0 ready", wantEvent: `Normal Pulled Container image "busybox" already present on machine and can be accessed by the pod`},
		{name: "without secrets pulls", policy: v1.PullIfNotPresent, wantPull: true,
			wantStatus: "c running restarts=0 ready", wantEvent: `Normal Pulling Pulling image "busybox"`},
		{name: "other credentials pull", policy: v1.PullIfNotPresent, secret: "other", wantPull: true,
			wantStatus: "c running restarts=0 ready", wantEvent: `Normal Pulling Pulling image "busybox"`},
		{name: "refused", policy: v1.PullIfNotPresent, pullErr: fmt.Errorf("pull busybox: UNAUTHORIZED"), wantPull: true,
			wantStatus: `c waiting ErrImagePull "pull busybox: UNAUTHORIZED" restarts=0`, wantEvent: "Warning Failed Error: ErrImagePull"},
		// The offline fallback must not hand the image to a pod that may
		// not use it.
		{name: "unreachable", policy: v1.PullIfNotPresent, pullErr: fmt.Errorf("pull busybox: %w", image.ErrUnreachable), wantPull: true,
			wantStatus: `c waiting ErrImagePull "pull busybox: registry unreachable" restarts=0`, wantEvent: "Warning Failed Error: ErrImagePull"},
		{name: "always unreachable", policy: v1.PullAlways, pullErr: fmt.Errorf("pull busybox: %w", image.ErrUnreachable), wantPull: true,
			wantStatus: `c waiting ErrImagePull "pull busybox: registry unreachable" restarts=0`, wantEvent: "Warning Failed Error: ErrImagePull"},
		{name: "always unreachable with the secret", policy: v1.PullAlways, secret: "regcred", pullErr: fmt.Errorf("pull busybox: %w", image.ErrUnreachable), wantPull: true,
			wantStatus: "c running restarts=0 ready", wantEvent: `Normal Pulled Container image "busybox" already present on machine; registry unreachable`},
		{name: "never", policy: v1.PullNever,
			wantStatus: `c waiting ErrImageNeverPull "Container image \"busybox\" is not present with pull policy of Never" restarts=0`, wantEvent: "Warning ErrImageNeverPull Container image \"busybox\" is not present with pull policy of Never"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, ctx := ktesting.NewTestContext(t)
			f := newFixture(t)
			f.images.pullErr = tc.pullErr
			f.objects = []k8sruntime.Object{regcred, other}
			pm, err := pullcreds.New(ctx, pullcreds.Config{Dir: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			present, _ := f.images.Get(ctx, busybox)
			if err := pm.RecordPullIntent(klog.Background(), busybox); err != nil {
				t.Fatal(err)
			}
			pm.RecordImagePulled(ctx, busybox, present.ID, pullcreds.PulledWith(&pullcreds.Secret{
				UID: "regcred-uid", Namespace: "ns", Name: "regcred", Username: "u", Password: "p"}))
			f.config = func(c *Config) { c.PullCredentials = pm }
			pod := newPod("web", "c")
			pod.Spec.Containers[0].ImagePullPolicy = tc.policy
			if tc.secret != "" {
				pod.Spec.ImagePullSecrets = []v1.LocalObjectReference{{Name: tc.secret}}
			}
			f.pods = append(f.pods, pod)
			f.newAgent()
			f.syncPull(ctx, "web", tc.wantPull, tc.wantStatus)
			var events []string
			for len(f.recorder.Events) > 0 {
				events = append(events, <-f.recorder.Events)
			}
			if !slices.Contains(events, tc.wantEvent) {
				t.Errorf("events %q lack %q", events, tc.wantEvent)
			}
		})
	}
}
