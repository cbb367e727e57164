package volume

import (
	"context"
	"os"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2/ktesting"

	"github.com/pocketkube/pocketkube/internal/golden"
)

func testObjects() *fakeSources {
	return &fakeSources{
		configMaps: map[string]*v1.ConfigMap{
			"ns/cfg": {
				ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "cfg"},
				Data:       map[string]string{"a": "alpha", "b.conf": "x=1\n"},
				BinaryData: map[string][]byte{"bin": {0, 1, 2, 0xff}},
			},
		},
		secrets: map[string]*v1.Secret{
			"ns/sec": {
				ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "sec"},
				Data:       map[string][]byte{"user": []byte("admin"), "pass": []byte("s3cr3t")},
			},
		},
	}
}

// testVolume is a volume that setupTestVolume set up.
type testVolume struct {
	ctx context.Context
	m   *Manager
	pod *v1.Pod
	vol *v1.Volume
	mnt *Mounted
}

// setupTestVolume sets up src as volume "vol" of pod uid-1, whose fsGroup
// is fsGroup, on a new manager with 64 MiB of node allocatable memory and
// testObjects. With wantErr, it checks that Setup fails with an error that
// ends so, and returns nil.
func setupTestVolume(t *testing.T, src v1.VolumeSource, fsGroup *int64, wantErr string) *testVolume {
	t.Helper()
	_, ctx := ktesting.NewTestContext(t)
	m := newTestManager(t, Config{NodeAllocatableMemory: 64 << 20})
	pod := testPod("uid-1")
	pod.Spec.SecurityContext = &v1.PodSecurityContext{FSGroup: fsGroup}
	vol := &v1.Volume{Name: "vol", VolumeSource: src}
	mnt, err := m.Setup(ctx, pod, vol, testObjects())
	if wantErr != "" {
		if err == nil || !strings.HasSuffix(err.Error(), wantErr) {
			t.Fatalf("Setup error = %v, want %q", err, wantErr)
		}
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return &testVolume{ctx: ctx, m: m, pod: pod, vol: vol, mnt: mnt}
}

func TestConfigMapVolume(t *testing.T) {
	requireRoot(t)
	tests := []struct {
		name    string
		src     v1.ConfigMapVolumeSource
		fsGroup *int64
		wantErr string
	}{
		{name: "all keys", src: v1.ConfigMapVolumeSource{LocalObjectReference: v1.LocalObjectReference{Name: "cfg"}}},
		{name: "items with paths and modes", src: v1.ConfigMapVolumeSource{
			LocalObjectReference: v1.LocalObjectReference{Name: "cfg"},
			Items:                []v1.KeyToPath{{Key: "a", Path: "renamed", Mode: ptr[int32](0o400)}, {Key: "b.conf", Path: "b.conf"}},
		}},
		{name: "nested paths", src: v1.ConfigMapVolumeSource{
			LocalObjectReference: v1.LocalObjectReference{Name: "cfg"},
			Items:                []v1.KeyToPath{{Key: "a", Path: "dir/sub/a"}, {Key: "b.conf", Path: "dir/b.conf"}, {Key: "bin", Path: "top"}},
		}},
		{name: "defaultMode", src: v1.ConfigMapVolumeSource{
			LocalObjectReference: v1.LocalObjectReference{Name: "cfg"},
			DefaultMode:          ptr[int32](0o600),
			Items:                []v1.KeyToPath{{Key: "a", Path: "a"}, {Key: "bin", Path: "bin", Mode: ptr[int32](0o755)}},
		}},
		{name: "binaryData only item", src: v1.ConfigMapVolumeSource{
			LocalObjectReference: v1.LocalObjectReference{Name: "cfg"},
			Items:                []v1.KeyToPath{{Key: "bin", Path: "data.bin"}},
		}},
		{name: "optional missing object", src: v1.ConfigMapVolumeSource{
			LocalObjectReference: v1.LocalObjectReference{Name: "absent"}, Optional: ptr(true),
		}},
		{name: "optional missing key", src: v1.ConfigMapVolumeSource{
			LocalObjectReference: v1.LocalObjectReference{Name: "cfg"}, Optional: ptr(true),
			Items: []v1.KeyToPath{{Key: "nope", Path: "nope"}, {Key: "a", Path: "a"}},
		}},
		{name: "fsGroup", fsGroup: ptr[int64](1234), src: v1.ConfigMapVolumeSource{
			LocalObjectReference: v1.LocalObjectReference{Name: "cfg"},
			Items:                []v1.KeyToPath{{Key: "a", Path: "d/a", Mode: ptr[int32](0o400)}, {Key: "b.conf", Path: "b.conf"}},
		}},
		{name: "missing object", src: v1.ConfigMapVolumeSource{LocalObjectReference: v1.LocalObjectReference{Name: "absent"}},
			wantErr: `MountVolume.SetUp failed for volume "vol" : configmap "absent" not found`},
		{name: "missing key", src: v1.ConfigMapVolumeSource{
			LocalObjectReference: v1.LocalObjectReference{Name: "cfg"},
			Items:                []v1.KeyToPath{{Key: "nope", Path: "nope"}},
		}, wantErr: `MountVolume.SetUp failed for volume "vol" : configmap references non-existent config key: nope`},
		{name: "invalid path", src: v1.ConfigMapVolumeSource{
			LocalObjectReference: v1.LocalObjectReference{Name: "cfg"},
			Items:                []v1.KeyToPath{{Key: "a", Path: "../a"}},
		}, wantErr: "invalid path: must not contain '..': ../a"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := tc.src
			s := setupTestVolume(t, v1.VolumeSource{ConfigMap: &src}, tc.fsGroup, tc.wantErr)
			if s == nil {
				return
			}
			m, mnt := s.m, s.mnt
			if want := m.podsDir + "/uid-1/volumes/kubernetes.io~configmap/vol"; mnt.Path != want || !mnt.ReadOnly || !mnt.Managed {
				t.Errorf("Setup = %+v, want path %s, read-only, managed", mnt, want)
			}
			if mountOf(t, mnt.Path) != nil {
				t.Errorf("configMap volume %s is a mount point, want a plain directory", mnt.Path)
			}
			golden.Check(t, goldenName(t)+".golden", []byte(renderTree(t, mnt.Path)))
		})
	}
}

