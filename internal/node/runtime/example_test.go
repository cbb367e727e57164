package runtime_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/pocketkube/pocketkube/internal/node/runtime"
)

// Running one container of a pod, as the node agent does. The default
// ShimPath is the shim embedded by `make build`, or else the `runtime-shim`
// command of the running binary. It needs root and runc; the image is a
// directory holding the host's static busybox.
func Example() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "runtime-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	rootfs := filepath.Join(dir, "rootfs") // an unpacked image, read-only to the container
	if err := os.MkdirAll(filepath.Join(rootfs, "bin"), 0o755); err != nil {
		panic(err)
	}
	if out, err := exec.Command("cp", "/bin/busybox", filepath.Join(rootfs, "bin", "sh")).CombinedOutput(); err != nil {
		panic(fmt.Sprintf("%v: %s", err, out))
	}

	exited := make(chan string, 1)
	rt, err := runtime.New(ctx, runtime.Config{
		StateDir:   filepath.Join(dir, "runtime"),
		CgroupRoot: "/pocketkube-example",
		OnExit:     func(id string) { exited <- id }, // the agent enqueues the pod for a sync
	})
	if err != nil {
		panic(err)
	}
	defer rt.Close()
	pod := runtime.PodConfig{UID: "0f6c5e2a", Namespace: "default", Name: "web", Hostname: "web", QOSClass: "BestEffort"}
	if err := rt.RunPod(ctx, pod); err != nil {
		panic(err)
	}
	defer rt.RemovePod(ctx, pod.UID)
	logPath := filepath.Join(dir, "logs", "app", "0.log")
	id, err := rt.CreateContainer(ctx, runtime.ContainerConfig{
		PodUID: pod.UID, Name: "app", Rootfs: rootfs,
		Args: []string{"sh", "-c", "echo hello from $0"}, Env: []string{"PATH=/bin"},
		LogPath: logPath,
	})
	if err != nil {
		panic(err) // e.g. exec: "nope": executable file not found in $PATH
	}
	if err := rt.StartContainer(ctx, id); err != nil {
		panic(err)
	}
	fmt.Println("exited:", <-exited == id)
	// A container that still ran would get SIGTERM, and SIGKILL after 30 s.
	if err := rt.StopContainer(ctx, id, 30*time.Second); err != nil {
		panic(err)
	}
	st, err := rt.ContainerStatus(ctx, id)
	if err != nil {
		panic(err)
	}
	fmt.Println(st.State, st.ExitCode, st.Reason)
	log, _ := os.ReadFile(logPath) // CRI format: time, stream, tag, line
	fmt.Printf("%q\n", log[bytes.IndexByte(log, ' ')+1:])
	// Output:
	// exited: true
	// Exited 0 Completed
	// "stdout F hello from sh\n"
}
