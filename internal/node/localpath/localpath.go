package localpath

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"
	"sigs.k8s.io/sig-storage-lib-external-provisioner/v13/controller"
)

// ProvisionerName is the provisioner of the StorageClasses this package
// serves: local-path-provisioner's, which k3s and kind ship.
const ProvisionerName = "rancher.io/local-path"

// dirMode is the mode of a volume's directory: anyone may write, as with
// local-path-provisioner, since the pod's user is not known in advance.
const dirMode = 0o777

// nameMax is the longest file name Linux file systems take (NAME_MAX).
const nameMax = 255

// StorageDir is where the node of data directory dataDir keeps its
// volumes (Config.Dir), for `up` and `agent` alike.
func StorageDir(dataDir string) string { return filepath.Join(dataDir, "storage") }

// Unselected says what a node's provisioner does with a claim no node was
// selected for (a class with volumeBindingMode Immediate).
type Unselected int

const (
	// IgnoreUnselected leaves such claims to another node's provisioner.
	IgnoreUnselected Unselected = iota
	// ProvisionUnselected provisions them on this node: the node of a
	// single server, which served them before nodes could join.
	ProvisionUnselected
	// RefuseUnselected refuses them with a ProvisioningFailed event, as
	// local-path-provisioner does ("no node was specified").
	RefuseUnselected
)

// Config says where a node's volumes live.
type Config struct {
	// Dir holds one directory per volume. Required; made if missing.
	Dir string
	// Node is the node whose file system Dir is on. Required: only
	// claims whose selected node is Node are provisioned here, and only
	// PVs with Node's affinity deleted.
	Node string
	// Unselected says what becomes of claims no node was selected for.
	Unselected Unselected
}

// accessRetry is how often Run asks again whether it may list
// PersistentVolumes, while the server has not granted it (yet).
const accessRetry = 2 * time.Second

// Run provisions and deletes the volumes of cfg.Node with client until
// ctx is done. client's user needs the ClusterRole the server grants
// nodes (internal/bootstrap, NodesLocalPathBindingName); Run waits for it.
func Run(ctx context.Context, client kubernetes.Interface, cfg Config) error {
	p, err := newProvisioner(cfg)
	if err != nil {
		return err
	}
	defer p.root.Close()
	if err := waitForAccess(ctx, client); err != nil {
		return nil // ctx is done
	}
	c := controller.NewProvisionController(ctx, client, ProvisionerName, p,
		// Each node acts on its own claims and PVs only (ShouldProvision,
		// ShouldDelete): no two controllers act on one object.
		controller.LeaderElection(false),
		// The library's default waits 15 s after a first failure (a
		// class not yet in the cache); a claim is someone waiting.
		controller.RateLimiter(workqueue.DefaultTypedControllerRateLimiter[string]()),
	)
	klog.FromContext(ctx).V(1).Info("Starting the local-path provisioner", "dir", p.dir, "node", p.node)
	c.Run(ctx)
	return nil
}

// waitForAccess waits until client may list PersistentVolumes, which
// only the server's grant to nodes allows: it comes moments after a first
// start, and never while the server runs without storage (`up --disable
// storage`), when a provisioner of the user's may serve the same
// provisioner name. The error is ctx's.
func waitForAccess(ctx context.Context, client kubernetes.Interface) error {
	logged := false
	return wait.PollUntilContextCancel(ctx, accessRetry, true, func(ctx context.Context) (bool, error) {
		_, err := client.CoreV1().PersistentVolumes().List(ctx, metav1.ListOptions{Limit: 1})
		if apierrors.IsForbidden(err) && !logged {
			klog.FromContext(ctx).V(1).Info("The local-path provisioner waits until the server grants nodes their access to volumes", "err", err)
			logged = true
		} else if err != nil {
			klog.FromContext(ctx).V(2).Info("Waiting for the API server before provisioning local-path volumes", "err", err)
		}
		return err == nil, nil
	})
}

// provisioner is the [controller.Provisioner] of one node's local-path
// volumes.
type provisioner struct {
	dir        string   // absolute and clean
	root       *os.Root // dir; every change under dir goes through it
	node       string
	unselected Unselected
}

var (
	_ controller.Provisioner   = (*provisioner)(nil)
	_ controller.Qualifier     = (*provisioner)(nil)
	_ controller.DeletionGuard = (*provisioner)(nil)
)