func TestSecretVolume(t *testing.T) {
	requireRoot(t)
	tests := []struct {
		name    string
		src     v1.SecretVolumeSource
		fsGroup *int64
		wantErr string
	}{
		{name: "all keys", src: v1.SecretVolumeSource{SecretName: "sec"}},
		{name: "items with paths and modes", src: v1.SecretVolumeSource{SecretName: "sec",
			Items: []v1.KeyToPath{{Key: "user", Path: "u", Mode: ptr[int32](0o400)}, {Key: "pass", Path: "nested/p"}}}},
		{name: "defaultMode", src: v1.SecretVolumeSource{SecretName: "sec", DefaultMode: ptr[int32](0o400)}},
		{name: "optional missing object", src: v1.SecretVolumeSource{SecretName: "absent", Optional: ptr(true)}},
		{name: "optional missing key", src: v1.SecretVolumeSource{SecretName: "sec", Optional: ptr(true),
			Items: []v1.KeyToPath{{Key: "nope", Path: "nope"}, {Key: "user", Path: "user"}}}},
		{name: "fsGroup", fsGroup: ptr[int64](1234), src: v1.SecretVolumeSource{SecretName: "sec", DefaultMode: ptr[int32](0o400)}},
		{name: "missing object", src: v1.SecretVolumeSource{SecretName: "absent"},
			wantErr: `MountVolume.SetUp failed for volume "vol" : secret "absent" not found`},
		{name: "missing key", src: v1.SecretVolumeSource{SecretName: "sec", Items: []v1.KeyToPath{{Key: "nope", Path: "nope"}}},
			wantErr: `MountVolume.SetUp failed for volume "vol" : references non-existent secret key: nope`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := tc.src
			s := setupTestVolume(t, v1.VolumeSource{Secret: &src}, tc.fsGroup, tc.wantErr)
			if s == nil {
				return
			}
			m, mnt := s.m, s.mnt
			if want := m.podsDir + "/uid-1/volumes/kubernetes.io~secret/vol"; mnt.Path != want || !mnt.ReadOnly || !mnt.Managed {
				t.Errorf("Setup = %+v, want path %s, read-only, managed", mnt, want)
			}
			mi := mountOf(t, mnt.Path)
			if mi == nil || mi.FSType != "tmpfs" || !strings.Contains(mi.VFSOptions, "size=65536k") {
				t.Errorf("secret volume mount = %+v, want a tmpfs of size=65536k (node allocatable)", mi)
			}
			data, _ := os.Readlink(mnt.Path + "/..data")
			if _, err := m.Setup(s.ctx, s.pod, s.vol, testObjects()); err != nil {
				t.Fatal(err)
			}
			if mounts, _ := mountsUnder(mnt.Path); len(mounts) != 1 {
				t.Errorf("after a second Setup: mounts %v, want one tmpfs", mounts)
			}
			if again, _ := os.Readlink(mnt.Path + "/..data"); again != data {
				t.Errorf("unchanged secret: ..data moved from %s to %s", data, again)
			}
			golden.Check(t, goldenName(t)+".golden", []byte(renderTree(t, mnt.Path)))
		})
	}
}

