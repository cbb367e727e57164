package downward

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2/ktesting"
	"k8s.io/utils/ptr"

	"github.com/pocketkube/pocketkube/internal/golden"
)

// fakeObjects serves ConfigMaps and Secrets by name and counts the reads.
type fakeObjects struct {
	cms     map[string]*v1.ConfigMap
	secrets map[string]*v1.Secret
	gets    map[string]int
}

var _ ObjectGetter = (*fakeObjects)(nil)

func (f *fakeObjects) ConfigMap(_ context.Context, ns, name string) (*v1.ConfigMap, error) {
	f.count("configmap/" + name)
	if cm, ok := f.cms[name]; ok {
		return cm, nil
	}
	return nil, apierrors.NewNotFound(schema.GroupResource{Resource: "configmaps"}, name)
}

func (f *fakeObjects) Secret(_ context.Context, ns, name string) (*v1.Secret, error) {
	f.count("secret/" + name)
	if s, ok := f.secrets[name]; ok {
		return s, nil
	}
	return nil, apierrors.NewNotFound(schema.GroupResource{Resource: "secrets"}, name)
}

func (f *fakeObjects) count(key string) {
	if f.gets == nil {
		f.gets = map[string]int{}
	}
	f.gets[key]++
}

// failingLister is a ServiceLister whose List fails.
type failingLister struct{ corelisters.ServiceLister }

func (failingLister) List(labels.Selector) ([]*v1.Service, error) {
	return nil, errors.New("informer not started")
}

func serviceLister(t *testing.T, services ...*v1.Service) corelisters.ServiceLister {
	t.Helper()
	indexer := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{})
	for _, s := range services {
		if err := indexer.Add(s); err != nil {
			t.Fatal(err)
		}
	}
	return corelisters.NewServiceLister(indexer)
}

func service(ns, name, clusterIP string, ports ...v1.ServicePort) *v1.Service {
	return &v1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: v1.ServiceSpec{ClusterIP: clusterIP, Ports: ports}}
}

func fieldRef(path string) *v1.EnvVarSource {
	return &v1.EnvVarSource{FieldRef: &v1.ObjectFieldSelector{APIVersion: "v1", FieldPath: path}}
}

func resourceRef(res, divisor string) *v1.EnvVarSource {
	fs := &v1.ResourceFieldSelector{Resource: res}
	if divisor != "" {
		fs.Divisor = resources("d", divisor)["d"]
	}
	return &v1.EnvVarSource{ResourceFieldRef: fs}
}

// downwardPod is the chapter's pod (seed 000, "downward") as the API server
// stores it: defaulted apiVersion in fieldRefs, enableServiceLinks true,
// scheduled to node1.
func downwardPod() *v1.Pod {
	return &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "downward", UID: "8f0c2a52-4c4e-4d59-9a4e-3f3b8d1f7a10"},
		Spec: v1.PodSpec{
			NodeName: "node1", ServiceAccountName: "default", EnableServiceLinks: ptr.To(true),
			Containers: []v1.Container{{
				Name: "main", Image: "busybox", Command: []string{"sleep", "999999"},
				Resources: v1.ResourceRequirements{
					Requests: resources("cpu", "15m", "memory", "100Ki"),
					Limits:   resources("cpu", "100m", "memory", "20Mi"),
				},
				Env: []v1.EnvVar{
					{Name: "POD_NAME", ValueFrom: fieldRef("metadata.name")},
					{Name: "POD_NAMESPACE", ValueFrom: fieldRef("metadata.namespace")},
					{Name: "POD_IP", ValueFrom: fieldRef("status.podIP")},
					{Name: "NODE_NAME", ValueFrom: fieldRef("spec.nodeName")},
					{Name: "SERVICE_ACCOUNT", ValueFrom: fieldRef("spec.serviceAccountName")},
					{Name: "CONTAINER_CPU_REQUEST_MILLICORES", ValueFrom: resourceRef("requests.cpu", "1m")},
					{Name: "CONTAINER_MEMORY_LIMIT_KIBIBYTES", ValueFrom: resourceRef("limits.memory", "1Ki")},
				},
			}},
		},
	}
}

