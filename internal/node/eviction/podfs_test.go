package eviction

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	statsapi "k8s.io/kubelet/pkg/apis/stats/v1alpha1"

	"github.com/pocketkube/pocketkube/internal/node/network"
	"github.com/pocketkube/pocketkube/internal/node/volume"
)

func writeMiB(t *testing.T, file string, mib int) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		t.Fatal(err)
	}
	data := make([]byte, mib<<20)
	for i := range data {
		data[i] = 1
	}
	if err := os.WriteFile(file, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// pidCgroups has process 4200+N in container cN of pod uid-web.
type pidCgroups struct{ cpuCgroups }

func (pidCgroups) ContainerPid(uid, _, id string) (int, error) {
	n, err := strconv.Atoi(strings.TrimPrefix(id, "c"))
	if uid != "uid-web" || err != nil {
		return 0, errors.New("no cgroup")
	}
	return 4200 + n, nil
}

// TestSummaryPodFs reads a pod's network, writable layers, logs and volumes
// from fixture directories: the figures, the ephemeral storage as kubelet
// sums it, the du cache and its end with the pod.
func TestSummaryPodFs(t *testing.T) {
	dir := t.TempDir()
	pod := &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "ns", UID: "uid-web"},
		Spec: v1.PodSpec{Volumes: []v1.Volume{
			{Name: "cache", VolumeSource: v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{}}},
			{Name: "conf", VolumeSource: v1.VolumeSource{ConfigMap: &v1.ConfigMapVolumeSource{}}},
			{Name: "token", VolumeSource: v1.VolumeSource{Projected: &v1.ProjectedVolumeSource{}}},
			{Name: "host", VolumeSource: v1.VolumeSource{HostPath: &v1.HostPathVolumeSource{Path: "/"}}},
			{Name: "data", VolumeSource: v1.VolumeSource{PersistentVolumeClaim: &v1.PersistentVolumeClaimVolumeSource{ClaimName: "data-claim"}}},
			{Name: "local", VolumeSource: v1.VolumeSource{PersistentVolumeClaim: &v1.PersistentVolumeClaimVolumeSource{ClaimName: "local-claim"}}},
			{Name: "unbound", VolumeSource: v1.VolumeSource{PersistentVolumeClaim: &v1.PersistentVolumeClaimVolumeSource{ClaimName: "nope"}}},
		}},
	}
	containers := map[string]string{"main": "c1"}
	pods := []*v1.Pod{pod}
	writeMiB(t, filepath.Join(dir, "layers", "c1", "big"), 3)
	writeMiB(t, filepath.Join(dir, "logs", "main", "0.log"), 1)
	writeMiB(t, filepath.Join(dir, "vols", "cache", "data"), 2)
	writeMiB(t, filepath.Join(dir, "vols", "conf", "key"), 1)
	writeMiB(t, filepath.Join(dir, "vols", "token", "token"), 1)
	writeMiB(t, filepath.Join(dir, "pv", "data", "f"), 1)
	s := &Summary{
		NodeName: "n", NodeFsDir: dir, ImageFsDir: dir,
		Cgroups: pidCgroups{cpuCgroups{fakeCgroups{ws: map[string]uint64{"uid-web": 100}}}},
		Pods:    func() ([]*v1.Pod, error) { return pods, nil },
		Containers: func(context.Context) (map[string]map[string]string, error) {
			return map[string]map[string]string{"uid-web": containers}, nil
		},
		PodFs: PodFs{
			Interfaces: func(uid string, pid int) ([]network.Interface, error) {
				if uid != "uid-web" {
					return nil, errors.New("no netns")
				}
				if want, _ := (pidCgroups{}).ContainerPid(uid, "", containers["main"]); pid != want {
					t.Errorf("Interfaces of %s through pid %d, want its container's %d", uid, pid, want)
				}
				return []network.Interface{{Name: "eth0", RxBytes: 10, RxErrors: 1, TxBytes: 20, TxErrors: 2}, {Name: "net1", RxBytes: 5}}, nil
			},
			VolumePath: func(uid string, vol *v1.Volume) (string, bool) {
				if vol.HostPath != nil {
					return "", false
				}
				return filepath.Join(dir, "vols", vol.Name), true
			},
			LayerDir: func(id string) string { return filepath.Join(dir, "layers", id) },
			LogDir:   func(_ *v1.Pod, c string) string { return filepath.Join(dir, "logs", c) },
			Claim: func(uid, vol string) (volume.ClaimVolume, bool) {
				switch vol {
				case "data":
					return volume.ClaimVolume{Claim: "data-claim", Path: filepath.Join(dir, "pv", "data")}, true
				case "local":
					return volume.ClaimVolume{Claim: "local-claim", Path: dir, Local: true}, true
				}
				return volume.ClaimVolume{}, false
			},
		},
	}
	get := func() statsapi.PodStats {
		t.Helper()
		sum, err := s.Get(t.Context(), false)
		if err != nil {
			t.Fatal(err)
		}
		if len(sum.Pods) != 1 {
			t.Fatalf("pods = %+v, want web", sum.Pods)
		}
		return sum.Pods[0]
	}
	used := func(f *statsapi.FsStats) uint64 {
		if f == nil || f.UsedBytes == nil {
			return 0
		}
		return *f.UsedBytes
	}
	const mib = 1 << 20
	p := get()
	if n := p.Network; n == nil || n.Name != "eth0" || *n.RxBytes != 10 || *n.TxErrors != 2 || len(n.Interfaces) != 2 {
		t.Errorf("network = %+v, want eth0 (rx 10, tx errors 2) as default of 2 interfaces", n)
	}
	if len(p.Containers) != 1 {
		t.Fatalf("containers = %+v", p.Containers)
	}
	c := p.Containers[0]
	if r := used(c.Rootfs); r < 3*mib || r > 4*mib || c.Rootfs.CapacityBytes == nil || *c.Rootfs.InodesUsed != 2 {
		t.Errorf("rootfs = %+v (%d bytes), want 3 MiB in 2 inodes on nodefs", c.Rootfs, r)
	}
	if l := used(c.Logs); l < mib || l > 2*mib || c.Logs.AvailableBytes == nil {
		t.Errorf("logs = %+v (%d bytes), want 1 MiB on nodefs", c.Logs, l)
	}
	vols := map[string]*statsapi.FsStats{}
	for i := range p.VolumeStats {
		v := &p.VolumeStats[i]
		vols[v.Name] = &v.FsStats
	}
	nodeFs, err := fsStats(dir, metav1.Now())
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range p.VolumeStats {
		switch v.Name {
		case "data":
			if v.PVCRef == nil || *v.PVCRef != (statsapi.PVCReference{Name: "data-claim", Namespace: "ns"}) || used(&v.FsStats) < mib || used(&v.FsStats) > 2*mib {
				t.Errorf("hostPath claim volume %+v, want pvcRef ns/data-claim, 1 MiB used", v)
			}
		case "local":
			// The filesystem's figures (MetricsStatFS), not a walk.
			if v.PVCRef == nil || v.PVCRef.Name != "local-claim" || used(&v.FsStats) < *nodeFs.UsedBytes/2 || v.CapacityBytes == nil {
				t.Errorf("local claim volume %+v (%d used), want pvcRef local-claim and its filesystem's %d used", v, used(&v.FsStats), *nodeFs.UsedBytes)
			}
		default:
			if v.PVCRef != nil {
				t.Errorf("volume %s has a pvcRef", v.Name)
			}
		}
	}
	delete(vols, "data")
	delete(vols, "local")
	if len(vols) != 3 || used(vols["cache"]) < 2*mib || used(vols["token"]) < mib ||
		vols["conf"].CapacityBytes == nil || vols["conf"].Inodes == nil || *vols["conf"].InodesUsed != 2 {
		t.Errorf("volumes = %+v, want cache (2 MiB), conf and token with their filesystems, not host", p.VolumeStats)
	}
	// Layers, logs, the emptyDir and the configMap; not the projected volume.
	want := used(c.Rootfs) + used(c.Logs) + used(vols["cache"]) + used(vols["conf"])
	if e := used(p.EphemeralStorage); e != want || e < 7*mib || p.EphemeralStorage.CapacityBytes == nil {
		t.Errorf("ephemeral storage = %d bytes, want %d (rootfs + logs + cache + conf)", e, want)
	}

	// Within the cache's period the volume is not walked again...
	writeMiB(t, filepath.Join(dir, "vols", "cache", "more"), 2)
	if got := used(&get().VolumeStats[0].FsStats); got != used(vols["cache"]) {
		t.Errorf("cached cache volume = %d bytes, want the first walk's %d", got, used(vols["cache"]))
	}
	// ...unless the pod's running containers changed.
	containers = map[string]string{"main": "c2"}
	if got := used(&get().VolumeStats[0].FsStats); got < 4*mib {
		t.Errorf("cache volume after a container change = %d bytes, want ≥ 4 MiB", got)
	}
	if len(s.du.entries) == 0 {
		t.Fatal("nothing cached")
	}
	pods = nil
	if _, err := s.Get(t.Context(), false); err != nil {
		t.Fatal(err)
	}
	if len(s.du.entries) != 0 {
		t.Errorf("du cache kept %d entries of a gone pod", len(s.du.entries))
	}
}
