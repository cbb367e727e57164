//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/pocketkube/pocketkube/test/framework"
)

// lostShimPod sleeps: only a kill ends it.
var lostShimPod = podYAML("lost-shim", 1, `  containers:
  - name: main
    image: busybox
    command: ["sleep", "3600"]
`)

// shimPids returns the PIDs of the shims running bundles under dir (the
// bundle of one container, or a cluster's whole data dir): only the test's
// own cluster is ever touched.
func shimPids(dir string) []int {
	out, _ := exec.Command("pgrep", "-f", "shim.*--bundle "+dir).Output()
	var pids []int
	for _, f := range strings.Fields(string(out)) {
		if p, err := strconv.Atoi(f); err == nil {
			pids = append(pids, p)
		}
	}
	return pids
}

// containerInit returns the host PID of the container's init, from runc's
// state under the cluster's data dir, or crun's (up --oci-runtime crun).
func containerInit(t *testing.T, dataDir, id string) int {
	t.Helper()
	runtimeDir := filepath.Join(dataDir, "node", "runtime")
	b, err := os.ReadFile(filepath.Join(runtimeDir, "runc", id, "state.json"))
	if errors.Is(err, os.ErrNotExist) {
		b, err = os.ReadFile(filepath.Join(runtimeDir, "crun", id, "status"))
	}
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Pid     int `json:"init_process_pid"`
		CrunPid int `json:"pid"`
	}
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	return max(st.Pid, st.CrunPid)
}

// A container whose shim is SIGKILLed together with its process (nothing
// records its exit) is reported as containerd reports a container whose
// task is gone, exit code 255 and reason Unknown, and restarted per its
// pod's restartPolicy, while `up` runs.
func TestKilledShimContainerRestarts(t *testing.T) {
	c := startNodeCluster(t)
	c.ApplyPod(t, "lost-shim", lostShimPod)
	pod := framework.WaitPod(t, c.Client(t), "default", "lost-shim", "Running", framework.Running)
	id := strings.TrimPrefix(pod.Status.ContainerStatuses[0].ContainerID, "runc://")
	shims := shimPids(filepath.Join(c.DataDir, "node", "runtime", "containers", id))
	if len(shims) != 1 {
		t.Fatalf("shims of container %s: %v", id, shims)
	}
	init := containerInit(t, c.DataDir, id)
	// The shim first: killed second, it would record the init's death.
	for _, p := range []int{shims[0], init} {
		if err := syscall.Kill(p, syscall.SIGKILL); err != nil {
			t.Fatalf("kill %d: %v", p, err)
		}
	}
	pod = framework.WaitPod(t, c.Client(t), "default", "lost-shim", "restarted", func(p *corev1.Pod) bool {
		return framework.Running(p) && p.Status.ContainerStatuses[0].RestartCount == 1
	})
	last := pod.Status.ContainerStatuses[0].LastTerminationState.Terminated
	if last == nil || last.ExitCode != 255 || last.Reason != "Unknown" || last.ContainerID != "runc://"+id {
		t.Errorf("lastState.terminated = %+v, want container %s with exit code 255, reason Unknown", last, id)
	}
}

