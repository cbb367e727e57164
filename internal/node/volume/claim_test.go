package volume

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2/ktesting"
)

// fakeClaims answers like the API server.
type fakeClaims struct {
	fakeSources
	pvcs map[string]*v1.PersistentVolumeClaim
	pvs  map[string]*v1.PersistentVolume
}

var _ ClaimSource = (*fakeClaims)(nil)

func (f *fakeClaims) PersistentVolumeClaim(_ context.Context, ns, name string) (*v1.PersistentVolumeClaim, error) {
	if c, ok := f.pvcs[ns+"/"+name]; ok {
		return c, nil
	}
	return nil, apierrors.NewNotFound(v1.Resource("persistentvolumeclaims"), name)
}

func (f *fakeClaims) PersistentVolume(_ context.Context, name string) (*v1.PersistentVolume, error) {
	if pv, ok := f.pvs[name]; ok {
		return pv, nil
	}
	return nil, apierrors.NewNotFound(v1.Resource("persistentvolumes"), name)
}

func boundClaim(name, pv string) *v1.PersistentVolumeClaim {
	return &v1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, UID: types.UID("uid-" + name)},
		Spec:       v1.PersistentVolumeClaimSpec{VolumeName: pv},
		Status:     v1.PersistentVolumeClaimStatus{Phase: v1.ClaimBound},
	}
}

func claimedPV(name, claim string, src v1.PersistentVolumeSource) *v1.PersistentVolume {
	return &v1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v1.PersistentVolumeSpec{PersistentVolumeSource: src,
			ClaimRef: &v1.ObjectReference{Namespace: "ns", Name: claim, UID: types.UID("uid-" + claim)}},
	}
}

func claimVol(claim string, readOnly bool) *v1.Volume {
	return &v1.Volume{Name: "data", VolumeSource: v1.VolumeSource{
		PersistentVolumeClaim: &v1.PersistentVolumeClaimVolumeSource{ClaimName: claim, ReadOnly: readOnly}}}
}