// TestConfigMapUpdate checks that Setup is idempotent and swaps ..data when
// the ConfigMap changes.
func TestConfigMapUpdate(t *testing.T) {
	requireRoot(t)
	_, ctx := ktesting.NewTestContext(t)
	m := newTestManager(t, Config{})
	pod := testPod("uid-1")
	pod.Spec.SecurityContext = &v1.PodSecurityContext{FSGroup: ptr[int64](2000)}
	objs := testObjects()
	vol := &v1.Volume{Name: "vol", VolumeSource: v1.VolumeSource{ConfigMap: &v1.ConfigMapVolumeSource{LocalObjectReference: v1.LocalObjectReference{Name: "cfg"}}}}
	mnt, err := m.Setup(ctx, pod, vol, objs)
	if err != nil {
		t.Fatal(err)
	}
	first, _ := os.Readlink(mnt.Path + "/..data")
	if _, err := m.Setup(ctx, pod, vol, objs); err != nil {
		t.Fatal(err)
	}
	if again, _ := os.Readlink(mnt.Path + "/..data"); again != first {
		t.Errorf("unchanged configmap: ..data moved from %s to %s", first, again)
	}
	cm := objs.configMaps["ns/cfg"].DeepCopy()
	cm.Data = map[string]string{"a": "changed", "new": "n"}
	cm.BinaryData = nil
	objs.configMaps["ns/cfg"] = cm
	if _, err := m.Setup(ctx, pod, vol, objs); err != nil {
		t.Fatal(err)
	}
	if now, _ := os.Readlink(mnt.Path + "/..data"); now == first {
		t.Errorf("changed configmap: ..data still %s", now)
	}
	if _, err := os.Stat(mnt.Path + "/" + first); err != nil {
		t.Errorf("previous data dir %s: %v, want it kept until the next write", first, err)
	}
	golden.Check(t, goldenName(t)+".golden", []byte(renderTree(t, mnt.Path)))
}

// TestNestedMountpoints checks that a mount point nested below a read-only
// volume exists in it (kubelet's MakeNestedMountpoints).
func TestNestedMountpoints(t *testing.T) {
	requireRoot(t)
	_, ctx := ktesting.NewTestContext(t)
	m := newTestManager(t, Config{})
	pod := testPod("uid-n")
	pod.Spec.Containers[0].VolumeMounts = []v1.VolumeMount{
		{Name: "vol", MountPath: "/etc/app"},
		{Name: "data", MountPath: "/etc/app/data/"},
		{Name: "deeper", MountPath: "/etc/app/data/deeper"},
		{Name: "other", MountPath: "/var/other"},
	}
	mnt, err := m.Setup(ctx, pod, &v1.Volume{Name: "vol", VolumeSource: v1.VolumeSource{Secret: &v1.SecretVolumeSource{SecretName: "sec", Items: []v1.KeyToPath{{Key: "user", Path: "user"}}}}}, testObjects())
	if err != nil {
		t.Fatal(err)
	}
	golden.Check(t, goldenName(t)+".golden", []byte(renderTree(t, mnt.Path)))
}
