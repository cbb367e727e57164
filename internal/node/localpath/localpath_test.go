package localpath

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2/ktesting"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/sig-storage-lib-external-provisioner/v13/controller"
)

func newTestProvisioner(t *testing.T, node string, unselected Unselected) *provisioner {
	t.Helper()
	p, err := newProvisioner(Config{Dir: filepath.Join(t.TempDir(), "storage"), Node: node, Unselected: unselected})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.root.Close() })
	return p
}

func options(namespace, claim, node string, reclaim v1.PersistentVolumeReclaimPolicy) controller.ProvisionOptions {
	return controller.ProvisionOptions{
		StorageClass: &storagev1.StorageClass{
			ObjectMeta:    metav1.ObjectMeta{Name: "local-path"},
			Provisioner:   ProvisionerName,
			ReclaimPolicy: &reclaim,
		},
		PVName: "pvc-0b7c9ad4-2f5e-4a55-9d1c-3c2a3c3ee6a1",
		PVC: &v1.PersistentVolumeClaim{
			ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: claim},
			Spec: v1.PersistentVolumeClaimSpec{
				AccessModes: []v1.PersistentVolumeAccessMode{v1.ReadWriteOnce},
				VolumeMode:  ptr.To(v1.PersistentVolumeFilesystem),
				Resources:   v1.VolumeResourceRequirements{Requests: v1.ResourceList{v1.ResourceStorage: resource.MustParse("1Gi")}},
			},
		},
		SelectedNodeName: node,
	}
}

func TestProvisionAndDelete(t *testing.T) {
	tests := []struct {
		name       string
		reclaim    v1.PersistentVolumeReclaimPolicy
		selected   string // the claim's selected node
		localNode  string // Config.Node
		unselected Unselected
		wantNode   string // in the PV's node affinity
	}{
		{name: "selected node", reclaim: v1.PersistentVolumeReclaimDelete, selected: "n1", localNode: "n1", wantNode: "n1"},
		{name: "no node selected takes the local node", reclaim: v1.PersistentVolumeReclaimDelete, localNode: "n1", unselected: ProvisionUnselected, wantNode: "n1"},
		{name: "retain class", reclaim: v1.PersistentVolumeReclaimRetain, selected: "n1", localNode: "n1", wantNode: "n1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, ctx := ktesting.NewTestContext(t)
			p := newTestProvisioner(t, tt.localNode, tt.unselected)
			opts := options("default", "data", tt.selected, tt.reclaim)
			pv, state, err := p.Provision(ctx, opts)
			if err != nil || state != controller.ProvisioningFinished {
				t.Fatalf("Provision() = %v, %v", state, err)
			}
			wantPath := filepath.Join(p.dir, opts.PVName+"_default_data")
			if pv.Spec.HostPath == nil || pv.Spec.HostPath.Path != wantPath || *pv.Spec.HostPath.Type != v1.HostPathDirectoryOrCreate {
				t.Errorf("PV source = %+v, want hostPath %s (DirectoryOrCreate)", pv.Spec.PersistentVolumeSource, wantPath)
			}
			if fi, err := os.Stat(wantPath); err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o777 {
				t.Errorf("volume directory: %v, %v; want a directory with mode 0777", fi, err)
			}
			if pv.Name != opts.PVName || pv.Spec.PersistentVolumeReclaimPolicy != tt.reclaim {
				t.Errorf("PV %s reclaim %s, want %s reclaim %s", pv.Name, pv.Spec.PersistentVolumeReclaimPolicy, opts.PVName, tt.reclaim)
			}
			if got := pv.Spec.Capacity[v1.ResourceStorage]; got.String() != "1Gi" {
				t.Errorf("capacity = %s, want 1Gi", got.String())
			}
			terms := pv.Spec.NodeAffinity.Required.NodeSelectorTerms
			if len(terms) != 1 || terms[0].MatchExpressions[0].Key != v1.LabelHostname || terms[0].MatchExpressions[0].Values[0] != tt.wantNode {
				t.Errorf("node affinity = %+v, want %s=%s", terms, v1.LabelHostname, tt.wantNode)
			}

			// Provisioning again (a retry) finds the directory in place.
			if _, _, err := p.Provision(ctx, opts); err != nil {
				t.Errorf("second Provision(): %v", err)
			}
			if err := os.WriteFile(filepath.Join(wantPath, "data"), []byte("x"), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := p.Delete(ctx, pv); err != nil {
				t.Fatalf("Delete(): %v", err)
			}
			if _, err := os.Stat(wantPath); !os.IsNotExist(err) {
				t.Errorf("after Delete, stat %s: %v; want it gone", wantPath, err)
			}
			if _, err := os.Stat(p.dir); err != nil {
				t.Errorf("after Delete, the storage dir: %v", err)
			}
		})
	}
}

