package runtime_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/pocketkube/pocketkube/internal/node/runtime"
)

// Running one container of a pod, as the node agent does. The default
// ShimPath is the shim embedded by `make build`, or else the `runtime-shim`
// command of the running binary.
func Example() {
	ctx := context.Background()
	rt, err := runtime.New(ctx, runtime.Config{
		StateDir: "/var/lib/pocketkube/runtime",
		OnExit:   func(id string) { fmt.Println("exited:", id) }, // enqueue the pod for a sync
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return
	}
	defer rt.Close()
	pod := runtime.PodConfig{UID: "0f6c…", Namespace: "default", Name: "web", Hostname: "web",
		NetNS: "/var/run/netns/web", QOSClass: "BestEffort"}
	if err := rt.RunPod(ctx, pod); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return
	}
	id, err := rt.CreateContainer(ctx, runtime.ContainerConfig{
		PodUID: pod.UID, Name: "app", Rootfs: "/var/lib/pocketkube/images/…/rootfs",
		Args: []string{"sh", "-c", "echo hello"}, Env: []string{"PATH=/bin"},
		LogPath: "/var/log/pods/default_web_0f6c…/app/0.log",
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err) // e.g. exec: "nope": executable file not found in $PATH
		return
	}
	_ = rt.StartContainer(ctx, id)
	_ = rt.StopContainer(ctx, id, 30*time.Second)
	st, _ := rt.ContainerStatus(ctx, id)
	fmt.Println(st.State, st.ExitCode, st.Reason)
	_ = rt.RemovePod(ctx, pod.UID)
}
