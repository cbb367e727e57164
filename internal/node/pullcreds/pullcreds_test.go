package pullcreds

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/klog/v2"
)

const (
	img   = "registry.example:5000/private/app:v1"
	imgID = "sha256:1111111111111111111111111111111111111111111111111111111111111111"
)

var (
	secretA = Secret{UID: "uid-a", Namespace: "default", Name: "regcred", Username: "alice", Password: "s3cret"}
	// secretB holds the same credentials as secretA under another name.
	secretB = Secret{UID: "uid-b", Namespace: "other", Name: "copy", Username: "alice", Password: "s3cret"}
	wrong   = Secret{UID: "uid-c", Namespace: "default", Name: "guess", Username: "alice", Password: "guess"}
)

func creds(ss ...Secret) func() ([]Secret, error) {
	return func() ([]Secret, error) { return ss, nil }
}

func newManager(t testing.TB, dir, policy string, allow ...string) *Manager {
	t.Helper()
	m, err := New(klog.NewContext(context.Background(), klog.Background()), Config{Dir: dir, Policy: policy, Allowlist: allow})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// pull is kubelet's pullImage bookkeeping around a successful pull.
func pull(t testing.TB, m *Manager, image, id string, used *Secret) {
	t.Helper()
	ctx := context.Background()
	if err := m.RecordPullIntent(klog.Background(), image); err != nil {
		t.Fatal(err)
	}
	m.RecordImagePulled(ctx, image, id, PulledWith(used))
}

func mustPull(t *testing.T, m *Manager, image, id string, ss ...Secret) bool {
	t.Helper()
	must, err := m.MustAttemptImagePull(context.Background(), image, id, PodCredentials(creds(ss...)))
	if err != nil {
		t.Fatal(err)
	}
	return must
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		policy string
		allow  []string
		want   string // "" valid
	}{
		{policy: NeverVerify},
		{policy: NeverVerifyPreloadedImages},
		{policy: AlwaysVerify},
		{policy: NeverVerifyAllowlistedImages, allow: []string{"registry.k8s.io/pause", "quay.io/org/*"}},
		{policy: "Sometimes", want: `invalid configuration: option "Sometimes" specified for imagePullCredentialsVerificationPolicy. Valid options are "NeverVerify", "NeverVerifyPreloadedImages", "NeverVerifyAllowlistedImages" or "AlwaysVerify"`},
		{policy: AlwaysVerify, allow: []string{"registry.k8s.io/pause"}, want: "can't set `preloadedImagesVerificationAllowlist` if `imagePullCredentialsVertificationPolicy` is not \"NeverVerifyAllowlistedImages\""},
		{policy: NeverVerifyAllowlistedImages, allow: []string{"registry.k8s.io/pause:3.10"}, want: "invalid image pattern in `preloadedImagesVerificationAllowlist`: neither tag nor digest is accepted"},
		{policy: NeverVerifyAllowlistedImages, allow: []string{"quay.io/*/x"}, want: "only patterns ending with '/*' are allowed"},
	} {
		err := Validate(tc.policy, tc.allow)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("Validate(%q, %q) = %v, want nil", tc.policy, tc.allow, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("Validate(%q, %q) = %v, want %q", tc.policy, tc.allow, err, tc.want)
		}
	}
	if _, err := New(context.Background(), Config{Dir: t.TempDir(), Policy: "Sometimes"}); err == nil {
		t.Error("New accepted an unknown policy")
	}
}

// TestDefaultPolicy is kubelet's NeverVerifyPreloadedImages: an image
// pulled with a secret is the secret holders'; a preloaded one anyone's.
func TestDefaultPolicy(t *testing.T) {
	dir := t.TempDir()
	m := newManager(t, dir, "")
	pull(t, m, img, imgID, &secretA)

	if !mustPull(t, m, img, imgID) {
		t.Error("a pod without secrets may use an image pulled with one")
	}
	if !mustPull(t, m, img, imgID, wrong) {
		t.Error("a pod with other credentials may use an image pulled with a secret")
	}
	if mustPull(t, m, img, imgID, secretA) {
		t.Error("the pod's own secret must reuse the image")
	}
	if mustPull(t, m, img, imgID, wrong, secretB) {
		t.Error("the same credentials in another secret must reuse the image")
	}
	// Another tag of the same repository with the same ID matches too
	// (records are per repository), another repository does not.
	if mustPull(t, m, "registry.example:5000/private/app:latest", imgID, secretA) {
		t.Error("another tag of the repository pulled with the secret must reuse the image")
	}
	if !mustPull(t, m, "registry.example:5000/elsewhere:v1", imgID, secretA) {
		t.Error("a repository never pulled with the secret must be pulled")
	}
	// Preloaded: no record, no intent.
	if mustPull(t, m, "docker.io/library/busybox:latest", "sha256:2222") {
		t.Error("a preloaded image must be usable by anyone under NeverVerifyPreloadedImages")
	}
	// Pulled anonymously: anyone.
	pull(t, m, "docker.io/library/alpine:3", "sha256:3333", nil)
	if mustPull(t, m, "docker.io/library/alpine:3", "sha256:3333") {
		t.Error("an image pulled without credentials must be usable by anyone")
	}

	// The records are kubelet's files under DIR/image_manager and
	// survive a restart.
	pulled, err := os.ReadDir(filepath.Join(dir, "image_manager", "pulled"))
	if err != nil || len(pulled) != 2 {
		t.Fatalf("pulled records: %v, %v; want 2 files", pulled, err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "image_manager", "pulled", pulled[0].Name()))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "s3cret") || strings.Contains(string(b), "alice") {
		t.Errorf("a record holds the credentials: %s", b)
	}
	m2 := newManager(t, dir, "")
	if !mustPull(t, m2, img, imgID) {
		t.Error("after a restart, a pod without secrets may use an image pulled with one")
	}
	if mustPull(t, m2, img, imgID, secretA) {
		t.Error("after a restart, the pod's own secret must reuse the image")
	}
}

