//go:build e2e

package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/pocketkube/pocketkube/test/framework"
)

// podCgroupDir is the directory of a pod's cgroup in controller ctl's
// hierarchy (the unified one on cgroup v2), for a node whose
// --cgroup-root is root: kubelet's cgroupfs layout under ROOT/kubepods.
func podCgroupDir(t *testing.T, ctl, root string, pod *corev1.Pod) string {
	t.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs("/sys/fs/cgroup", &st); err != nil {
		t.Fatal(err)
	}
	base := "/sys/fs/cgroup"
	if st.Type != unix.CGROUP2_SUPER_MAGIC {
		base = filepath.Join(base, ctl)
	}
	dir := filepath.Join(base, root, "kubepods")
	switch pod.Status.QOSClass {
	case corev1.PodQOSBurstable:
		dir = filepath.Join(dir, "burstable")
	case corev1.PodQOSBestEffort:
		dir = filepath.Join(dir, "besteffort")
	}
	return filepath.Join(dir, "pod"+string(pod.UID))
}

func readTrimmed(path string) (string, error) {
	b, err := os.ReadFile(path)
	return strings.TrimSpace(string(b)), err
}

// Without --pod-max-pids a pod's cgroup allows 4096 processes and
// threads (pocketkube's default; kubelet's is no limit).
func TestPodPidsLimitDefault(t *testing.T) {
	t.Parallel()
	c, ns := busyboxNamespace(t, "pids-")
	pod := framework.RunPods(t, c, busyboxSleeper(ns, "sleeper"))["sleeper"]
	f := filepath.Join(podCgroupDir(t, "pids", "/", pod), "pids.max")
	if got, err := readTrimmed(f); err != nil || got != "4096" {
		t.Errorf("%s = %q, %v; want 4096", f, got, err)
	}
}