// clusterServices is what a node sees: default/kubernetes, services of
// the default namespace (named TCP+UDP ports, an unnamed port without a
// protocol, a headless one) and one elsewhere.
func clusterServices(t *testing.T) corelisters.ServiceLister {
	return serviceLister(t,
		service("default", "kubernetes", "10.96.0.1", v1.ServicePort{Name: "https", Port: 443, Protocol: v1.ProtocolTCP, TargetPort: intstr.FromInt32(6443)}),
		service("default", "dns-cache", "10.96.0.53",
			v1.ServicePort{Name: "dns", Port: 53, Protocol: v1.ProtocolUDP},
			v1.ServicePort{Name: "dns-tcp", Port: 53, Protocol: v1.ProtocolTCP},
			v1.ServicePort{Name: "metrics", Port: 9153, Protocol: v1.ProtocolTCP}),
		service("default", "my-svc", "10.96.0.20", v1.ServicePort{Port: 80}),
		service("default", "headless", v1.ClusterIPNone, v1.ServicePort{Port: 80}),
		service("default", "pending", "", v1.ServicePort{Port: 80}),
		service("kube-system", "kube-dns", "10.96.0.10", v1.ServicePort{Name: "dns", Port: 53, Protocol: v1.ProtocolUDP}),
	)
}

func formatEnv(env []v1.EnvVar) []byte {
	var b strings.Builder
	for _, e := range env {
		b.WriteString(e.Name + "=" + e.Value + "\n")
	}
	return []byte(b.String())
}

