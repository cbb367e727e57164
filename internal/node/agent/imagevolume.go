package agent

import (
	"context"
	"errors"
	"fmt"
	"time"

	v1 "k8s.io/api/core/v1"

	"github.com/pocketkube/pocketkube/internal/node/image"
	"github.com/pocketkube/pocketkube/internal/node/volume"
)

// volumeSources returns what Volumes.Setup reads for vol: the API objects,
// and for an image volume the root filesystem of its image, pulled first
// (once per pod, and only when a container mounts the volume: skip).
// As kubelet's volume manager, a claim no container mounts is skipped
// too: its pod runs whatever the claim's state.
func (a *Agent) volumeSources(ctx context.Context, pod *v1.Pod, vol *v1.Volume, st *podState) (src volume.Sources, skip bool, err error) {
	if vol.PersistentVolumeClaim != nil || vol.Ephemeral != nil {
		return a.objects, !mountsVolume(pod, vol.Name), nil
	}
	if vol.Image == nil {
		return a.objects, false, nil
	}
	if _, ok := st.mounts[vol.Name]; ok || !mountsVolume(pod, vol.Name) {
		return nil, true, nil
	}
	rootfs, err := a.pullImageVolume(ctx, pod, vol, st)
	if err != nil {
		return nil, false, err
	}
	return imageVolumeSource{apiObjects: a.objects, rootfs: rootfs}, false, nil
}

// imageVolumeSource is the Sources of one image volume: the pod's API
// objects and the root filesystem the agent pulled for it.
type imageVolumeSource struct {
	*apiObjects
	rootfs string
}

var _ volume.ImageSource = imageVolumeSource{}

func (s imageVolumeSource) ImageRootfs(context.Context, *v1.Pod, *v1.Volume) (string, error) {
	return s.rootfs, nil
}

// errImageVolume stops a sync whose containers wait for an image volume's
// image; their waiting reasons say why.
var errImageVolume = errors.New("image volume not pulled")

// pullImageVolume is kubelet's getImageVolumes and
// toKubeContainerImageVolumes for one volume: EnsureImageExists with the
// volume's pullPolicy (its events on the pod), and on failure each
// container that mounts the volume waits with the pull's reason
// (ErrImagePull, ImagePullBackOff, ErrImageNeverPull, InvalidImageName)
// and gets an "Error: ..." event, as kubelet fails their start.
func (a *Agent) pullImageVolume(ctx context.Context, pod *v1.Pod, vol *v1.Volume, st *podState) (string, error) {
	reason, msg, rootfs := a.ensureImageVolume(ctx, pod, vol.Image)
	if reason == "" {
		return rootfs, nil
	}
	for _, c := range allContainers(pod) {
		for _, vm := range c.VolumeMounts {
			if vm.Name == vol.Name {
				a.recordContainer(pod, c, v1.EventTypeWarning, "Failed", "Error: %s", msg)
				st.waiting[c.Name] = v1.ContainerStateWaiting{Reason: reason, Message: msg}
				break
			}
		}
	}
	return "", fmt.Errorf("%w %q of pod %s: %s: %s", errImageVolume, vol.Name, formatPod(pod), reason, msg)
}

// ensureImageVolume is EnsureImageExists for an image volume's reference:
// the unpacked root filesystem, or the waiting reason and message.
func (a *Agent) ensureImageVolume(ctx context.Context, pod *v1.Pod, src *v1.ImageVolumeSource) (reason, msg, rootfs string) {
	ref, err := image.Normalize(src.Reference)
	if err != nil {
		msg := fmt.Sprintf("Failed to apply default image tag %q: %v", src.Reference, err)
		a.record(pod, v1.EventTypeWarning, "InspectFailed", "%s", msg)
		return reasonInvalidImageName, msg, ""
	}
	policy := src.PullPolicy
	if policy == "" {
		policy = v1.PullIfNotPresent
	}
	img, err := a.cfg.Images.Get(ctx, ref)
	creds := &podCredentials{a: a, pod: pod}
	// As for containers: an image pulled with credentials the pod cannot
	// show is not present for it.
	present := err == nil && a.mayUsePresent(ctx, ref, img, creds)
	switch {
	case present && policy != v1.PullAlways:
		a.record(pod, v1.EventTypeNormal, "Pulled", a.presentMessage(), src.Reference)
	case policy == v1.PullNever:
		msg := fmt.Sprintf("Container image %q is not present with pull policy of Never", src.Reference)
		a.record(pod, v1.EventTypeWarning, "ErrImageNeverPull", "%s", msg)
		return reasonErrImageNeverPull, msg, ""
	default:
		key := string(pod.UID) + "/" + ref
		now := a.cfg.Clock.Now()
		if a.pullBackoff.IsInBackOffSinceUpdate(key, now) {
			msg := fmt.Sprintf("Back-off pulling image %q", src.Reference)
			a.record(pod, v1.EventTypeNormal, "BackOff", "%s", msg)
			if prev, ok := a.prevPullErr.Load(key); ok {
				msg = fmt.Sprintf("%s: %s", msg, prev)
			}
			return reasonImagePullBackOff, msg, ""
		}
		a.prevPullErr.Delete(key)
		a.record(pod, v1.EventTypeNormal, "Pulling", "Pulling image %q", src.Reference)
		start := time.Now()
		pulled, err := a.pull(ctx, ref, creds)
		switch {
		case err != nil && present && errors.Is(err, image.ErrUnreachable):
			// Offline with the image present, as for containers.
			a.record(pod, v1.EventTypeNormal, "Pulled", "Container image %q already present on machine; registry unreachable", src.Reference)
		case err != nil:
			a.pullBackoff.Next(key, now)
			a.record(pod, v1.EventTypeWarning, "Failed", "Failed to pull image %q: %v", src.Reference, err)
			a.record(pod, v1.EventTypeWarning, "Failed", "Error: %s", reasonErrImagePull)
			a.prevPullErr.Store(key, fmt.Sprintf("%s: %s", reasonErrImagePull, err))
			return reasonErrImagePull, err.Error(), ""
		default:
			a.record(pod, v1.EventTypeNormal, "Pulled", "Successfully pulled image %q in %v. Image size: %v bytes.", src.Reference, time.Since(start).Round(time.Millisecond), pulled.Size)
			img = pulled
		}
	}
	rootfs, err = a.cfg.Images.Rootfs(ctx, img)
	if err != nil {
		return reasonCreateContainerError, err.Error(), ""
	}
	return "", "", rootfs
}

// mountsVolume reports whether a container of pod, ephemeral ones
// included, mounts volume name (kubelet's GetPodVolumeNames).
func mountsVolume(pod *v1.Pod, name string) bool {
	for _, c := range allContainers(pod) {
		for _, vm := range c.VolumeMounts {
			if vm.Name == name {
				return true
			}
		}
	}
	for _, c := range pod.Spec.EphemeralContainers {
		for _, vm := range c.VolumeMounts {
			if vm.Name == name {
				return true
			}
		}
	}
	return false
}
