package volume_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/pocketkube/pocketkube/internal/node/volume"
)

// The agent prepares each volume, prepares subPaths (a bind mount the
// container cannot redirect), bind-mounts the results into containers, and
// tears everything down when the pod is gone. This mounts, so it needs root.
func Example() {
	ctx := context.Background()
	root, _ := os.MkdirTemp("", "volume-example")
	defer os.RemoveAll(root)
	m, err := volume.New(volume.Config{PodsDir: filepath.Join(root, "pods")})
	if err != nil {
		panic(err)
	}
	pod := &v1.Pod{}
	pod.Namespace, pod.Name, pod.UID = "default", "web", types.UID("uid-1")
	vol := &v1.Volume{Name: "scratch", VolumeSource: v1.VolumeSource{EmptyDir: &v1.EmptyDirVolumeSource{}}}

	mnt, err := m.Setup(ctx, pod, vol, nil) // src is only needed for configMap and secret volumes
	if err != nil {
		panic(err)
	}
	hostPath, err := m.PrepareSubPath(ctx, volume.SubPath{
		PodUID: string(pod.UID), Container: "app", Index: 0,
		Volume: vol.Name, VolumePath: mnt.Path, Path: "logs",
	})
	if err != nil {
		panic(err)
	}
	rel, _ := filepath.Rel(root, hostPath)
	fmt.Println("/" + rel)
	if err := m.TeardownPod(ctx, string(pod.UID)); err != nil {
		panic(err)
	}
	// Output: /pods/uid-1/volume-subpaths/scratch/app/0
}
