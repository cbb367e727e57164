package agent

import (
	"errors"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2/ktesting"
)

// TestPodManager checks the agent's pods as upstream's podcertificate
// manager reads them: by UID from the informer, and all of them.
func TestPodManager(t *testing.T) {
	f := newFixture(t)
	for _, name := range []string{"a", "b"} {
		f.pods = append(f.pods, &v1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, UID: types.UID("uid-" + name)}})
	}
	a := f.newAgent()
	m := podManager{lister: a.podLister, indexer: a.informers.Core().V1().Pods().Informer().GetIndexer()}
	if p, ok := m.GetPodByUID("uid-b"); !ok || p.Name != "b" {
		t.Errorf("GetPodByUID(uid-b) = %v, %v; want pod b", p, ok)
	}
	if p, ok := m.GetPodByUID("uid-gone"); ok {
		t.Errorf("GetPodByUID(uid-gone) = %v, want none", p)
	}
	if pods := m.GetPods(); len(pods) != 2 {
		t.Errorf("GetPods() = %d pods, want 2", len(pods))
	}
}

// TestServesPodCertificateRequests checks the discovery answer that
// decides between the issuing manager and kubelet's no-op one.
func TestServesPodCertificateRequests(t *testing.T) {
	list := func(names ...string) *metav1.APIResourceList {
		l := &metav1.APIResourceList{GroupVersion: "certificates.k8s.io/v1"}
		for _, n := range names {
			l.APIResources = append(l.APIResources, metav1.APIResource{Name: n})
		}
		return l
	}
	for _, tc := range []struct {
		name    string
		list    *metav1.APIResourceList
		err     error
		want    bool
		wantErr bool
	}{
		{name: "served", list: list("certificatesigningrequests", "clustertrustbundles", "podcertificaterequests", "podcertificaterequests/status"), want: true},
		{name: "group version without it", list: list("certificatesigningrequests")},
		{name: "group version not served", err: apierrors.NewNotFound(schema.GroupResource{}, "")},
		{name: "discovery fails", err: errors.New("connection refused"), wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := servesPodCertificateRequests(func(gv string) (*metav1.APIResourceList, error) {
				if gv != "certificates.k8s.io/v1" {
					t.Errorf("asked for %s", gv)
				}
				return tc.list, tc.err
			})
			if got != tc.want || (err != nil) != tc.wantErr {
				t.Errorf("= %v, %v; want %v, error %v", got, err, tc.want, tc.wantErr)
			}
		})
	}
}

// TestSyncResyncsPodCertificates checks that a running pod with a
// podCertificate source asks for a sync within kubelet's sync frequency,
// which re-writes its volumes with a refreshed certificate, and that a
// pod without one asks for none.
func TestSyncResyncsPodCertificates(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	f := newFixture(t)
	withCert := newPod("pc", "c")
	withCert.Spec.Volumes = []v1.Volume{{Name: "certs", VolumeSource: v1.VolumeSource{Projected: &v1.ProjectedVolumeSource{
		Sources: []v1.VolumeProjection{{PodCertificate: &v1.PodCertificateProjection{SignerName: "example.com/s", KeyType: "ED25519", CredentialBundlePath: "b.pem"}}}}}}}
	f.pods = append(f.pods, withCert, newPod("plain", "c"))
	f.newAgent()
	for _, tc := range []struct {
		pod  string
		want time.Duration
	}{{"pc", podCertificateResync}, {"plain", 0}} {
		f.mustSync(ctx, tc.pod)
		if requeue := f.mustSync(ctx, tc.pod); requeue != tc.want {
			t.Errorf("running pod %s: requeue after %s, want %s", tc.pod, requeue, tc.want)
		}
	}
}