// simulateReboot does to the stopped cluster c what a reboot of the host
// does to its node: every shim and container process dies at once (no
// exit is recorded), and the mounts (network, IPC and UTS namespaces,
// /dev/shm, root filesystems, volumes) and the pods' cgroups are gone.
// The data dir stays, as on disk. Only c's processes are touched: its
// shims run bundles under its data dir, its containers in its cgroup root.
func simulateReboot(t *testing.T, c *framework.Cluster) {
	t.Helper()
	for _, p := range shimPids(c.DataDir) {
		syscall.Kill(p, syscall.SIGKILL)
	}
	cgroups := c.NetNS.CgroupDirs()
	if len(cgroups) == 0 {
		t.Fatal("the cluster has no cgroup root")
	}
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		alive := 0
		for _, d := range cgroups {
			filepath.WalkDir(d, func(path string, e os.DirEntry, err error) error {
				if err != nil || !e.IsDir() {
					return nil
				}
				procs, _ := os.ReadFile(filepath.Join(path, "cgroup.procs"))
				for _, f := range strings.Fields(string(procs)) {
					if p, err := strconv.Atoi(f); err == nil && p != os.Getpid() {
						syscall.Kill(p, syscall.SIGKILL)
						alive++
					}
				}
				return nil
			})
		}
		return alive == 0 && len(shimPids(c.DataDir)) == 0, nil
	})
	if err != nil {
		t.Fatalf("the cluster's containers and shims do not die: %v", err)
	}
	// Mounts, deepest first.
	data, _ := os.ReadFile("/proc/self/mountinfo")
	var points []string
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) > 4 && strings.HasPrefix(f[4], filepath.Join(c.DataDir, "node")+"/") {
			points = append(points, f[4])
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(points)))
	for _, p := range points {
		if err := syscall.Unmount(p, syscall.MNT_DETACH); err != nil {
			t.Logf("unmount %s: %v", p, err)
		}
	}
	// The network namespaces' files (their mounts went above).
	netns, _ := filepath.Glob(filepath.Join(c.DataDir, "node", "network", "netns", "*"))
	if len(netns) == 0 {
		t.Fatal("no pod network namespace to remove")
	}
	for _, n := range netns {
		if err := os.Remove(n); err != nil {
			t.Fatal(err)
		}
	}
	// The cgroups below the cluster's root, deepest first.
	for _, d := range cgroups {
		var dirs []string
		filepath.WalkDir(d, func(path string, e os.DirEntry, err error) error {
			if err == nil && e.IsDir() && path != d {
				dirs = append(dirs, path)
			}
			return nil
		})
		sort.Sort(sort.Reverse(sort.StringSlice(dirs)))
		for _, dir := range dirs {
			if err := syscall.Rmdir(dir); err != nil {
				t.Fatalf("remove cgroup %s: %v", dir, err)
			}
		}
	}
	t.Logf("rebooted: %d mounts, %d network namespaces gone", len(points), len(netns))
}

// The README's promise: `up` after a reboot resumes the pods. After
// pocketkube, every shim and container of the node were SIGKILLed and the
// pods' namespaces, mounts and cgroups removed, `up` on the same data dir
// runs every pod again in a new sandbox, as kubelet does: the event
// SandboxChanged, the containers' restart counts one up with the lost
// attempt's exit code 255 as lastState, and a working network: the web
// pod answers its Service and its new IP.
func TestRebootResumesPods(t *testing.T) {
	ctx := context.Background()
	c := startNodeCluster(t)
	web, clusterIP := runTwin(t, c, true)
	names := []string{"twin-web", "twin-client"}
	before := map[string]int32{}
	for _, n := range names {
		p := framework.WaitPod(t, c.Client(t), "default", n, "Running", framework.Running)
		before[n] = p.Status.ContainerStatuses[0].RestartCount
	}

	c.Kill()
	simulateReboot(t, c)
	c = restartNode(t, c)

	var pods []*corev1.Pod
	for _, n := range names {
		pods = append(pods, framework.WaitPod(t, c.Client(t), "default", n, "running again", func(p *corev1.Pod) bool {
			return framework.Running(p) && p.Status.ContainerStatuses[0].RestartCount == before[n]+1
		}))
	}
	for _, p := range pods {
		cs := p.Status.ContainerStatuses[0]
		if last := cs.LastTerminationState.Terminated; last == nil || last.ExitCode != 255 || last.Reason != "Unknown" {
			t.Errorf("%s: lastState.terminated = %+v, want exit code 255, reason Unknown", p.Name, last)
		}
		events, err := framework.PollEvents(ctx, c.Client(t), "default", "involvedObject.name="+p.Name+",reason=SandboxChanged", 30*time.Second,
			func(evs []corev1.Event) bool { return len(evs) > 0 })
		if err != nil {
			t.Errorf("%s: no SandboxChanged event: %v", p.Name, err)
		} else if msg := events[0].Message; msg != "Pod sandbox changed, it will be killed and re-created." {
			t.Errorf("%s: SandboxChanged event says %q", p.Name, msg)
		}
	}
	newWeb := pods[0]
	t.Logf("web pod IP %s before, %s after", web.Status.PodIP, newWeb.Status.PodIP)
	checkTwinService(t, c, clusterIP)
	pollAnswers(t, "the web pod's new IP from a pod", func(ctx context.Context) ([]string, error) {
		out, err := c.Kubectl(ctx, framework.Newest(), "exec", "twin-client", "--", "sh", "-c",
			fmt.Sprintf("timeout 3 wget -qO- http://%s:8080/ || echo FAILED", newWeb.Status.PodIP))
		return strings.Fields(out), err
	}, only("twin-web"))
}
