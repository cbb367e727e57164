//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	statsapi "k8s.io/kubelet/pkg/apis/stats/v1alpha1"

	"github.com/pocketkube/pocketkube/test/framework"
)

// TestStatsSummaryNetworkAndVolumes: a pod whose init container writes
// 8 MiB to an emptyDir and whose container writes 8 MiB to its rootfs
// and talks to the API server has, in /stats/summary, rx and tx bytes on
// eth0 (read in its network namespace), the emptyDir with ≥ 8 MiB used
// and its filesystem's capacity, the projected service account token
// volume, the local-path claim volume with its pvcRef and the 1 MiB
// written to it, a writable layer of ≥ 8 MiB, logs, and an
// ephemeral-storage of at least their sum. The emptyDir is walked again when the init
// container has ended, so no wait for the 1 min du cache; the layer's
// cache is 10 s.
func TestStatsSummaryNetworkAndVolumes(t *testing.T) {
	t.Parallel()
	c, ns := busyboxNamespace(t, "statsfs-")
	const mib = 8
	pod := busyboxSleeper(ns, "writer")
	if _, err := c.CoreV1().PersistentVolumeClaims(ns).Create(t.Context(), classlessClaim(ns, "data"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pod.Spec.Volumes = []corev1.Volume{
		{Name: "scratch", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
		{Name: "data", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "data"}}},
	}
	pod.Spec.InitContainers = []corev1.Container{{
		Name: "fill", Image: "busybox", ImagePullPolicy: corev1.PullIfNotPresent,
		Command:      []string{"sh", "-c", fmt.Sprintf("dd if=/dev/zero of=/scratch/data bs=1M count=%d && dd if=/dev/zero of=/data/f bs=1M count=1", mib)},
		VolumeMounts: []corev1.VolumeMount{{Name: "scratch", MountPath: "/scratch"}, {Name: "data", MountPath: "/data"}},
	}}
	pod.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "scratch", MountPath: "/scratch"}}
	pod.Spec.Containers[0].Command = []string{"sh", "-c", fmt.Sprintf(
		"dd if=/dev/zero of=/layer bs=1M count=%d && echo written && "+
			"while :; do nc -w 1 $KUBERNETES_SERVICE_HOST $KUBERNETES_SERVICE_PORT </dev/null; sleep 1; done", mib)}
	framework.RunPods(t, c, pod)
	node := onlyNode(t, c)

	var ps *statsapi.PodStats
	used := func(f *statsapi.FsStats) uint64 {
		if f == nil || f.UsedBytes == nil {
			return 0
		}
		return *f.UsedBytes
	}
	var scratch, layer, logs, eph uint64
	out, err := shared.PollKubectl(t.Context(), framework.Newest(), 45*time.Second, func(out string, err error) bool {
		if err != nil {
			return false
		}
		var s statsapi.Summary
		if json.Unmarshal([]byte(out), &s) != nil {
			return false
		}
		ps = nil
		for i := range s.Pods {
			if s.Pods[i].PodRef.Namespace == ns && s.Pods[i].PodRef.Name == "writer" {
				ps = &s.Pods[i]
			}
		}
		if ps == nil || ps.Network == nil || ps.Network.RxBytes == nil || ps.Network.TxBytes == nil ||
			*ps.Network.RxBytes == 0 || *ps.Network.TxBytes == 0 || len(ps.Containers) != 1 {
			return false
		}
		scratch = 0
		for i := range ps.VolumeStats {
			if ps.VolumeStats[i].Name == "scratch" {
				scratch = used(&ps.VolumeStats[i].FsStats)
			}
		}
		layer, logs, eph = used(ps.Containers[0].Rootfs), used(ps.Containers[0].Logs), used(ps.EphemeralStorage)
		return scratch >= mib<<20 && layer >= mib<<20 && logs > 0
	}, "get", "--raw", "/api/v1/nodes/"+node+"/proxy/stats/summary")
	if err != nil {
		t.Fatalf("no summary with the writer pod's network, emptyDir (%d bytes), layer (%d bytes) and logs (%d bytes): %v\n%.4000s", scratch, layer, logs, err, out)
	}
	if ps.Network.Name != "eth0" {
		t.Errorf("pod's default interface %q, want eth0", ps.Network.Name)
	}
	// Its namespace's interfaces (eth0 alone, lo left out), not the node's,
	// which has eth0 too.
	if len(ps.Network.Interfaces) != 1 || ps.Network.Interfaces[0].Name != "eth0" {
		t.Errorf("pod's interfaces %+v, want eth0 alone", ps.Network.Interfaces)
	}
	if eph < scratch+layer+logs || ps.EphemeralStorage.CapacityBytes == nil {
		t.Errorf("ephemeral-storage %d bytes, want ≥ emptyDir %d + layer %d + logs %d, with the capacity of nodefs", eph, scratch, layer, logs)
	}
	var token, claim *statsapi.VolumeStats
	for i := range ps.VolumeStats {
		v := &ps.VolumeStats[i]
		if v.Name == "data" {
			claim = v
			continue
		}
		if v.Name == "scratch" && (v.CapacityBytes == nil || v.AvailableBytes == nil || v.Inodes == nil || v.InodesUsed == nil || *v.InodesUsed < 2) {
			t.Errorf("emptyDir stats lack its filesystem or inodes: %+v", v.FsStats)
		}
		if v.Name != "scratch" {
			token = v
		}
	}
	if token == nil || used(&token.FsStats) == 0 {
		t.Errorf("no stats of the service account token's projected volume: %+v", ps.VolumeStats)
	}
	// The local-path claim (a hostPath PV) with its pvcRef.
	if claim == nil || claim.PVCRef == nil || *claim.PVCRef != (statsapi.PVCReference{Name: "data", Namespace: ns}) || used(&claim.FsStats) < 1<<20 {
		t.Errorf("claim volume stats %+v, want pvcRef %s/data and ≥ 1 MiB used", claim, ns)
	}
	t.Logf("writer: eth0 rx %d tx %d bytes; emptyDir %d, layer %d, logs %d, ephemeral %d bytes",
		*ps.Network.RxBytes, *ps.Network.TxBytes, scratch, layer, logs, eph)
}