func newProvisioner(cfg Config) (*provisioner, error) {
	if cfg.Dir == "" || cfg.Node == "" {
		return nil, errors.New("localpath: Dir and Node are required")
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("storage dir: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create storage dir: %w", err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("open storage dir: %w", err)
	}
	return &provisioner{dir: dir, root: root, node: cfg.Node, unselected: cfg.Unselected}, nil
}

// annSelectedNode is the scheduler's choice of node for a
// WaitForFirstConsumer claim (upstream's volume.AnnSelectedNode).
const annSelectedNode = "volume.kubernetes.io/selected-node"

// ShouldProvision says whether this node provisions claim: it was
// selected for it, or no node was and Unselected says so. The library
// asks before anything else, so other nodes' claims cost no event and no
// API call here.
func (p *provisioner) ShouldProvision(_ context.Context, claim *v1.PersistentVolumeClaim) bool {
	if node := claim.Annotations[annSelectedNode]; node != "" {
		return node == p.node
	}
	return p.unselected != IgnoreUnselected
}

// ShouldDelete says whether pv is this node's to delete: its node
// affinity names this node.
func (p *provisioner) ShouldDelete(_ context.Context, pv *v1.PersistentVolume) bool {
	return volumeNode(pv) == p.node
}

// volumeNode is the node of a PV this package made: the one value of its
// node affinity's one term, or "" for a PV of another shape.
func volumeNode(pv *v1.PersistentVolume) string {
	a := pv.Spec.NodeAffinity
	if a == nil || a.Required == nil || len(a.Required.NodeSelectorTerms) != 1 {
		return ""
	}
	exprs := a.Required.NodeSelectorTerms[0].MatchExpressions
	if len(exprs) != 1 || exprs[0].Key != v1.LabelHostname || exprs[0].Operator != v1.NodeSelectorOpIn || len(exprs[0].Values) != 1 {
		return ""
	}
	return exprs[0].Values[0]
}

// Provision makes the claim's directory and returns its PV.
func (p *provisioner) Provision(ctx context.Context, opts controller.ProvisionOptions) (*v1.PersistentVolume, controller.ProvisioningState, error) {
	pvc := opts.PVC
	node := opts.SelectedNodeName
	switch {
	case node == "" && p.unselected == ProvisionUnselected:
		node = p.node
	case node == "":
		return nil, controller.ProvisioningFinished, errors.New("no node was selected for the claim: use a StorageClass with volumeBindingMode WaitForFirstConsumer")
	case node != p.node:
		// ShouldProvision keeps this from happening; rescheduling
		// asks the scheduler to pick again.
		return nil, controller.ProvisioningReschedule, fmt.Errorf("selected node %s is not node %s, whose volumes this provisioner makes", node, p.node)
	}
	if len(opts.StorageClass.MountOptions) > 0 {
		return nil, controller.ProvisioningFinished, fmt.Errorf("StorageClass %s has mountOptions, which a hostPath volume cannot take", opts.StorageClass.Name)
	}
	name, err := dirName(opts.PVName, pvc.Namespace, pvc.Name)
	if err != nil {
		return nil, controller.ProvisioningFinished, err
	}
	if err := p.root.Mkdir(name, dirMode); err != nil && !errors.Is(err, os.ErrExist) {
		return nil, controller.ProvisioningFinished, fmt.Errorf("create volume directory %s: %w", name, err)
	}
	// Mkdir's mode passes through the umask.
	if err := p.root.Chmod(name, dirMode); err != nil {
		return nil, controller.ProvisioningFinished, fmt.Errorf("create volume directory %s: %w", name, err)
	}
	path := filepath.Join(p.dir, name)
	klog.FromContext(ctx).V(2).Info("Provisioned volume", "PVC", klog.KObj(pvc), "PV", opts.PVName, "path", path, "node", node)
	return persistentVolume(opts, path, node), controller.ProvisioningFinished, nil
}

// persistentVolume is the PV of a claim's directory at path on node.
func persistentVolume(opts controller.ProvisionOptions, path, node string) *v1.PersistentVolume {
	reclaim := v1.PersistentVolumeReclaimDelete
	if p := opts.StorageClass.ReclaimPolicy; p != nil {
		reclaim = *p
	}
	hostPathType := v1.HostPathDirectoryOrCreate
	return &v1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: opts.PVName},
		Spec: v1.PersistentVolumeSpec{
			PersistentVolumeReclaimPolicy: reclaim,
			AccessModes:                   opts.PVC.Spec.AccessModes,
			VolumeMode:                    opts.PVC.Spec.VolumeMode,
			Capacity:                      v1.ResourceList{v1.ResourceStorage: opts.PVC.Spec.Resources.Requests[v1.ResourceStorage]},
			PersistentVolumeSource: v1.PersistentVolumeSource{
				HostPath: &v1.HostPathVolumeSource{Path: path, Type: &hostPathType},
			},
			NodeAffinity: &v1.VolumeNodeAffinity{Required: &v1.NodeSelector{
				NodeSelectorTerms: []v1.NodeSelectorTerm{{MatchExpressions: []v1.NodeSelectorRequirement{{
					Key:      v1.LabelHostname,
					Operator: v1.NodeSelectorOpIn,
					Values:   []string{node},
				}}}},
			}},
		},
	}
}

// Delete removes the volume's directory and everything in it.
func (p *provisioner) Delete(ctx context.Context, pv *v1.PersistentVolume) error {
	if node := volumeNode(pv); node != p.node {
		return &controller.IgnoredError{Reason: fmt.Sprintf("volume %s is on node %q, not %s", pv.Name, node, p.node)}
	}
	if pv.Spec.HostPath == nil {
		return fmt.Errorf("volume %s is not a hostPath volume: not deleting it", pv.Name)
	}
	path := pv.Spec.HostPath.Path
	name, ok := strings.CutPrefix(path, p.dir+string(filepath.Separator))
	if !ok || !validName(name) {
		return fmt.Errorf("volume %s has path %s, which is not a directory of %s: not deleting it", pv.Name, path, p.dir)
	}
	if err := p.root.RemoveAll(name); err != nil {
		return fmt.Errorf("delete volume %s: %w", pv.Name, err)
	}
	klog.FromContext(ctx).V(2).Info("Deleted volume", "PV", pv.Name, "path", path)
	return nil
}

// dirName is the directory name of the volume pvName of claim
// namespace/claim: local-path-provisioner's <pv>_<namespace>_<claim>, or
// the PV name alone when that would be too long a file name.
func dirName(pvName, namespace, claim string) (string, error) {
	for _, s := range []string{pvName, namespace, claim} {
		if !validName(s) {
			return "", fmt.Errorf("name %q cannot be part of a directory name", s)
		}
	}
	name := pvName + "_" + namespace + "_" + claim
	if len(name) > nameMax {
		name = pvName
	}
	return name, nil
}

// validName says whether s names a file directly in a directory: not
// empty, not . or .., no separator, no NUL.
func validName(s string) bool {
	return s != "" && s != "." && s != ".." && len(s) <= nameMax && !strings.ContainsAny(s, "/\x00")
}
