package volume

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	certificatesv1 "k8s.io/api/certificates/v1"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2/ktesting"
)

// tokenSources adds bound tokens and node allocatable to fakeSources.
type tokenSources struct {
	fakeSources
	requests []*authenticationv1.TokenRequest
}

func (s *tokenSources) ServiceAccountToken(_ context.Context, ns, sa string, req *authenticationv1.TokenRequest) (*authenticationv1.TokenRequest, error) {
	s.requests = append(s.requests, req)
	out := req.DeepCopy()
	out.Status = authenticationv1.TokenRequestStatus{Token: "token-for-" + ns + "-" + sa, ExpirationTimestamp: metav1.NewTime(time.Now().Add(time.Hour))}
	return out, nil
}

func (s *tokenSources) NodeAllocatable() v1.ResourceList {
	return v1.ResourceList{v1.ResourceCPU: resource.MustParse("2"), v1.ResourceMemory: resource.MustParse("8Gi")}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// The kube-api-access volume ServiceAccount admission injects: token,
// ca.crt from kube-root-ca.crt, namespace from the Downward API.
func TestProjectedServiceAccountVolume(t *testing.T) {
	requireRoot(t)
	_, ctx := ktesting.NewTestContext(t)
	m := newTestManager(t, Config{})
	src := &tokenSources{fakeSources: fakeSources{configMaps: map[string]*v1.ConfigMap{
		"ns/kube-root-ca.crt": {Data: map[string]string{"ca.crt": "CA PEM"}},
	}}}
	pod := testPod("uid-p")
	pod.Spec.ServiceAccountName = "default"
	vol := &v1.Volume{Name: "kube-api-access-x", VolumeSource: v1.VolumeSource{Projected: &v1.ProjectedVolumeSource{
		DefaultMode: ptr(int32(0o644)),
		Sources: []v1.VolumeProjection{
			{ServiceAccountToken: &v1.ServiceAccountTokenProjection{Path: "token", ExpirationSeconds: ptr(int64(3607))}},
			{ConfigMap: &v1.ConfigMapProjection{LocalObjectReference: v1.LocalObjectReference{Name: "kube-root-ca.crt"}, Items: []v1.KeyToPath{{Key: "ca.crt", Path: "ca.crt"}}}},
			{DownwardAPI: &v1.DownwardAPIProjection{Items: []v1.DownwardAPIVolumeFile{{Path: "namespace", FieldRef: &v1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.namespace"}}}}},
		},
	}}}
	mnt, err := m.Setup(ctx, pod, vol, src)
	if err != nil {
		t.Fatal(err)
	}
	if !mnt.ReadOnly || filepath.Base(filepath.Dir(mnt.Path)) != "kubernetes.io~projected" {
		t.Errorf("mounted %+v", mnt)
	}
	for name, want := range map[string]string{"token": "token-for-ns-default", "ca.crt": "CA PEM", "namespace": pod.Namespace} {
		if got := readFile(t, filepath.Join(mnt.Path, name)); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
		fi, _ := os.Stat(filepath.Join(mnt.Path, name))
		if fi.Mode().Perm() != 0o644 {
			t.Errorf("%s mode %v, want 0644", name, fi.Mode().Perm())
		}
	}
	req := src.requests[0]
	if ref := req.Spec.BoundObjectRef; ref == nil || ref.Kind != "Pod" || ref.Name != pod.Name || ref.UID != pod.UID || *req.Spec.ExpirationSeconds != 3607 {
		t.Errorf("token request %+v", req.Spec)
	}
	// A single runAsUser (immutable, so a new pod) makes the token 0600,
	// owned by that user.
	pod2 := testPod("uid-p2")
	pod2.Spec.ServiceAccountName = "default"
	pod2.Spec.SecurityContext = &v1.PodSecurityContext{RunAsUser: ptr(int64(1000))}
	mnt2, err := m.Setup(ctx, pod2, vol, src)
	if err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(filepath.Join(mnt2.Path, "token"))
	if fi.Mode().Perm() != 0o600 || fi.Sys().(*syscall.Stat_t).Uid != 1000 {
		t.Errorf("token mode with runAsUser %v uid %d, want 0600 and 1000", fi.Mode().Perm(), fi.Sys().(*syscall.Stat_t).Uid)
	}
}

func TestDownwardAPIVolume(t *testing.T) {
	requireRoot(t)
	_, ctx := ktesting.NewTestContext(t)
	m := newTestManager(t, Config{})
	src := &tokenSources{}
	pod := testPod("uid-d")
	pod.Labels = map[string]string{"b": "2", "a": "x\"y"}
	pod.Spec.Containers = []v1.Container{{Name: "main", Resources: v1.ResourceRequirements{Requests: v1.ResourceList{v1.ResourceCPU: resource.MustParse("250m")}}}}
	vol := &v1.Volume{Name: "podinfo", VolumeSource: v1.VolumeSource{DownwardAPI: &v1.DownwardAPIVolumeSource{
		Items: []v1.DownwardAPIVolumeFile{
			{Path: "labels", FieldRef: &v1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.labels"}},
			{Path: "cpu_request", ResourceFieldRef: &v1.ResourceFieldSelector{ContainerName: "main", Resource: "requests.cpu", Divisor: resource.MustParse("1m")}},
			{Path: "cpu_limit", ResourceFieldRef: &v1.ResourceFieldSelector{ContainerName: "main", Resource: "limits.cpu"}},
			{Path: "sub/name", FieldRef: &v1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.name"}},
		},
	}}}
	mnt, err := m.Setup(ctx, pod, vol, src)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"labels": "a=\"x\\\"y\"\nb=\"2\"", "cpu_request": "250", "cpu_limit": "2", "sub/name": pod.Name} {
		if got := readFile(t, filepath.Join(mnt.Path, name)); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	// A label change swaps the files; resource values stay.
	pod.Labels["b"] = "3"
	if _, err := m.Setup(ctx, pod, vol, src); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(mnt.Path, "labels")); got != "a=\"x\\\"y\"\nb=\"3\"" {
		t.Errorf("labels after update = %q", got)
	}
}

// bundleSources answers trust anchors as kubelet's manager would: by name
// from bundles, by signer the concatenation of the signer's bundles.
type bundleSources struct {
	fakeSources
	bundles map[string]string // name → PEM
	signers map[string]string // signerName → PEM
}

func (s *bundleSources) GetTrustAnchorsByName(_ context.Context, name string, allowMissing bool) ([]byte, error) {
	if pem, ok := s.bundles[name]; ok {
		return []byte(pem), nil
	}
	if allowMissing {
		return []byte{}, nil
	}
	return nil, fmt.Errorf("while getting ClusterTrustBundle: %w", apierrors.NewNotFound(certificatesv1.Resource("clustertrustbundles"), name))
}

func (s *bundleSources) GetTrustAnchorsBySigner(_ context.Context, signer string, sel *metav1.LabelSelector, allowMissing bool) ([]byte, error) {
	if pem, ok := s.signers[signer]; ok && sel != nil {
		return []byte(pem), nil
	}
	if allowMissing {
		return []byte{}, nil
	}
	return nil, errors.New("combination of signerName and labelSelector matched zero ClusterTrustBundles")
}

// TestProjectedClusterTrustBundle checks clusterTrustBundle sources: by
// name and by signer, optional ones empty when missing, a required one
// failing the volume with the manager's error, the file modes of kubelet's
// projected plugin.
func TestProjectedClusterTrustBundle(t *testing.T) {
	requireRoot(t)
	_, ctx := ktesting.NewTestContext(t)
	m := newTestManager(t, Config{})
	src := &bundleSources{bundles: map[string]string{"named": "NAMED PEM\n"}, signers: map[string]string{"example.com/signer": "SIGNER PEM\n"}}
	projected := func(sources ...v1.VolumeProjection) *v1.Volume {
		return &v1.Volume{Name: "ctb", VolumeSource: v1.VolumeSource{Projected: &v1.ProjectedVolumeSource{DefaultMode: ptr(int32(0o644)), Sources: sources}}}
	}
	vol := projected(
		v1.VolumeProjection{ClusterTrustBundle: &v1.ClusterTrustBundleProjection{Name: ptr("named"), Path: "by-name.pem"}},
		v1.VolumeProjection{ClusterTrustBundle: &v1.ClusterTrustBundleProjection{SignerName: ptr("example.com/signer"), LabelSelector: &metav1.LabelSelector{}, Path: "by-signer.pem"}},
		v1.VolumeProjection{ClusterTrustBundle: &v1.ClusterTrustBundleProjection{Name: ptr("absent"), Optional: ptr(true), Path: "optional.pem"}},
	)
	pod := testPod("uid-ctb")
	mnt, err := m.Setup(ctx, pod, vol, src)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"by-name.pem": "NAMED PEM\n", "by-signer.pem": "SIGNER PEM\n", "optional.pem": ""} {
		if got := readFile(t, filepath.Join(mnt.Path, name)); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
		if fi, _ := os.Stat(filepath.Join(mnt.Path, name)); fi.Mode().Perm() != 0o644 {
			t.Errorf("%s mode %v, want 0644", name, fi.Mode().Perm())
		}
	}
	// fsGroup makes the files 0600, as kubelet's projected plugin does,
	// then group-readable by the ownership change (0640).
	pod2 := testPod("uid-ctb2")
	pod2.Spec.SecurityContext = &v1.PodSecurityContext{FSGroup: ptr(int64(1234))}
	mnt2, err := m.Setup(ctx, pod2, vol, src)
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(filepath.Join(mnt2.Path, "by-name.pem")); fi.Mode().Perm() != 0o640 {
		t.Errorf("by-name.pem with fsGroup: mode %v, want 0640", fi.Mode().Perm())
	}
	for _, tc := range []struct {
		name string
		src  v1.ClusterTrustBundleProjection
		want string
	}{
		{"missing bundle", v1.ClusterTrustBundleProjection{Name: ptr("absent"), Path: "x"},
			`MountVolume.SetUp failed for volume "ctb" : while getting ClusterTrustBundle: clustertrustbundles.certificates.k8s.io "absent" not found`},
		{"signer without bundles", v1.ClusterTrustBundleProjection{SignerName: ptr("example.com/none"), LabelSelector: &metav1.LabelSelector{}, Path: "x"},
			`MountVolume.SetUp failed for volume "ctb" : combination of signerName and labelSelector matched zero ClusterTrustBundles`},
		{"neither name nor signer", v1.ClusterTrustBundleProjection{Path: "x"},
			`MountVolume.SetUp failed for volume "ctb" : ClusterTrustBundle projection requires either name or signerName to be set`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := m.Setup(ctx, testPod("uid-ctb-err"), projected(v1.VolumeProjection{ClusterTrustBundle: &tc.src}), src)
			if err == nil || err.Error() != tc.want {
				t.Errorf("error %v\nwant %s", err, tc.want)
			}
		})
	}
}

// certSources answers pod certificates as kubelet's podcertificate manager
// would: the key and chain of an issued projection, keyed by namespace,
// pod, UID, volume and source index; the manager's error before issuance.
type certSources struct {
	fakeSources
	issued map[string][2]string // "ns/pod/uid/volume/index" → key, chain
}

var _ PodCertificateSource = (*certSources)(nil)

func (s *certSources) GetPodCertificateCredentialBundle(_ context.Context, ns, pod, uid, vol string, idx int) ([]byte, []byte, error) {
	b, ok := s.issued[fmt.Sprintf("%s/%s/%s/%s/%d", ns, pod, uid, vol, idx)]
	if !ok {
		return nil, nil, errors.New("credential bundle is not issued yet")
	}
	return []byte(b[0]), []byte(b[1]), nil
}

// TestProjectedPodCertificate checks podCertificate sources as kubelet's
// projected plugin writes them: the credential bundle (key, then chain),
// the key and the chain files, 0600 with fsGroup (0640 after the ownership
// change), the source's index passed to the manager, the manager's error
// failing the volume until the certificate is issued, and a refreshed
// certificate replacing the files on the next setup.
func TestProjectedPodCertificate(t *testing.T) {
	requireRoot(t)
	_, ctx := ktesting.NewTestContext(t)
	m := newTestManager(t, Config{})
	vol := &v1.Volume{Name: "certs", VolumeSource: v1.VolumeSource{Projected: &v1.ProjectedVolumeSource{DefaultMode: ptr(int32(0o644)), Sources: []v1.VolumeProjection{
		{DownwardAPI: &v1.DownwardAPIProjection{Items: []v1.DownwardAPIVolumeFile{{Path: "name", FieldRef: &v1.ObjectFieldSelector{FieldPath: "metadata.name"}}}}},
		{PodCertificate: &v1.PodCertificateProjection{SignerName: "example.com/s", KeyType: "ED25519",
			CredentialBundlePath: "bundle.pem", KeyPath: "key.pem", CertificateChainPath: "chain.pem"}},
	}}}}
	pod := testPod("uid-pc")
	src := &certSources{issued: map[string][2]string{}}

	_, err := m.Setup(ctx, pod, vol, src)
	if want := `MountVolume.SetUp failed for volume "certs" : credential bundle is not issued yet`; err == nil || err.Error() != want {
		t.Fatalf("before issuance: error %v, want %s", err, want)
	}
	if _, err := m.Setup(ctx, pod, vol, &fakeSources{}); err == nil {
		t.Fatal("a node without a pod certificate manager set the volume up")
	}

	for _, round := range []struct{ key, chain string }{{"KEY1\n", "CHAIN1\n"}, {"KEY2\n", "CHAIN2a\nCHAIN2b\n"}} {
		src.issued["ns/pod/uid-pc/certs/1"] = [2]string{round.key, round.chain}
		mnt, err := m.Setup(ctx, pod, vol, src)
		if err != nil {
			t.Fatal(err)
		}
		for name, want := range map[string]string{"bundle.pem": round.key + round.chain, "key.pem": round.key, "chain.pem": round.chain, "name": "pod"} {
			if got := readFile(t, filepath.Join(mnt.Path, name)); got != want {
				t.Errorf("%s = %q, want %q", name, got, want)
			}
			if fi, _ := os.Stat(filepath.Join(mnt.Path, name)); fi.Mode().Perm() != 0o644 {
				t.Errorf("%s mode %v, want 0644", name, fi.Mode().Perm())
			}
		}
	}

	pod2 := testPod("uid-pc2")
	pod2.Spec.SecurityContext = &v1.PodSecurityContext{FSGroup: ptr(int64(1234))}
	src.issued["ns/pod/uid-pc2/certs/1"] = [2]string{"K\n", "C\n"}
	mnt2, err := m.Setup(ctx, pod2, vol, src)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"bundle.pem", "key.pem", "chain.pem"} {
		fi, err := os.Stat(filepath.Join(mnt2.Path, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o640 || fi.Sys().(*syscall.Stat_t).Gid != 1234 {
			t.Errorf("%s with fsGroup: mode %v gid %d, want 0640 gid 1234", name, fi.Mode().Perm(), fi.Sys().(*syscall.Stat_t).Gid)
		}
	}
}