func TestPolicies(t *testing.T) {
	const preloaded, preloadedID = "registry.k8s.io/pause:3.10", "sha256:4444"
	for _, tc := range []struct {
		policy                   string
		allow                    []string
		pulledNoSecret, preNoSec bool // must pull?
	}{
		{policy: NeverVerify, pulledNoSecret: false, preNoSec: false},
		{policy: NeverVerifyPreloadedImages, pulledNoSecret: true, preNoSec: false},
		{policy: AlwaysVerify, pulledNoSecret: true, preNoSec: true},
		{policy: NeverVerifyAllowlistedImages, allow: []string{"registry.k8s.io/*"}, pulledNoSecret: true, preNoSec: false},
		{policy: NeverVerifyAllowlistedImages, allow: []string{"registry.k8s.io/other"}, pulledNoSecret: true, preNoSec: true},
	} {
		t.Run(tc.policy+strings.Join(tc.allow, ","), func(t *testing.T) {
			m := newManager(t, t.TempDir(), tc.policy, tc.allow...)
			pull(t, m, img, imgID, &secretA)
			if got := mustPull(t, m, img, imgID); got != tc.pulledNoSecret {
				t.Errorf("image pulled with a secret, pod without: must pull %v, want %v", got, tc.pulledNoSecret)
			}
			if got := mustPull(t, m, preloaded, preloadedID); got != tc.preNoSec {
				t.Errorf("preloaded image, pod without secrets: must pull %v, want %v", got, tc.preNoSec)
			}
			if tc.policy != NeverVerify && mustPull(t, m, img, imgID, secretA) {
				t.Error("the pulling secret must reuse the image")
			}
		})
	}
}

// TestFailedPullLeavesNoRecord: a refused pull is not a pull; the image
// that was there stays the others'.
func TestFailedPullLeavesNoRecord(t *testing.T) {
	dir := t.TempDir()
	m := newManager(t, dir, "")
	if err := m.RecordPullIntent(klog.Background(), img); err != nil {
		t.Fatal(err)
	}
	intents, _ := os.ReadDir(filepath.Join(dir, "image_manager", "pulling"))
	if len(intents) != 1 {
		t.Fatalf("pulling intents during the pull: %d, want 1", len(intents))
	}
	m.RecordImagePullFailed(context.Background(), img)
	intents, _ = os.ReadDir(filepath.Join(dir, "image_manager", "pulling"))
	if len(intents) != 0 {
		t.Errorf("pulling intents after a failed pull: %d, want 0", len(intents))
	}
	pulled, _ := os.ReadDir(filepath.Join(dir, "image_manager", "pulled"))
	if len(pulled) != 0 {
		t.Errorf("pulled records after a failed pull: %d, want 0", len(pulled))
	}
}

// TestCrashDuringPull: an intent left by a crash makes the image one the
// node pulled (verified), as kubelet's initialize does.
func TestCrashDuringPull(t *testing.T) {
	dir := t.TempDir()
	m := newManager(t, dir, "")
	if err := m.RecordPullIntent(klog.Background(), img); err != nil {
		t.Fatal(err)
	}
	// No RecordImagePulled: the process died. The image arrived.
	m2, err := New(context.Background(), Config{Dir: dir, ListImages: func(context.Context) ([]Image, error) {
		return []Image{{ID: imgID, RepoTags: []string{img}}}, nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	if !mustPull(t, m2, img, imgID) {
		t.Error("an image whose pull a crash interrupted is treated as preloaded")
	}
}

func TestPostGCForgetsRemovedImages(t *testing.T) {
	dir := t.TempDir()
	m := newManager(t, dir, "")
	pull(t, m, img, imgID, &secretA)
	pull(t, m, "docker.io/library/alpine:3", "sha256:3333", &secretA)
	start := time.Now().Add(time.Second) // records are older than the GC
	m.PostGC(context.Background(), []string{"sha256:3333"}, start)
	pulled, err := os.ReadDir(filepath.Join(dir, "image_manager", "pulled"))
	if err != nil || len(pulled) != 1 {
		t.Fatalf("pulled records after GC: %d, %v; want 1 (the remaining image's)", len(pulled), err)
	}
	// The removed image's record is gone: if it comes back preloaded
	// (images load), it is anyone's again, as with kubelet.
	if mustPull(t, m, img, imgID) {
		t.Error("the record of a removed image still applies")
	}
	if !mustPull(t, m, "docker.io/library/alpine:3", "sha256:3333") {
		t.Error("the record of the remaining image was lost")
	}
}

func TestSecretHash(t *testing.T) {
	if secretA.Hash() != secretB.Hash() || secretA.Hash() == wrong.Hash() || len(secretA.Hash()) != 64 {
		t.Errorf("hashes: a %s b %s wrong %s", secretA.Hash(), secretB.Hash(), wrong.Hash())
	}
}

// BenchmarkMustAttemptImagePull is the check every container start of
// an IfNotPresent image pays: a pod with the pulling secret, records in
// memory (kubelet's cache over the files).
func BenchmarkMustAttemptImagePull(b *testing.B) {
	m := newManager(b, b.TempDir(), "")
	pull(b, m, img, imgID, &secretA)
	get := PodCredentials(creds(wrong, secretA))
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if must, err := m.MustAttemptImagePull(ctx, img, imgID, get); err != nil || must {
			b.Fatal(must, err)
		}
	}
}
