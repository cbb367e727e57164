package agent

import (
	"context"
	"fmt"
	"time"

	v1 "k8s.io/api/core/v1"

	"github.com/pocketkube/pocketkube/internal/node/runtime"
)

// ephemeralContainer is the container an ephemeral container describes,
// as kubelet converts it (a cast: the two share their fields); no
// probes, ports, resources or lifecycle hooks, which the API refuses for
// ephemeral containers.
func ephemeralContainer(ec *v1.EphemeralContainer) *v1.Container {
	return (*v1.Container)(&ec.EphemeralContainerCommon)
}

func isEphemeral(pod *v1.Pod, name string) bool {
	return ephemeralSpec(pod, name) != nil
}

func ephemeralSpec(pod *v1.Pod, name string) *v1.EphemeralContainer {
	for i := range pod.Spec.EphemeralContainers {
		if pod.Spec.EphemeralContainers[i].Name == name {
			return &pod.Spec.EphemeralContainers[i]
		}
	}
	return nil
}

// startEphemeral is kubelet's EphemeralContainersToStart step: every
// ephemeral container the runtime has never had an attempt of starts
// once; one that ran is never restarted, whatever the pod's
// restartPolicy. As in kubelet, they start whether or not the pod's
// init containers are done. latest holds every attempt of the pod,
// including those of an earlier sandbox. It returns when to retry one
// that could not start (its image, say), or 0.
func (a *Agent) startEphemeral(ctx context.Context, pod *v1.Pod, st *podState, latest map[string]*runtime.ContainerStatus) (requeue time.Duration, started bool) {
	for i := range pod.Spec.EphemeralContainers {
		c := ephemeralContainer(&pod.Spec.EphemeralContainers[i])
		if latest[c.Name] != nil {
			continue
		}
		if d := a.startContainer(ctx, pod, c, st, nil); d > 0 && (requeue == 0 || d < requeue) {
			requeue = d
		}
		started = true
	}
	return requeue, started
}

// ephemeralTarget is kubelet's getTargetID: the ID of the newest attempt
// of the container an ephemeral container names in targetContainerName,
// "" for any other container. A target that never ran is kubelet's
// CreateContainerConfigError.
func (a *Agent) ephemeralTarget(ctx context.Context, pod *v1.Pod, name string) (string, error) {
	ec := ephemeralSpec(pod, name)
	if ec == nil || ec.TargetContainerName == "" {
		return "", nil
	}
	containers, err := a.cfg.Runtime.ListContainers(ctx, string(pod.UID))
	if err != nil {
		return "", err
	}
	target := latestByName(containers)[ec.TargetContainerName]
	if target == nil {
		return "", fmt.Errorf("unable to find target container %v", ec.TargetContainerName)
	}
	return target.ID, nil
}