// TestSetupClaimErrors checks kubelet's texts (volume manager's
// createVolumeSpec, WaitForAttachAndMount, the local and hostPath plugins)
// for each way a claim cannot be mounted.
func TestSetupClaimErrors(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	missingDir := filepath.Join(t.TempDir(), "missing")
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	pending := boundClaim("pending", "")
	pending.Status.Phase = v1.ClaimPending
	lost := boundClaim("lost", "gone")
	lost.Status.Phase = v1.ClaimLost
	noName := boundClaim("noname", "")
	deleting := boundClaim("deleting", "pv")
	deleting.DeletionTimestamp = &metav1.Time{}
	unclaimed := claimedPV("unclaimed", "x", v1.PersistentVolumeSource{HostPath: &v1.HostPathVolumeSource{Path: "/tmp"}})
	unclaimed.Spec.ClaimRef = nil
	block := v1.PersistentVolumeBlock
	blockPV := claimedPV("blockpv", "block", v1.PersistentVolumeSource{Local: &v1.LocalVolumeSource{Path: "/tmp"}})
	blockPV.Spec.VolumeMode = &block
	notOwned := boundClaim("pod-eph", "pv")
	src := &fakeClaims{
		pvcs: map[string]*v1.PersistentVolumeClaim{
			"ns/pending": pending, "ns/lost": lost, "ns/noname": noName, "ns/deleting": deleting,
			"ns/nopv": boundClaim("nopv", "nopv"), "ns/unclaimed": boundClaim("unclaimed", "unclaimed"),
			"ns/other": boundClaim("other", "otherpv"), "ns/nfs": boundClaim("nfs", "nfspv"),
			"ns/local": boundClaim("local", "localpv"), "ns/localfile": boundClaim("localfile", "localfilepv"),
			"ns/hp": boundClaim("hp", "hppv"), "ns/block": boundClaim("block", "blockpv"), "ns/pod-eph": notOwned,
		},
		pvs: map[string]*v1.PersistentVolume{
			"unclaimed":   unclaimed,
			"otherpv":     claimedPV("otherpv", "someone-else", v1.PersistentVolumeSource{HostPath: &v1.HostPathVolumeSource{Path: "/tmp"}}),
			"nfspv":       claimedPV("nfspv", "nfs", v1.PersistentVolumeSource{NFS: &v1.NFSVolumeSource{Server: "s", Path: "/"}}),
			"localpv":     claimedPV("localpv", "local", v1.PersistentVolumeSource{Local: &v1.LocalVolumeSource{Path: missingDir}}),
			"localfilepv": claimedPV("localfilepv", "localfile", v1.PersistentVolumeSource{Local: &v1.LocalVolumeSource{Path: file}}),
			"hppv":        claimedPV("hppv", "hp", v1.PersistentVolumeSource{HostPath: &v1.HostPathVolumeSource{Path: missingDir, Type: ptr(v1.HostPathDirectory)}}),
			"blockpv":     blockPV,
		},
	}
	const prefix = "Unable to attach or mount volumes: unmounted volumes=[data], unattached volumes=[], failed to process volumes=[data]: "
	tests := []struct {
		name    string
		vol     *v1.Volume
		want    string
		process bool
	}{
		{name: "missing claim", vol: claimVol("absent", false), process: true,
			want: prefix + `error processing PVC ns/absent: failed to fetch PVC from API server: persistentvolumeclaims "absent" not found`},
		{name: "pending claim", vol: claimVol("pending", false), process: true,
			want: prefix + "error processing PVC ns/pending: PVC is not bound"},
		{name: "lost claim", vol: claimVol("lost", false), process: true,
			want: prefix + "error processing PVC ns/lost: PVC is not bound"},
		{name: "bound claim without volume name", vol: claimVol("noname", false), process: true,
			want: prefix + "error processing PVC ns/noname: PVC has empty pvc.Spec.VolumeName"},
		{name: "claim being deleted without protection", vol: claimVol("deleting", false), process: true,
			want: prefix + "error processing PVC ns/deleting: PVC is being deleted"},
		{name: "missing PV", vol: claimVol("nopv", false), process: true,
			want: prefix + `error processing PVC ns/nopv: failed to fetch PV nopv from API server: persistentvolumes "nopv" not found`},
		{name: "PV without claimRef", vol: claimVol("unclaimed", false), process: true,
			want: prefix + "error processing PVC ns/unclaimed: found PV object unclaimed but it has a nil pv.Spec.ClaimRef indicating it is not yet bound to the claim"},
		{name: "PV bound to another claim", vol: claimVol("other", false), process: true,
			want: prefix + "error processing PVC ns/other: found PV object otherpv but its pv.Spec.ClaimRef.UID uid-someone-else does not point to claim.UID uid-other"},
		{name: "PV of a kind the node lacks", vol: claimVol("nfs", false), process: true,
			want: prefix + `failed to get Plugin from volumeSpec for volume "nfspv" err=no volume plugin matched`},
		{name: "block PV in volumeMounts", vol: claimVol("block", false), process: true,
			want: prefix + "volume data has volumeMode Block, but is specified in volumeMounts"},
		{name: "ephemeral claim not owned by the pod", process: true,
			vol:  &v1.Volume{Name: "eph", VolumeSource: v1.VolumeSource{Ephemeral: &v1.EphemeralVolumeSource{}}},
			want: "Unable to attach or mount volumes: unmounted volumes=[eph], unattached volumes=[], failed to process volumes=[eph]: PVC ns/pod-eph was not created for pod ns/pod (pod is not owner)"},
		{name: "local PV directory missing", vol: claimVol("local", false),
			want: `MountVolume.GetDeviceMountPath failed for volume "localpv" : path "` + missingDir + `" does not exist`},
		{name: "local PV on a file", vol: claimVol("localfile", false),
			want: `MountVolume.GetDeviceMountPath failed for volume "localfilepv" : only directory and block device are supported`},
		{name: "hostPath PV type check", vol: claimVol("hp", false),
			want: `MountVolume.SetUp failed for volume "hppv" : hostPath type check failed, ` + missingDir + ` is not a directory, unable to determine its type: path "` + missingDir + `" does not exist`},
	}
	m := newTestManager(t, Config{NodeAllocatableMemory: 1 << 30})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := m.Setup(ctx, testPod("uid1"), tt.vol, src)
			if err == nil {
				t.Fatal("Setup succeeded")
			}
			if err.Error() != tt.want {
				t.Errorf("error:\n got %s\nwant %s", err, tt.want)
			}
			if got := errors.As(err, new(*processError)); got != tt.process {
				t.Errorf("processError = %v, want %v", got, tt.process)
			}
		})
	}
}

