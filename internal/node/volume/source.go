package volume

import (
	"context"
	"fmt"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2"
	"k8s.io/kubernetes/pkg/volume/configmap"
	"k8s.io/kubernetes/pkg/volume/secret"
	volumeutil "k8s.io/kubernetes/pkg/volume/util"
)

// defaultMode is v1.ConfigMapVolumeSourceDefaultMode and
// v1.SecretVolumeSourceDefaultMode (0644), used when the API defaults were
// not applied.
const defaultMode int32 = 0o644

// setupConfigMap is kubelet's configMapVolumeMounter.SetUpAt: the ConfigMap
// (or an empty one when optional and absent) → configmap.MakePayload → the
// atomic writer, in a directory (a disk emptyDir), fsGroup applied read-only
// on every write.
func (m *Manager) setupConfigMap(ctx context.Context, pod *v1.Pod, vol *v1.Volume, src Sources) (*Mounted, error) {
	s := vol.ConfigMap
	optional := s.Optional != nil && *s.Optional
	cm, err := src.ConfigMap(ctx, pod.Namespace, s.Name)
	if err != nil {
		if !apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("get configmap %s/%s: %w", pod.Namespace, s.Name, err)
		}
		if !optional {
			// The text of kubelet's configmap manager, whatever the lister said.
			return nil, apierrors.NewNotFound(v1.Resource("configmap"), s.Name)
		}
		cm = &v1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: pod.Namespace, Name: s.Name}}
	}
	payload, err := configmap.MakePayload(s.Items, cm, modeOrDefault(s.DefaultMode), nil, optional)
	if err != nil {
		return nil, err
	}
	return m.writeVolume(ctx, pod, vol.Name, configMapPluginDir, false, payload)
}

// setupSecret is kubelet's secretVolumeMounter.SetUpAt: like setupConfigMap,
// but on a tmpfs (a Memory emptyDir) so secrets never reach the disk.
func (m *Manager) setupSecret(ctx context.Context, pod *v1.Pod, vol *v1.Volume, src Sources) (*Mounted, error) {
	s := vol.Secret
	optional := s.Optional != nil && *s.Optional
	sec, err := src.Secret(ctx, pod.Namespace, s.SecretName)
	if err != nil {
		if !apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("get secret %s/%s: %w", pod.Namespace, s.SecretName, err)
		}
		if !optional {
			return nil, apierrors.NewNotFound(v1.Resource("secret"), s.SecretName)
		}
		sec = &v1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: pod.Namespace, Name: s.SecretName}}
	}
	payload, err := secret.MakePayload(s.Items, sec, modeOrDefault(s.DefaultMode), nil, optional)
	if err != nil {
		return nil, err
	}
	return m.writeVolume(ctx, pod, vol.Name, secretPluginDir, true, payload)
}

// writeVolume is the common end of every payload volume (configMap, secret,
// and later downwardAPI and projected, which kubelet also puts on a tmpfs):
// it prepares <pod>/volumes/<pluginDir>/<name> as a directory, or a tmpfs
// when onTmpfs (sized as a Memory emptyDir without sizeLimit), creates the
// mount points of volumes nested below it in a container, writes payload
// atomically and applies fsGroup read-only to the whole volume on each write.
// The result is always mounted read-only.
func (m *Manager) writeVolume(ctx context.Context, pod *v1.Pod, name, pluginDir string, onTmpfs bool, payload map[string]FileProjection) (*Mounted, error) {
	dir, err := m.volumeDir(string(pod.UID), pluginDir, name)
	if err != nil {
		return nil, err
	}
	if onTmpfs {
		_, err = m.makeTmpfsDir(ctx, dir, m.emptyDirMemorySize(pod, &v1.Volume{}))
	} else {
		_, err = makeVolumeDir(dir)
	}
	if err != nil {
		return nil, err
	}
	// Another volume mounted below this read-only one needs its mount point
	// to exist already: the runtime cannot create it later.
	if err := volumeutil.MakeNestedMountpoints(name, dir, *pod); err != nil {
		return nil, err
	}
	setPerms := func(string) error {
		// As kubelet: the whole volume, not only the new timestamped
		// directory, since the first write also creates the top-level links.
		return setVolumeOwnership(dir, pod, true, nil)
	}
	changed, err := WriteAtomic(ctx, dir, payload, setPerms)
	if err != nil {
		return nil, err
	}
	if changed {
		klog.FromContext(ctx).V(3).Info("Updated volume files", "path", dir, "files", len(payload))
	}
	return &Mounted{Path: dir, ReadOnly: true, Managed: true}, nil
}

func modeOrDefault(mode *int32) *int32 {
	if mode != nil {
		return mode
	}
	m := defaultMode
	return &m
}
