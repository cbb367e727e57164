package volume

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
	v1 "k8s.io/api/core/v1"
	"k8s.io/component-helpers/storage/ephemeral"
	"k8s.io/klog/v2"
	"k8s.io/kubernetes/pkg/volume/util/hostutil"
	"k8s.io/kubernetes/pkg/volume/validation"
)

// localPluginDir is kubelet's directory of the local-volume plugin
// (kubernetes.io/local-volume).
const localPluginDir = "kubernetes.io~local-volume"

// pvcProtectionFinalizer is upstream's volumeutil.PVCProtectionFinalizer.
const pvcProtectionFinalizer = "kubernetes.io/pvc-protection"

// ClaimSource reads PersistentVolumeClaims and PersistentVolumes, for
// persistentVolumeClaim and ephemeral volumes. Sources that can implement
// it. Its errors are the API server's (`persistentvolumeclaims "x" not
// found`), which kubelet puts in its messages as they are.
type ClaimSource interface {
	PersistentVolumeClaim(ctx context.Context, namespace, name string) (*v1.PersistentVolumeClaim, error)
	PersistentVolume(ctx context.Context, name string) (*v1.PersistentVolume, error)
}

// processError is kubelet's volume manager failing to turn a pod volume into
// a volume it can mount (an unbound, lost, missing or deleted claim, a PV not
// bound back to it): its text is that of kubelet's FailedMount event, and
// the agent retries until the claim binds.
type processError struct {
	Volume string
	Err    error
}

func (e *processError) Error() string {
	// kubelet's WaitForAttachAndMount, with the one volume the agent was
	// setting up: pocketkube has no attachable volumes.
	return fmt.Sprintf("Unable to attach or mount volumes: unmounted volumes=[%s], unattached volumes=[], failed to process volumes=[%s]: %v",
		e.Volume, e.Volume, e.Err)
}

func (e *processError) Unwrap() error { return e.Err }

// setupClaim is kubelet's path for a persistentVolumeClaim or generic
// ephemeral volume: the desired-state populator's createVolumeSpec (claim →
// bound PV, texts of its errors), then the PV's plugin (hostPath or local).
// Its errors are complete event texts, named after the PV as kubelet names
// a PV-backed volume.
func (m *Manager) setupClaim(ctx context.Context, pod *v1.Pod, vol *v1.Volume, src Sources) (*Mounted, error) {
	claims, ok := src.(ClaimSource)
	if !ok {
		return nil, &processError{Volume: vol.Name, Err: errors.New("persistent volume claims are not available on this node")}
	}
	claimName, readOnly := "", false
	if s := vol.PersistentVolumeClaim; s != nil {
		claimName, readOnly = s.ClaimName, s.ReadOnly
	} else {
		claimName = ephemeral.VolumeClaimName(pod, vol)
	}
	pvc, pv, err := claimVolume(ctx, claims, pod, vol, claimName)
	if err != nil {
		return nil, &processError{Volume: vol.Name, Err: err}
	}
	if pv.Spec.VolumeMode != nil && *pv.Spec.VolumeMode != v1.PersistentVolumeFilesystem {
		// The agent mounts every volume; volumeDevices are not supported.
		return nil, &processError{Volume: vol.Name, Err: fmt.Errorf("volume %s has volumeMode %s, but is specified in volumeMounts", vol.Name, *pv.Spec.VolumeMode)}
	}
	logger := klog.FromContext(ctx)
	logger.V(5).Info("Found bound PV for PVC", "PVC", klog.KObj(pvc), "PVCUID", pvc.UID, "PVName", pv.Name)
	switch {
	case pv.Spec.HostPath != nil:
		// kubelet's hostPath plugin with the PV's source: the host path
		// itself, its type checked.
		mnt, err := setupHostPath(pv.Spec.HostPath)
		if err != nil {
			return nil, fmt.Errorf("MountVolume.SetUp failed for volume %q : %w", pv.Name, err)
		}
		mnt.ReadOnly = readOnly
		m.claims.set(string(pod.UID), vol.Name, ClaimVolume{Claim: claimName, Path: mnt.Path})
		return mnt, nil
	case pv.Spec.Local != nil:
		mnt, err := m.setupLocal(ctx, pod, pv, readOnly)
		if err == nil {
			m.claims.set(string(pod.UID), vol.Name, ClaimVolume{Claim: claimName, Path: mnt.Path, Local: true})
		}
		return mnt, err
	default:
		return nil, &processError{Volume: vol.Name, Err: fmt.Errorf("failed to get Plugin from volumeSpec for volume %q err=no volume plugin matched", pv.Name)}
	}
}