// TestSetupClaimHostPath checks a hostPath PV: the path itself, its type
// honoured, readOnly from the claim volume.
func TestSetupClaimHostPath(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	dir := filepath.Join(t.TempDir(), "made")
	src := &fakeClaims{
		pvcs: map[string]*v1.PersistentVolumeClaim{"ns/c": boundClaim("c", "pv")},
		pvs: map[string]*v1.PersistentVolume{"pv": claimedPV("pv", "c",
			v1.PersistentVolumeSource{HostPath: &v1.HostPathVolumeSource{Path: dir, Type: ptr(v1.HostPathDirectoryOrCreate)}})},
	}
	m := newTestManager(t, Config{NodeAllocatableMemory: 1 << 30})
	for _, ro := range []bool{false, true} {
		mnt, err := m.Setup(ctx, testPod("uid1"), claimVol("c", ro), src)
		if err != nil {
			t.Fatal(err)
		}
		if mnt.Path != dir || mnt.ReadOnly != ro || mnt.Managed {
			t.Errorf("readOnly %v: Mounted = %+v", ro, mnt)
		}
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
			t.Errorf("DirectoryOrCreate did not create %s: %v", dir, err)
		}
	}
	vol := claimVol("c", false)
	if cv, ok := m.Claim("uid1", vol.Name); !ok || cv != (ClaimVolume{Claim: "c", Path: dir}) {
		t.Errorf("Claim = %+v, %v; want claim c at %s, not local", cv, ok, dir)
	}
	if err := m.TeardownPod(ctx, "uid1"); err != nil {
		t.Fatal(err)
	}
	if cv, ok := m.Claim("uid1", vol.Name); ok {
		t.Errorf("Claim after TeardownPod = %+v, want none", cv)
	}
}

// TestSetupClaimLocal checks a local PV: bind-mounted under the pod
// directory named after the PV, read-only when the claim volume is, fsGroup
// applied to a writable one, and unmounted by TeardownPod.
func TestSetupClaimLocal(t *testing.T) {
	requireRoot(t)
	_, ctx := ktesting.NewTestContext(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "f"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	src := &fakeClaims{
		pvcs: map[string]*v1.PersistentVolumeClaim{"ns/c": boundClaim("c", "pv")},
		pvs:  map[string]*v1.PersistentVolume{"pv": claimedPV("pv", "c", v1.PersistentVolumeSource{Local: &v1.LocalVolumeSource{Path: dir}})},
	}
	m := newTestManager(t, Config{NodeAllocatableMemory: 1 << 30})
	for _, tt := range []struct {
		name     string
		uid      string
		readOnly bool
	}{{"writable", "uid-rw", false}, {"read-only", "uid-ro", true}} {
		t.Run(tt.name, func(t *testing.T) {
			pod := testPod(tt.uid)
			pod.Spec.SecurityContext = &v1.PodSecurityContext{FSGroup: ptr(int64(1234))}
			vol := claimVol("c", tt.readOnly)
			mnt, err := m.Setup(ctx, pod, vol, src)
			if err != nil {
				t.Fatal(err)
			}
			want := filepath.Join(m.podsDir, tt.uid, "volumes", localPluginDir, "pv")
			if mnt.Path != want || mnt.ReadOnly != tt.readOnly || mnt.Managed == tt.readOnly {
				t.Errorf("Mounted = %+v, want path %s readOnly %v", mnt, want, tt.readOnly)
			}
			info := mountOf(t, want)
			if info == nil {
				t.Fatalf("%s is not a mount point", want)
			}
			if ro := strings.Contains(","+info.Options+",", ",ro,"); ro != tt.readOnly {
				t.Errorf("mount options %q, want read-only %v", info.Options, tt.readOnly)
			}
			if b, err := os.ReadFile(filepath.Join(want, "f")); err != nil || string(b) != "x" {
				t.Errorf("read through the mount: %q, %v", b, err)
			}
			// Idempotent: a second Setup keeps the one mount.
			if _, err := m.Setup(ctx, pod, vol, src); err != nil {
				t.Fatal(err)
			}
			if n, err := mountsUnder(want); err != nil || len(n) != 1 {
				t.Errorf("mounts at %s after a second Setup: %v, %v", want, n, err)
			}
			if cv, ok := m.Claim(tt.uid, vol.Name); !ok || cv != (ClaimVolume{Claim: "c", Path: want, Local: true}) {
				t.Errorf("Claim = %+v, %v; want local claim c at %s", cv, ok, want)
			}
		})
	}
	// The writable pod mounted first: fsGroup applied to the directory.
	var st = mustStat(t, filepath.Join(dir, "f"))
	if st.Gid != 1234 || st.Mode&0o060 != 0o060 {
		t.Errorf("file after fsGroup: gid %d mode %o, want gid 1234, g+rw", st.Gid, st.Mode)
	}
	for _, uid := range []string{"uid-rw", "uid-ro"} {
		if err := m.TeardownPod(ctx, uid); err != nil {
			t.Fatal(err)
		}
	}
	if b, err := os.ReadFile(filepath.Join(dir, "f")); err != nil || string(b) != "x" {
		t.Errorf("local volume's data after teardown: %q, %v", b, err)
	}
}

func mustStat(t testing.TB, path string) *syscall.Stat_t {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t)
}