func TestProvisionRefuses(t *testing.T) {
	tests := []struct {
		name       string
		namespace  string
		claim      string
		selected   string
		localNode  string
		unselected Unselected
		// setup runs in the storage dir before Provision.
		setup     func(t *testing.T, dir string)
		wantState controller.ProvisioningState
		wantErr   string
	}{
		{name: "claim name with a separator", namespace: "default", claim: "../../etc", selected: "n1", localNode: "n1", wantState: controller.ProvisioningFinished, wantErr: "cannot be part of a directory name"},
		{name: "namespace ..", namespace: "..", claim: "data", selected: "n1", localNode: "n1", wantState: controller.ProvisioningFinished, wantErr: "cannot be part of a directory name"},
		{name: "no node selected, refused", namespace: "default", claim: "data", localNode: "n1", unselected: RefuseUnselected, wantState: controller.ProvisioningFinished, wantErr: "WaitForFirstConsumer"},
		{name: "another node", namespace: "default", claim: "data", selected: "n2", localNode: "n1", wantState: controller.ProvisioningReschedule, wantErr: "is not node n1"},
		{
			name: "a symbolic link out of the storage dir", namespace: "default", claim: "data", selected: "n1", localNode: "n1", wantState: controller.ProvisioningFinished, wantErr: "escapes",
			setup: func(t *testing.T, dir string) {
				if err := os.Symlink(t.TempDir(), filepath.Join(dir, "pvc-0b7c9ad4-2f5e-4a55-9d1c-3c2a3c3ee6a1_default_data")); err != nil {
					t.Fatal(err)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, ctx := ktesting.NewTestContext(t)
			p := newTestProvisioner(t, tt.localNode, tt.unselected)
			if tt.setup != nil {
				tt.setup(t, p.dir)
			}
			pv, state, err := p.Provision(ctx, options(tt.namespace, tt.claim, tt.selected, v1.PersistentVolumeReclaimDelete))
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || state != tt.wantState || pv != nil {
				t.Errorf("Provision() = %v, %v, %v; want state %s and an error with %q", pv, state, err, tt.wantState, tt.wantErr)
			}
		})
	}
}

func TestDeleteRefusesPathsOutsideDir(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	p := newTestProvisioner(t, "n1", IgnoreUnselected)
	outside := t.TempDir()
	for _, path := range []string{outside, p.dir, p.dir + "/", p.dir + "/..", p.dir + "/a/b", filepath.Dir(p.dir) + "/storage-other/x"} {
		pv := &v1.PersistentVolume{
			ObjectMeta: metav1.ObjectMeta{Name: "pv"},
			Spec:       v1.PersistentVolumeSpec{PersistentVolumeSource: v1.PersistentVolumeSource{HostPath: &v1.HostPathVolumeSource{Path: path}}, NodeAffinity: affinity("n1")},
		}
		if err := p.Delete(ctx, pv); err == nil || !strings.Contains(err.Error(), "not deleting it") {
			t.Errorf("Delete(path %s) = %v, want a refusal", path, err)
		}
	}
	if _, err := os.Stat(outside); err != nil {
		t.Errorf("the directory outside: %v", err)
	}
	if err := p.Delete(ctx, &v1.PersistentVolume{ObjectMeta: metav1.ObjectMeta{Name: "nfs"}, Spec: v1.PersistentVolumeSpec{NodeAffinity: affinity("n1")}}); err == nil {
		t.Error("Delete of a PV without hostPath succeeded")
	}
}

func TestDeleteRemovesALinkNotItsTarget(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	p := newTestProvisioner(t, "n1", IgnoreUnselected)
	target := t.TempDir()
	if err := os.WriteFile(filepath.Join(target, "keep"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(p.dir, "pvc-1_default_data")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	pv := &v1.PersistentVolume{Spec: v1.PersistentVolumeSpec{PersistentVolumeSource: v1.PersistentVolumeSource{HostPath: &v1.HostPathVolumeSource{Path: link}}, NodeAffinity: affinity("n1")}}
	if err := p.Delete(ctx, pv); err != nil {
		t.Fatalf("Delete(): %v", err)
	}
	if _, err := os.Stat(filepath.Join(target, "keep")); err != nil {
		t.Errorf("the link's target lost its file: %v", err)
	}
}

func TestDirName(t *testing.T) {
	long := strings.Repeat("a", 253)
	got, err := dirName("pvc-1", "default", long)
	if err != nil || got != "pvc-1" {
		t.Errorf("dirName with a 253-character claim = %q, %v; want the PV name alone", got, err)
	}
}

// affinity is the node affinity of a PV on nodes (one term, one
// expression on the hostname label).
func affinity(nodes ...string) *v1.VolumeNodeAffinity {
	return &v1.VolumeNodeAffinity{Required: &v1.NodeSelector{NodeSelectorTerms: []v1.NodeSelectorTerm{{
		MatchExpressions: []v1.NodeSelectorRequirement{{Key: v1.LabelHostname, Operator: v1.NodeSelectorOpIn, Values: nodes}},
	}}}}
}

// TestNodeDecisions pins which node's provisioner acts on a claim or a
// PV: the one it names, so that the provisioners of several nodes never
// act on the same object.
func TestNodeDecisions(t *testing.T) {
	claim := func(selected string) *v1.PersistentVolumeClaim {
		c := &v1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "data"}}
		if selected != "" {
			c.Annotations = map[string]string{"volume.kubernetes.io/selected-node": selected}
		}
		return c
	}
	provisionTests := []struct {
		name       string
		selected   string
		unselected Unselected
		want       bool
	}{
		{name: "selected this node", selected: "n1", want: true},
		{name: "selected another node", selected: "n2", want: false},
		{name: "selected another node, this one takes unselected claims", selected: "n2", unselected: ProvisionUnselected, want: false},
		{name: "no node selected, ignored", want: false},
		{name: "no node selected, provisioned here", unselected: ProvisionUnselected, want: true},
		{name: "no node selected, refused here", unselected: RefuseUnselected, want: true},
	}
	for _, tt := range provisionTests {
		t.Run("ShouldProvision/"+tt.name, func(t *testing.T) {
			_, ctx := ktesting.NewTestContext(t)
			p := newTestProvisioner(t, "n1", tt.unselected)
			if got := p.ShouldProvision(ctx, claim(tt.selected)); got != tt.want {
				t.Errorf("ShouldProvision(selected %q) = %v, want %v", tt.selected, got, tt.want)
			}
		})
	}
	deleteTests := []struct {
		name     string
		affinity *v1.VolumeNodeAffinity
		want     bool
	}{
		{name: "this node", affinity: affinity("n1"), want: true},
		{name: "another node", affinity: affinity("n2"), want: false},
		{name: "two nodes", affinity: affinity("n1", "n2"), want: false},
		{name: "no affinity", want: false},
		{name: "another label", affinity: &v1.VolumeNodeAffinity{Required: &v1.NodeSelector{NodeSelectorTerms: []v1.NodeSelectorTerm{{
			MatchExpressions: []v1.NodeSelectorRequirement{{Key: "zone", Operator: v1.NodeSelectorOpIn, Values: []string{"n1"}}},
		}}}}, want: false},
	}
	for _, tt := range deleteTests {
		t.Run("ShouldDelete/"+tt.name, func(t *testing.T) {
			_, ctx := ktesting.NewTestContext(t)
			p := newTestProvisioner(t, "n1", IgnoreUnselected)
			dir := filepath.Join(p.dir, "pvc-1_default_data")
			if err := os.Mkdir(dir, 0o777); err != nil {
				t.Fatal(err)
			}
			pv := &v1.PersistentVolume{
				ObjectMeta: metav1.ObjectMeta{Name: "pvc-1"},
				Spec: v1.PersistentVolumeSpec{
					PersistentVolumeSource: v1.PersistentVolumeSource{HostPath: &v1.HostPathVolumeSource{Path: dir}},
					NodeAffinity:           tt.affinity,
				},
			}
			if got := p.ShouldDelete(ctx, pv); got != tt.want {
				t.Errorf("ShouldDelete() = %v, want %v", got, tt.want)
			}
			// Delete, asked anyway, touches another node's volume no
			// more: the library takes IgnoredError as "not mine" and
			// sends no event.
			err := p.Delete(ctx, pv)
			var ignored *controller.IgnoredError
			if got := !errors.As(err, &ignored); got != tt.want {
				t.Errorf("Delete() = %v; want ignored: %v", err, !tt.want)
			}
			if _, err := os.Stat(dir); tt.want != os.IsNotExist(err) {
				t.Errorf("after Delete, stat %s: %v; want it gone: %v", dir, err, tt.want)
			}
		})
	}
}

func TestNewProvisionerNeedsNode(t *testing.T) {
	if _, err := newProvisioner(Config{Dir: t.TempDir()}); err == nil {
		t.Error("newProvisioner without Node succeeded")
	}
}