// claimVolume is kubelet's getPVCExtractPV and getPVSpec: the claim, bound
// and not being deleted (unless protected), and its PV, whose claimRef
// points back at it; for an ephemeral volume, the claim must be the pod's.
func claimVolume(ctx context.Context, claims ClaimSource, pod *v1.Pod, vol *v1.Volume, claimName string) (*v1.PersistentVolumeClaim, *v1.PersistentVolume, error) {
	pvc, err := claims.PersistentVolumeClaim(ctx, pod.Namespace, claimName)
	if err == nil && pvc == nil {
		err = errors.New("no claim")
	}
	if err == nil {
		switch {
		case pvc.DeletionTimestamp != nil && !slices.Contains(pvc.Finalizers, pvcProtectionFinalizer):
			err = errors.New("PVC is being deleted")
		case pvc.Status.Phase != v1.ClaimBound:
			err = errors.New("PVC is not bound")
		case pvc.Spec.VolumeName == "":
			err = errors.New("PVC has empty pvc.Spec.VolumeName")
		}
	} else {
		err = fmt.Errorf("failed to fetch PVC from API server: %v", err)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("error processing PVC %s/%s: %v", pod.Namespace, claimName, err)
	}
	if vol.PersistentVolumeClaim == nil {
		if err := ephemeral.VolumeIsForPod(pod, pvc); err != nil {
			return nil, nil, err
		}
	}
	name := pvc.Spec.VolumeName
	pv, err := claims.PersistentVolume(ctx, name)
	switch {
	case err != nil || pv == nil:
		err = fmt.Errorf("failed to fetch PV %s from API server: %v", name, err)
	case pv.Spec.ClaimRef == nil:
		err = fmt.Errorf("found PV object %s but it has a nil pv.Spec.ClaimRef indicating it is not yet bound to the claim", name)
	case pv.Spec.ClaimRef.UID != pvc.UID:
		err = fmt.Errorf("found PV object %s but its pv.Spec.ClaimRef.UID %s does not point to claim.UID %s", name, pv.Spec.ClaimRef.UID, pvc.UID)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("error processing PVC %s/%s: %v", pod.Namespace, claimName, err)
	}
	return pvc, pv, nil
}

// setupLocal is kubelet's local-volume plugin for a directory: the PV's
// path must be a directory (GetDeviceMountPath), which is bind-mounted
// (read-only when readOnly) at <pod>/volumes/kubernetes.io~local-volume/<pv>;
// the pod's fsGroup is applied when the volume is writable and no other pod
// mounts it, as kubelet does on the first mount. Block devices are not
// supported.
func (m *Manager) setupLocal(ctx context.Context, pod *v1.Pod, pv *v1.PersistentVolume, readOnly bool) (*Mounted, error) {
	path := pv.Spec.Local.Path
	if path == "" {
		return nil, fmt.Errorf("MountVolume.GetDeviceMountPath failed for volume %q : local volume source is nil or local path is not set", pv.Name)
	}
	ft, err := hostutil.NewHostUtil().GetFileType(path)
	if err == nil && ft != hostutil.FileTypeDirectory {
		if ft == hostutil.FileTypeBlockDev {
			err = errors.New("local block devices are not supported by pocketkube")
		} else {
			err = errors.New("only directory and block device are supported")
		}
	}
	if err != nil {
		return nil, fmt.Errorf("MountVolume.GetDeviceMountPath failed for volume %q : %w", pv.Name, err)
	}
	mnt, err := m.mountLocal(ctx, pod, pv, path, readOnly)
	if err != nil {
		return nil, fmt.Errorf("MountVolume.SetUp failed for volume %q : %w", pv.Name, err)
	}
	return mnt, nil
}

// mountLocal is localVolumeMounter.SetUpAt.
func (m *Manager) mountLocal(ctx context.Context, pod *v1.Pod, pv *v1.PersistentVolume, path string, readOnly bool) (*Mounted, error) {
	if err := validation.ValidatePathNoBacksteps(path); err != nil {
		return nil, fmt.Errorf("invalid path: %s %v", path, err)
	}
	unlock := m.lockPod(string(pod.UID))
	defer unlock()
	dir, err := m.volumeDir(string(pod.UID), localPluginDir, pv.Name)
	if err != nil {
		return nil, err
	}
	attrs := &Mounted{Path: dir, ReadOnly: readOnly, Managed: !readOnly}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, err
	}
	if mounted, err := mountinfo.Mounted(dir); err != nil {
		return nil, fmt.Errorf("cannot validate mount point: %s %v", dir, err)
	} else if mounted {
		return attrs, nil
	}
	// Other pods' mounts of the same directory, counted before this one.
	refs, err := m.otherPodMounts(path)
	if err != nil {
		return nil, err
	}
	if err := bindMount(path, dir, readOnly); err != nil {
		os.Remove(dir)
		return nil, err
	}
	klog.FromContext(ctx).V(4).Info("Mounted local volume", "path", path, "dir", dir, "readOnly", readOnly)
	if !readOnly && refs == 0 {
		var policy *v1.PodFSGroupChangePolicy
		if sc := pod.Spec.SecurityContext; sc != nil {
			policy = sc.FSGroupChangePolicy
		}
		if err := setVolumeOwnership(dir, pod, false, policy); err != nil {
			return nil, err
		}
	}
	return attrs, nil
}

// otherPodMounts counts the bind mounts of path's directory below PodsDir,
// as kubelet's GetMountRefs filtered to pod mounts: same device, same root.
func (m *Manager) otherPodMounts(path string) (int, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, &os.PathError{Op: "stat", Path: path, Err: err}
	}
	infos, err := mountinfo.GetMounts(func(i *mountinfo.Info) (skip, stop bool) {
		return !strings.HasPrefix(i.Mountpoint, m.podsDir+"/"), false
	})
	if err != nil {
		return 0, fmt.Errorf("read mount table: %w", err)
	}
	n := 0
	for _, i := range infos {
		var ist unix.Stat_t
		if unix.Stat(i.Mountpoint, &ist) == nil && ist.Dev == st.Dev && ist.Ino == st.Ino {
			n++
		}
	}
	return n, nil
}

// bindMount bind-mounts source on target, then makes it read-only when
// asked (a bind mount takes MS_RDONLY only on a remount).
func bindMount(source, target string, readOnly bool) error {
	if err := unix.Mount(source, target, "", unix.MS_BIND, ""); err != nil {
		return &os.PathError{Op: "bind mount " + source + " on", Path: target, Err: err}
	}
	if readOnly {
		if err := unix.Mount("", target, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
			_ = unmount(target)
			return &os.PathError{Op: "remount read-only", Path: target, Err: err}
		}
	}
	return nil
}
