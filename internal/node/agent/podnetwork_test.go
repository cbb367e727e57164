package agent

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2/ktesting"

	"github.com/pocketkube/pocketkube/internal/node/runtime"
)

// The network's ADD runs while the first container is created: the
// container's /etc/hosts is bind-mounted before the pod has an IP, and
// gets the IP in the same file before the container starts. A container
// whose environment holds the pod's IP is created after the ADD.
func TestSyncPodNetworkJoinedBeforeStart(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	f := newFixture(t)
	f.pods = append(f.pods, newPod("web", "c"))
	env := newPod("env", "c")
	env.Spec.Containers[0].Env = []v1.EnvVar{{Name: "POD_IP", ValueFrom: &v1.EnvVarSource{
		FieldRef: &v1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "status.podIP"}}}}
	f.pods = append(f.pods, env)
	f.newAgent()
	var hostsAtCreate string
	var inodeAtCreate uint64
	f.runtime.onCreate = func(cfg runtime.ContainerConfig) {
		for _, m := range cfg.Mounts {
			if m.Destination != "/etc/hosts" {
				continue
			}
			b, err := os.ReadFile(m.Source)
			if err != nil {
				t.Errorf("/etc/hosts source at create: %v", err)
			}
			hostsAtCreate = string(b)
			inodeAtCreate = inode(t, m.Source)
		}
	}

	f.mustSync(ctx, "web")
	f.expectCalls("RunPod web-uid", "CreateContainer web-uid/c attempt 0", "StartContainer web-uid/c")
	f.expectStatus(ctx, "web", v1.PodRunning, "c running restarts=0 ready")
	hostsPath := filepath.Join(f.agent.podDir("web-uid"), "etc-hosts")
	b, err := os.ReadFile(hostsPath)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "10.244.0.11\tweb\n") {
		t.Errorf("/etc/hosts after the sync has no pod IP:\n%s", b)
	}
	if strings.Contains(hostsAtCreate, "10.244.0.11") {
		t.Errorf("/etc/hosts had the pod IP at create: the ADD was not under way")
	}
	if hostsAtCreate == "" || inodeAtCreate != inode(t, hostsPath) {
		t.Errorf("/etc/hosts replaced after the container's create (inode %d, now %d): the container would keep the old file", inodeAtCreate, inode(t, hostsPath))
	}

	// The environment needs the IP: it was there at create.
	f.mustSync(ctx, "env")
	if env := f.runtime.configs["c"].Env; !slices.Contains(env, "POD_IP=10.244.0.12") {
		t.Errorf("env %v, want POD_IP=10.244.0.12", env)
	}
	if !strings.Contains(hostsAtCreate, "10.244.0.12\tenv\n") {
		t.Errorf("/etc/hosts at create of a container with the pod IP in its env:\n%s", hostsAtCreate)
	}
}

// A network that fails after the first container was created ends the
// sync as a sandbox that could not be made: the container is removed
// without having started, its events are not shown, and the next sync
// makes the sandbox and the same attempt again.
func TestSyncPodNetworkFailsAfterCreate(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	f := newFixture(t)
	f.pods = append(f.pods, newPod("web", "c", "d"))
	f.newAgent()
	f.network.addErr = errors.New("no IP left")

	if _, err := f.sync(ctx, "web"); err == nil || !strings.Contains(err.Error(), "no IP left") {
		t.Fatalf("syncPod = %v, want the network's error", err)
	}
	f.expectCalls("RunPod web-uid", "CreateContainer web-uid/c attempt 0", "RemoveContainer web-uid/c attempt 0", "RemovePod web-uid")
	f.expectEvents("Warning FailedCreatePodSandBox Failed to create pod sandbox: set up network of pod ns/web: no IP left")
	s := f.expectStatus(ctx, "web", v1.PodPending, "c waiting ContainerCreating restarts=0", "d waiting ContainerCreating restarts=0")
	if s.PodIP != "" || condition(s, v1.PodReadyToStartContainers) != "False" {
		t.Errorf("podIP %q, PodReadyToStartContainers %q; want none, False", s.PodIP, condition(s, v1.PodReadyToStartContainers))
	}

	f.network.addErr = nil
	f.mustSync(ctx, "web")
	f.expectCalls("RunPod web-uid", "CreateContainer web-uid/c attempt 0", "StartContainer web-uid/c",
		"CreateContainer web-uid/d attempt 0", "StartContainer web-uid/d")
	f.expectEvents(
		`Normal Pulled Container image "busybox" already present on machine`,
		"Normal Created Container created",
		"Normal Started Container started",
		`Normal Pulled Container image "busybox" already present on machine`,
		"Normal Created Container created",
		"Normal Started Container started",
	)
	if s := f.expectStatus(ctx, "web", v1.PodRunning, "c running restarts=0 ready", "d running restarts=0 ready"); s.PodIP == "" {
		t.Error("no pod IP")
	}
}

func inode(t *testing.T, path string) uint64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}