// TestEnvironmentGolden pins whole environments, one NAME=value line per
// variable in the order Environment returns them: what `kubectl exec
// downward -- env` shows, minus the image's variables and HOSTNAME.
func TestEnvironmentGolden(t *testing.T) {
	envDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(envDir, "config.env"), []byte("# written by an init container\nDB_HOST='db.example'\nMULTI='a\nb'\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		in   func() Input
	}{
		{name: "downward", in: func() Input {
			return Input{Pod: downwardPod(), PodIPs: []string{"10.244.0.5"}, HostIPs: []string{"192.0.2.2"},
				Allocatable: testAllocatable, Services: clusterServices(t), Objects: &fakeObjects{}}
		}},
		{name: "downward-service-links-off", in: func() Input {
			pod := downwardPod()
			pod.Spec.EnableServiceLinks = ptr.To(false)
			return Input{Pod: pod, PodIPs: []string{"10.244.0.5"}, HostIPs: []string{"192.0.2.2"},
				Allocatable: testAllocatable, Services: clusterServices(t), Objects: &fakeObjects{}}
		}},
		{name: "downward-4Mi", in: func() Input {
			pod := downwardPod()
			pod.Spec.Containers[0].Resources.Limits = resources("cpu", "100m", "memory", "4Mi")
			return Input{Pod: pod, PodIPs: []string{"10.244.0.5"}, HostIPs: []string{"192.0.2.2"},
				Allocatable: testAllocatable, Objects: &fakeObjects{}}
		}},
		{name: "dual-stack-ipv6-primary", in: func() Input {
			pod := downwardPod()
			pod.Namespace = "app"
			pod.Spec.Containers[0].Env = []v1.EnvVar{
				{Name: "POD_IP", ValueFrom: fieldRef("status.podIP")},
				{Name: "POD_IPS", ValueFrom: fieldRef("status.podIPs")},
				{Name: "HOST_IP", ValueFrom: fieldRef("status.hostIP")},
				{Name: "HOST_IPS", ValueFrom: fieldRef("status.hostIPs")},
				{Name: "URL", Value: "http://$(WEB_SERVICE_HOST):$(WEB_SERVICE_PORT_HTTP)/"},
			}
			return Input{Pod: pod, PodIPs: []string{"fd00::5", "10.244.0.5"}, HostIPs: []string{"2001:db8::2", "192.0.2.2"},
				Allocatable: testAllocatable, Objects: &fakeObjects{},
				Services: serviceLister(t,
					service("default", "kubernetes", "fd00:10:96::1", v1.ServicePort{Name: "https", Port: 443, Protocol: v1.ProtocolTCP}),
					service("app", "web", "fd00:10:96::a0", v1.ServicePort{Name: "http", Port: 80, Protocol: v1.ProtocolTCP}, v1.ServicePort{Name: "quic", Port: 443, Protocol: v1.ProtocolUDP}),
					service("app", "sctp-svc", "10.96.0.40", v1.ServicePort{Port: 3868, Protocol: v1.ProtocolSCTP}),
				)}
		}},
		{name: "envfrom-and-expansion", in: func() Input {
			pod := downwardPod()
			pod.Namespace = "app"
			pod.Labels = map[string]string{"tier": "web"}
			pod.Spec.Volumes = []v1.Volume{{Name: "envs", VolumeSource: v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{}}}}
			pod.Spec.Containers[0].EnvFrom = []v1.EnvFromSource{
				{ConfigMapRef: &v1.ConfigMapEnvSource{LocalObjectReference: v1.LocalObjectReference{Name: "cfg"}}},
				{Prefix: "S_", SecretRef: &v1.SecretEnvSource{LocalObjectReference: v1.LocalObjectReference{Name: "sec"}}},
				{ConfigMapRef: &v1.ConfigMapEnvSource{LocalObjectReference: v1.LocalObjectReference{Name: "absent"}, Optional: ptr.To(true)}},
				{Prefix: "P_", SecretRef: &v1.SecretEnvSource{LocalObjectReference: v1.LocalObjectReference{Name: "absent"}, Optional: ptr.To(true)}},
			}
			pod.Spec.Containers[0].Env = []v1.EnvVar{
				{Name: "SHARED", Value: "env"},
				{Name: "COMPOSED", Value: "$(K1)-$(SHARED)-$(LATER)-$$(K1)-$(MY_SVC_SERVICE_HOST)-$(UNDEFINED)-$(unclosed"},
				{Name: "LATER", Value: "late"},
				{Name: "KUBERNETES_SERVICE_HOST", Value: "overridden"},
				{Name: "TIER", ValueFrom: fieldRef("metadata.labels['tier']")},
				{Name: "CPU_LIMIT", ValueFrom: resourceRef("limits.cpu", "")},
				{Name: "EPHEMERAL_LIMIT_GI", ValueFrom: resourceRef("limits.ephemeral-storage", "1Gi")},
				{Name: "FROM_CM", ValueFrom: &v1.EnvVarSource{ConfigMapKeyRef: &v1.ConfigMapKeySelector{LocalObjectReference: v1.LocalObjectReference{Name: "cfg"}, Key: "K1"}}},
				{Name: "FROM_SECRET", ValueFrom: &v1.EnvVarSource{SecretKeyRef: &v1.SecretKeySelector{LocalObjectReference: v1.LocalObjectReference{Name: "sec"}, Key: "PASSWORD"}}},
				{Name: "OPT_KEY", ValueFrom: &v1.EnvVarSource{ConfigMapKeyRef: &v1.ConfigMapKeySelector{LocalObjectReference: v1.LocalObjectReference{Name: "cfg"}, Key: "nope", Optional: ptr.To(true)}}},
				{Name: "OPT_OBJECT", ValueFrom: &v1.EnvVarSource{SecretKeyRef: &v1.SecretKeySelector{LocalObjectReference: v1.LocalObjectReference{Name: "absent"}, Key: "k", Optional: ptr.To(true)}}},
				{Name: "DB_HOST", ValueFrom: &v1.EnvVarSource{FileKeyRef: &v1.FileKeySelector{VolumeName: "envs", Path: "config.env", Key: "DB_HOST"}}},
				{Name: "MULTI", ValueFrom: &v1.EnvVarSource{FileKeyRef: &v1.FileKeySelector{VolumeName: "envs", Path: "config.env", Key: "MULTI"}}},
				{Name: "OPT_FILE_KEY", ValueFrom: &v1.EnvVarSource{FileKeyRef: &v1.FileKeySelector{VolumeName: "envs", Path: "config.env", Key: "NOPE", Optional: ptr.To(true)}}},
				{Name: "EMPTY"},
			}
			return Input{Pod: pod, PodIPs: []string{"10.244.0.5"}, HostIPs: []string{"192.0.2.2"}, Allocatable: testAllocatable,
				Services: serviceLister(t,
					service("default", "kubernetes", "10.96.0.1", v1.ServicePort{Name: "https", Port: 443, Protocol: v1.ProtocolTCP}),
					service("app", "my-svc", "10.96.0.20", v1.ServicePort{Port: 80, Protocol: v1.ProtocolTCP})),
				Objects: &fakeObjects{
					cms: map[string]*v1.ConfigMap{"cfg": {Data: map[string]string{
						"K1": "from-cm", "SHARED": "cm",
						// Not C identifiers; kubelet v1.37 passes them on.
						"a.b": "dotted", "1x": "digit", "-dash": "dash",
					}}},
					secrets: map[string]*v1.Secret{"sec": {Data: map[string][]byte{"PASSWORD": []byte("pw"), "K1": []byte("secret-k1")}}},
				},
				VolumePaths: map[string]string{"envs": envDir},
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, ctx := ktesting.NewTestContext(t)
			in := tc.in()
			in.Container = &in.Pod.Spec.Containers[0]
			env, err := Environment(ctx, in)
			if err != nil {
				t.Fatal(err)
			}
			seen := map[string]bool{}
			for _, e := range env {
				if seen[e.Name] {
					t.Errorf("%s appears twice", e.Name)
				}
				seen[e.Name] = true
			}
			golden.Check(t, "env/"+tc.name+".golden", formatEnv(env))
		})
	}
}

