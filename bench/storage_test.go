//go:build bench

package bench

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/pocketkube/pocketkube/test/framework"
)

// BenchmarkPVCStart creates, per iteration, a claim that names no
// StorageClass (so the default local-path class, WaitForFirstConsumer)
// and at once a busybox pod that mounts it, and reports create → claim
// Bound (the scheduler selects the node, the provisioner makes the
// directory and the PV, the PV controller binds) and create → pod Running
// (Ready), p50/p99 over the iterations. The pod, the claim and its PV
// (reclaim Delete) are gone before the next iteration.
func BenchmarkPVCStart(b *testing.B) {
	c := podsCluster(b)
	client := highQPSClient(b, c)
	var bound, running []time.Duration
	run := 0
	for b.Loop() {
		bnd, rn, err := pvcStartRun(b.Context(), client, fmt.Sprintf("bench-pvc-%d-%d", time.Now().UnixNano(), run), "")
		if err != nil {
			b.Fatal(err)
		}
		run++
		bound, running = append(bound, bnd), append(running, rn)
	}
	noNsPerOp(b)
	reportQuantiles(b, "create-bound", bound, false)
	reportQuantiles(b, "create-running", running, false)
}

// pvcStartRun is one iteration of BenchmarkPVCStart with claim and pod
// name; a node, when set, is where the scheduler must put the pod.
func pvcStartRun(ctx context.Context, client kubernetes.Interface, name, node string) (bound, running time.Duration, err error) {
	ns := "default"
	sel := metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", name).String()}
	claims, err := client.CoreV1().PersistentVolumeClaims(ns).Watch(ctx, sel)
	if err != nil {
		return 0, 0, err
	}
	defer claims.Stop()
	pods, err := client.CoreV1().Pods(ns).Watch(ctx, sel)
	if err != nil {
		return 0, 0, err
	}
	defer pods.Stop()

	pvc := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("64Mi")}},
		},
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PodSpec{
			TerminationGracePeriodSeconds: new(int64),
			Volumes: []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{
				PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: name}}}},
			Containers: []corev1.Container{{
				Name: "main", Image: "busybox", ImagePullPolicy: corev1.PullIfNotPresent,
				Command:      []string{"sh", "-c", "echo started > /data/f; exec sleep 3600"},
				VolumeMounts: []corev1.VolumeMount{{Name: "data", MountPath: "/data"}},
			}},
		},
	}
	if node != "" {
		pod.Spec.NodeSelector = map[string]string{corev1.LabelHostname: node}
	}
	start := time.Now()
	if _, err := client.CoreV1().PersistentVolumeClaims(ns).Create(ctx, pvc, metav1.CreateOptions{}); err != nil {
		return 0, 0, err
	}
	if _, err := client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		return 0, 0, err
	}
	timeout := time.After(2 * time.Minute)
	var volume string
	for bound == 0 || running == 0 {
		select {
		case ev, ok := <-claims.ResultChan():
			if !ok {
				return 0, 0, fmt.Errorf("watch of claim %s ended", name)
			}
			if p, ok := ev.Object.(*corev1.PersistentVolumeClaim); ok && bound == 0 && p.Status.Phase == corev1.ClaimBound {
				bound, volume = time.Since(start), p.Spec.VolumeName
			}
		case ev, ok := <-pods.ResultChan():
			if !ok {
				return 0, 0, fmt.Errorf("watch of pod %s ended", name)
			}
			if p, ok := ev.Object.(*corev1.Pod); ok && running == 0 && framework.Ready(p) {
				running = time.Since(start)
			}
		case <-timeout:
			return 0, 0, fmt.Errorf("claim %s bound after %s, pod Running after %s (0: not yet) at 2 minutes", name, bound, running)
		case <-ctx.Done():
			return 0, 0, ctx.Err()
		}
	}

	// Clean up: the pod, then the claim, then its PV (reclaim Delete) go.
	client.CoreV1().Pods(ns).Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: new(int64)})
	client.CoreV1().PersistentVolumeClaims(ns).Delete(ctx, name, metav1.DeleteOptions{})
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		_, err := client.CoreV1().PersistentVolumes().Get(ctx, volume, metav1.GetOptions{})
		return err != nil, nil
	})
	if err != nil {
		return 0, 0, fmt.Errorf("PV %s of claim %s not deleted: %w", volume, name, err)
	}
	return bound, running, nil
}
