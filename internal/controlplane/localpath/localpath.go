package localpath

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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

// Config says where volumes live.
type Config struct {
	// Dir holds one directory per volume. Required; made if missing.
	Dir string
	// Node, when set, is the node whose file system Dir is on: a claim is
	// provisioned there when no node was selected (a class with
	// volumeBindingMode Immediate), and refused when another node was.
	// Empty accepts any selected node (the volume is then on this
	// machine, whatever its PV says).
	Node string
}

// Run provisions and deletes volumes with client until ctx is done.
func Run(ctx context.Context, client kubernetes.Interface, cfg Config) error {
	p, err := newProvisioner(cfg)
	if err != nil {
		return err
	}
	defer p.root.Close()
	c := controller.NewProvisionController(ctx, client, ProvisionerName, p,
		// One process runs the one controller.
		controller.LeaderElection(false),
		// The library's default waits 15 s after a first failure (a
		// class not yet in the cache); a claim is someone waiting.
		controller.RateLimiter(workqueue.DefaultTypedControllerRateLimiter[string]()),
	)
	klog.FromContext(ctx).V(1).Info("Starting the local-path provisioner", "dir", p.dir)
	c.Run(ctx)
	return nil
}

// provisioner is the [controller.Provisioner] of local-path volumes.
type provisioner struct {
	dir  string   // absolute and clean
	root *os.Root // dir; every change under dir goes through it
	node string
}

var _ controller.Provisioner = (*provisioner)(nil)

func newProvisioner(cfg Config) (*provisioner, error) {
	if cfg.Dir == "" {
		return nil, errors.New("localpath: Dir is required")
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
	return &provisioner{dir: dir, root: root, node: cfg.Node}, nil
}

// Provision makes the claim's directory and returns its PV.
func (p *provisioner) Provision(ctx context.Context, opts controller.ProvisionOptions) (*v1.PersistentVolume, controller.ProvisioningState, error) {
	pvc := opts.PVC
	node := opts.SelectedNodeName
	switch {
	case node == "" && p.node == "":
		return nil, controller.ProvisioningFinished, errors.New("no node was selected for the claim: use a StorageClass with volumeBindingMode WaitForFirstConsumer")
	case node == "":
		node = p.node
	case p.node != "" && node != p.node:
		// Rescheduling asks the scheduler to pick again; it may
		// pick this node next.
		return nil, controller.ProvisioningReschedule, fmt.Errorf("selected node %s does not hold local-path volumes: only node %s does", node, p.node)
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