// A pod that forks sleepers until fork fails stops at --pod-max-pids:
// its cgroup's pids.current never goes past the limit, a fork fails in
// the pod, and the node and its other pods carry on: a pod
// already running answers exec, a new pod starts, the node stays Ready,
// and the fork bomb's pod is deleted like any other. The cluster is the
// test's own: the limit is a flag of up.
func TestPodPidsLimitForkBomb(t *testing.T) {
	const limit = 64
	c := startNodeCluster(t, "--pod-max-pids", strconv.Itoa(limit))
	client := c.Client(t)
	c.ImportBusybox(t, "busybox")
	framework.WaitServiceAccount(t, client, "default")
	neighbour := framework.RunPods(t, client, busyboxSleeper("default", "neighbour"))["neighbour"]

	// The inner sh forks until a fork fails, then exits (busybox sh: "can't
	// fork"); its sleepers stay, and the outer one execs, which needs no
	// new process, so the pod stays at its limit. It stops at 1000
	// sleepers, so that a broken limit does not take the host's PIDs.
	bomb := busyboxSleeper("default", "forkbomb")
	bomb.Spec.Containers[0].Command = []string{"sh", "-c",
		`sh -c 'i=0; while [ $i -lt 1000 ]; do sleep 3600 & i=$((i+1)); done'; echo forks refused; exec sleep 3600`}
	created, err := client.CoreV1().Pods("default").Create(t.Context(), bomb, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	created.Status.QOSClass = corev1.PodQOSBestEffort
	dir := podCgroupDir(t, "pids", c.NetNS.CgroupRoot, created)

	// Sample pids.current until the test has seen the pod at its limit
	// and the rest of the node working.
	var (
		mu      sync.Mutex
		highest int
		samples int
	)
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if s, err := readTrimmed(filepath.Join(dir, "pids.current")); err == nil {
				n, _ := strconv.Atoi(s)
				mu.Lock()
				highest, samples = max(highest, n), samples+1
				mu.Unlock()
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	logs, _ := framework.WaitPodLogs(t, client, "default", "forkbomb", framework.PodTimeout, func(l string) bool {
		return strings.Contains(l, "forks refused")
	})
	if !strings.Contains(logs, "can't fork") {
		t.Errorf("forkbomb's log = %q, want busybox's \"can't fork\"", logs)
	}
	if got, err := readTrimmed(filepath.Join(dir, "pids.max")); err != nil || got != strconv.Itoa(limit) {
		t.Errorf("pids.max = %q, %v; want %d", got, err, limit)
	}

	if out, err := c.Kubectl(t.Context(), framework.Newest(), "exec", "neighbour", "--", "echo", "alive"); err != nil || out != "alive\n" {
		t.Errorf("exec in the neighbour pod: %q, %v", out, err)
	}
	framework.RunPods(t, client, busyboxSleeper("default", "newcomer"))
	node, err := client.CoreV1().Nodes().Get(t.Context(), neighbour.Spec.NodeName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, cond := range node.Status.Conditions {
		if cond.Type == corev1.NodeReady && cond.Status != corev1.ConditionTrue {
			t.Errorf("node not Ready with a pod at its PID limit: %s %s", cond.Reason, cond.Message)
		}
	}
	close(stop)
	<-sampled
	mu.Lock()
	t.Logf("pids.current of the fork bomb's pod: highest %d in %d samples, limit %d", highest, samples, limit)
	if highest > limit || samples == 0 {
		t.Errorf("pids.current reached %d (%d samples), limit %d", highest, samples, limit)
	}
	mu.Unlock()

	if err := client.CoreV1().Pods("default").Delete(t.Context(), "forkbomb", metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil {
		t.Fatal(err)
	}
	framework.WaitGone(t, client, "default", "forkbomb")
	err = wait.PollUntilContextTimeout(t.Context(), 100*time.Millisecond, framework.PodTimeout, true, func(context.Context) (bool, error) {
		_, err := os.Stat(dir)
		return os.IsNotExist(err), nil
	})
	if err != nil {
		t.Errorf("the fork bomb's pod cgroup %s is left after its deletion: %v", dir, err)
	}
}

// A pod whose emptyDir on disk grows past its sizeLimit is evicted as
// kubelet's eviction manager evicts it (within its 10 s period): phase
// Failed, reason Evicted, kubelet's message, a Warning event Evicted,
// its containers stopped. A pod under its limit stays.
func TestEmptyDirSizeLimitEviction(t *testing.T) {
	t.Parallel()
	c, ns := busyboxNamespace(t, "emptydir-limit-")
	writer := func(name, mib string) *corev1.Pod {
		p := busyboxSleeper(ns, name)
		limit := resource.MustParse("1Mi")
		p.Spec.Volumes = []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{SizeLimit: &limit}}}}
		p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "data", MountPath: "/data"}}
		p.Spec.Containers[0].Command = []string{"sh", "-c", "dd if=/dev/zero of=/data/f bs=64k count=" + mib + " && echo written && exec sleep 3600"}
		return p
	}
	// 4 MiB; the pod may be gone before it could be seen running.
	if _, err := c.CoreV1().Pods(ns).Create(t.Context(), writer("big", "64"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	framework.RunPods(t, c, writer("small", "8")) // 512 KiB

	const want = `Usage of EmptyDir volume "data" exceeds the limit "1Mi". `
	pod := framework.WaitPod(t, c, ns, "big", "Failed", framework.PhaseIs(corev1.PodFailed))
	if pod.Status.Reason != "Evicted" || pod.Status.Message != want {
		t.Errorf("big's status: reason %q, message %q; want Evicted, %q", pod.Status.Reason, pod.Status.Message, want)
	}
	for _, cs := range pod.Status.ContainerStatuses {
		if cs.State.Terminated == nil {
			t.Errorf("container %s of the evicted pod: %+v, want terminated", cs.Name, cs.State)
		}
	}
	events, err := framework.PollEvents(t.Context(), c, ns, "involvedObject.name=big,reason=Evicted", framework.PodTimeout, func(ev []corev1.Event) bool { return len(ev) > 0 })
	if err != nil {
		t.Errorf("no Evicted event for big: %v", err)
	}
	for _, ev := range events {
		if ev.Type != corev1.EventTypeWarning || ev.Message != want || ev.Source.Component != "kubelet" {
			t.Errorf("event %s: type %s, message %q, source %s; want Warning, %q, kubelet", ev.Reason, ev.Type, ev.Message, ev.Source.Component, want)
		}
	}
	small, err := c.CoreV1().Pods(ns).Get(t.Context(), "small", metav1.GetOptions{})
	if err != nil || !framework.Running(small) {
		t.Errorf("small (under its limit) is not running: %v %s", err, framework.PodStatus(small))
	}
}

// A medium: Memory emptyDir is a tmpfs of its sizeLimit, or of the pod's
// memory limit when that is smaller (kubelet's SizeMemoryBackedVolumes):
// df in the container shows the size, and a write past it fails with
// ENOSPC.
func TestMemoryEmptyDirSize(t *testing.T) {
	t.Parallel()
	c, ns := busyboxNamespace(t, "emptydir-memory-")
	filler := func(name, sizeLimit, memLimit string, mib int) *corev1.Pod {
		p := busyboxSleeper(ns, name)
		src := &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory}
		if sizeLimit != "" {
			q := resource.MustParse(sizeLimit)
			src.SizeLimit = &q
		}
		if memLimit != "" {
			p.Spec.Containers[0].Resources.Limits = corev1.ResourceList{corev1.ResourceMemory: resource.MustParse(memLimit)}
		}
		p.Spec.Volumes = []corev1.Volume{{Name: "cache", VolumeSource: corev1.VolumeSource{EmptyDir: src}}}
		p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "cache", MountPath: "/cache"}}
		p.Spec.Containers[0].Command = []string{"sh", "-c",
			"df -k /cache; dd if=/dev/zero of=/cache/f bs=1M count=" + strconv.Itoa(mib) + "; echo dd=$?; rm /cache/f; exec sleep 3600"}
		return p
	}
	// The pod with a memory limit writes no more than its limit: its
	// tmpfs pages count in its memory cgroup.
	framework.RunPods(t, c, filler("sizelimit", "16Mi", "", 32), filler("podlimit", "", "48Mi", 0))
	for name, kib := range map[string]string{"sizelimit": "16384", "podlimit": "49152"} {
		logs, _ := framework.WaitPodLogs(t, c, ns, name, framework.PodTimeout, func(l string) bool { return strings.Contains(l, "dd=") })
		var df string
		for _, line := range strings.Split(logs, "\n") {
			if strings.HasSuffix(line, "/cache") {
				df = line
			}
		}
		if f := strings.Fields(df); len(f) < 2 || f[1] != kib {
			t.Errorf("%s: df of /cache = %q, want %s 1K-blocks", name, df, kib)
		}
		if name == "sizelimit" && (!strings.Contains(logs, "No space left on device") || strings.Contains(logs, "dd=0")) {
			t.Errorf("%s: writing 32 MiB did not fail with ENOSPC:\n%s", name, logs)
		}
	}
}
