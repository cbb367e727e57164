package volume

import (
	v1 "k8s.io/api/core/v1"
	"k8s.io/kubernetes/pkg/volume"
)

// ownershipMounter gives upstream's VolumeOwnership the one thing it asks a
// volume for: whether it is read-only (g+r instead of g+rw). Any other method
// of the embedded nil Mounter is never called by ChangePermissions.
type ownershipMounter struct {
	volume.Mounter
	readOnly bool
}

func (o ownershipMounter) GetAttributes() volume.Attributes {
	return volume.Attributes{ReadOnly: o.readOnly, Managed: true, SELinuxRelabel: true}
}

// setVolumeOwnership applies the pod's fsGroup to dir with upstream's
// SetVolumeOwnership code: lchown(-1, fsGroup) everywhere, files |= 0660
// (0440 when readOnly), directories also |= setgid|0110; symlinks are not
// chmod'ed. No fsGroup: nothing to do.
func setVolumeOwnership(dir string, pod *v1.Pod, readOnly bool, policy *v1.PodFSGroupChangePolicy) error {
	var fsGroup *int64
	if sc := pod.Spec.SecurityContext; sc != nil {
		fsGroup = sc.FSGroup
	}
	if fsGroup == nil {
		return nil
	}
	return volume.NewVolumeOwnership(ownershipMounter{readOnly: readOnly}, dir, fsGroup, policy, nil).ChangePermissions()
}