func TestEnvironmentErrors(t *testing.T) {
	// envDir is the volume; a valid env file sits next to it, outside.
	base := t.TempDir()
	envDir := filepath.Join(base, "vol")
	if err := os.Mkdir(envDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(base, "outside.env"), []byte("A='leaked'\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(envDir, "ok.env"), []byte("A='1'\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(envDir, "bad.env"), []byte("A=unquoted\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A container writes the volume: a FIFO would block kubelet's open
	// forever, a huge file would be read whole.
	if err := unix.Mkfifo(filepath.Join(envDir, "fifo.env"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(envDir, "huge.env"), append([]byte("A='1'\n"), bytes.Repeat([]byte("#\n"), 8<<20)...), 0o644); err != nil {
		t.Fatal(err)
	}
	objects := &fakeObjects{
		cms:     map[string]*v1.ConfigMap{"cfg": {Data: map[string]string{"K": "v"}}},
		secrets: map[string]*v1.Secret{"sec": {Data: map[string][]byte{"K": []byte("v")}}},
	}
	fileRef := func(path, key string) *v1.EnvVarSource {
		return &v1.EnvVarSource{FileKeyRef: &v1.FileKeySelector{VolumeName: "envs", Path: path, Key: key}}
	}
	for _, tc := range []struct {
		name     string
		links    *bool
		services corelisters.ServiceLister
		env      []v1.EnvVar
		envFrom  []v1.EnvFromSource
		want     string
	}{
		{name: "nil enableServiceLinks", links: nil, want: "nil pod.spec.enableServiceLinks encountered, cannot construct envvars"},
		{name: "service list fails", links: ptr.To(true), services: failingLister{}, want: "failed to list services when setting up env vars"},
		{name: "missing configmap", links: ptr.To(true),
			envFrom: []v1.EnvFromSource{{ConfigMapRef: &v1.ConfigMapEnvSource{LocalObjectReference: v1.LocalObjectReference{Name: "absent"}}}},
			want:    `configmaps "absent" not found`},
		{name: "missing secret", links: ptr.To(true),
			env:  []v1.EnvVar{{Name: "X", ValueFrom: &v1.EnvVarSource{SecretKeyRef: &v1.SecretKeySelector{LocalObjectReference: v1.LocalObjectReference{Name: "absent"}, Key: "K"}}}},
			want: `secrets "absent" not found`},
		{name: "missing configmap key", links: ptr.To(true),
			env:  []v1.EnvVar{{Name: "X", ValueFrom: &v1.EnvVarSource{ConfigMapKeyRef: &v1.ConfigMapKeySelector{LocalObjectReference: v1.LocalObjectReference{Name: "cfg"}, Key: "nope"}}}},
			want: "couldn't find key nope in ConfigMap app/cfg"},
		{name: "missing secret key", links: ptr.To(true),
			env:  []v1.EnvVar{{Name: "X", ValueFrom: &v1.EnvVarSource{SecretKeyRef: &v1.SecretKeySelector{LocalObjectReference: v1.LocalObjectReference{Name: "sec"}, Key: "nope"}}}},
			want: "couldn't find key nope in Secret app/sec"},
		{name: "bad field path", links: ptr.To(true),
			env:  []v1.EnvVar{{Name: "X", ValueFrom: fieldRef("spec.containers")}},
			want: "field label not supported: spec.containers"},
		{name: "bad resource", links: ptr.To(true),
			env:  []v1.EnvVar{{Name: "X", ValueFrom: resourceRef("limits.example.com/foo", "")}},
			want: "unsupported container resource : limits.example.com/foo"},
		{name: "file volume unknown", links: ptr.To(true),
			env:  []v1.EnvVar{{Name: "X", ValueFrom: &v1.EnvVarSource{FileKeyRef: &v1.FileKeySelector{VolumeName: "other", Path: "ok.env", Key: "A"}}}},
			want: `cannot find the volume "other" referenced by FileKeyRef`},
		{name: "file key missing", links: ptr.To(true),
			env:  []v1.EnvVar{{Name: "X", ValueFrom: fileRef("ok.env", "B")}},
			want: `environment variable key "B" not found in file "` + filepath.Join(envDir, "ok.env") + `"`},
		{name: "file unparsable", links: ptr.To(true),
			env:  []v1.EnvVar{{Name: "X", ValueFrom: fileRef("bad.env", "A")}},
			want: "couldn't parse env file"},
		{name: "file missing", links: ptr.To(true),
			env:  []v1.EnvVar{{Name: "X", ValueFrom: fileRef("absent.env", "A")}},
			want: "couldn't parse env file"},
		{name: "file is a FIFO", links: ptr.To(true),
			env:  []v1.EnvVar{{Name: "X", ValueFrom: fileRef("fifo.env", "A")}},
			want: "couldn't parse env file"},
		{name: "file larger than 16 MiB", links: ptr.To(true),
			env:  []v1.EnvVar{{Name: "X", ValueFrom: fileRef("huge.env", "A")}},
			want: "couldn't parse env file"},
		{name: "file path escapes the volume", links: ptr.To(true),
			env:  []v1.EnvVar{{Name: "X", ValueFrom: fileRef("../outside.env", "A")}},
			want: "couldn't parse env file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, ctx := ktesting.NewTestContext(t)
			pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "p"}, Spec: v1.PodSpec{
				EnableServiceLinks: tc.links,
				Containers:         []v1.Container{{Name: "c", Env: tc.env, EnvFrom: tc.envFrom}},
			}}
			_, err := Environment(ctx, Input{Pod: pod, Container: &pod.Spec.Containers[0], Services: tc.services, Objects: objects,
				VolumePaths: map[string]string{"envs": envDir}})
			if err == nil || err.Error() != tc.want {
				t.Errorf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

// TestEnvironmentReadsObjectsOnce checks kubelet's per-container cache:
// envFrom and keyRefs to the same object share one read, so they see one
// version of it.
func TestEnvironmentReadsObjectsOnce(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	objects := &fakeObjects{
		cms:     map[string]*v1.ConfigMap{"cfg": {Data: map[string]string{"K": "v"}}},
		secrets: map[string]*v1.Secret{"sec": {Data: map[string][]byte{"K": []byte("v")}}},
	}
	cmKey := &v1.EnvVarSource{ConfigMapKeyRef: &v1.ConfigMapKeySelector{LocalObjectReference: v1.LocalObjectReference{Name: "cfg"}, Key: "K"}}
	secretKey := &v1.EnvVarSource{SecretKeyRef: &v1.SecretKeySelector{LocalObjectReference: v1.LocalObjectReference{Name: "sec"}, Key: "K"}}
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "p"}, Spec: v1.PodSpec{
		EnableServiceLinks: ptr.To(true),
		Containers: []v1.Container{{Name: "c",
			EnvFrom: []v1.EnvFromSource{{ConfigMapRef: &v1.ConfigMapEnvSource{LocalObjectReference: v1.LocalObjectReference{Name: "cfg"}}}},
			Env:     []v1.EnvVar{{Name: "A", ValueFrom: cmKey}, {Name: "B", ValueFrom: cmKey}, {Name: "C", ValueFrom: secretKey}, {Name: "D", ValueFrom: secretKey}},
		}},
	}}
	if _, err := Environment(ctx, Input{Pod: pod, Container: &pod.Spec.Containers[0], Objects: objects}); err != nil {
		t.Fatal(err)
	}
	if want := map[string]int{"configmap/cfg": 1, "secret/sec": 1}; !equalCounts(objects.gets, want) {
		t.Errorf("reads %v, want %v", objects.gets, want)
	}
}

func equalCounts(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
