//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pocketkube/pocketkube/test/framework"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
)

// subPathPod is a busybox pod (restartPolicy Never) whose container main
// runs script with volumes and volumeMounts.
func subPathPod(ns, name, script string, volumes []corev1.Volume, mounts []corev1.VolumeMount) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: corev1.PodSpec{
			TerminationGracePeriodSeconds: new(int64),
			RestartPolicy:                 corev1.RestartPolicyNever,
			Containers: []corev1.Container{{
				Name: "main", Image: e2eBusybox, ImagePullPolicy: corev1.PullIfNotPresent,
				Command: []string{"sh", "-c", script}, VolumeMounts: mounts,
			}},
			Volumes: volumes,
		},
	}
}

func emptyDirVolume(name string) corev1.Volume {
	return corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}
}

// subPathMounts lists the mount points under the pod's volume-subpaths
// directory (kubelet's <pod>/volume-subpaths/<volume>/<container>/<index>)
// in the test's mount namespace, the host's.
func subPathMounts(uid string) []string {
	infos, _ := os.ReadFile("/proc/self/mountinfo")
	var out []string
	for _, line := range strings.Split(string(infos), "\n") {
		if f := strings.Fields(line); len(f) > 4 && strings.Contains(f[4], "/pods/"+uid+"/volume-subpaths/") {
			out = append(out, f[4])
		}
	}
	return out
}

// CVE-2017-1002101 / CVE-2021-25741 against the real node: pod "swapper"
// replaces the directory "a" of a hostPath volume with a symlink to a
// host directory holding MARKER, again and again, while other pods start
// init containers that mount subPath "a" and fail if they see MARKER.
// Every start is a fresh subPath preparation racing the swap; a start
// the swap made impossible waits as CreateContainerConfigError and is
// retried. No container may ever see the host's directory.
// With the subPath resolved to a string and mounted by runc later (before
// kubelet's safe bind mount), pods failed with ESCAPED.
func TestSubPathSymlinkSwapNeverEscapes(t *testing.T) {
	t.Parallel()
	const pods, initContainers = 4, 8
	c := shared.Client(t)
	ns := testNamespace(t, c, "subpath-swap")
	host := t.TempDir()
	vol, outside := filepath.Join(host, "vol"), filepath.Join(host, "outside")
	for _, d := range []string{vol, outside} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(outside, "MARKER"), []byte("host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	hostVolume := corev1.Volume{Name: "vol", VolumeSource: corev1.VolumeSource{
		HostPath: &corev1.HostPathVolumeSource{Path: vol, Type: new(corev1.HostPathDirectory)},
	}}

	// The symlink's target is a host path: it means nothing in the
	// container, only to a mount made on the host through it. "a" is the
	// directory most of the time (the sleep), so that most starts get
	// their mount and race the swap between preparation and runc; the
	// directory is renamed, never deleted, so a mount of it stays valid.
	swap := fmt.Sprintf(`cd /vol && mkdir a && ln -s %s l && while :; do mv -T a x; mv -T l a; mv -T a l; mv -T x a; sleep 0.02; done`, outside)
	swapper := subPathPod(ns, "swapper", swap, []corev1.Volume{hostVolume}, []corev1.VolumeMount{{Name: "vol", MountPath: "/vol"}})
	framework.RunPods(t, c, swapper)

	check := `if [ -e /m/MARKER ]; then echo ESCAPED; ls -l /m; exit 1; fi`
	var names []string
	for p := range pods {
		pod := subPathPod(ns, fmt.Sprintf("victim-%d", p), "true", []corev1.Volume{hostVolume}, nil)
		for i := range initContainers {
			pod.Spec.InitContainers = append(pod.Spec.InitContainers, corev1.Container{
				Name: fmt.Sprintf("start-%d", i), Image: e2eBusybox, ImagePullPolicy: corev1.PullIfNotPresent,
				Command:      []string{"sh", "-c", check},
				VolumeMounts: []corev1.VolumeMount{{Name: "vol", MountPath: "/m", SubPath: "a"}},
			})
		}
		framework.CreatePod(t, c, pod)
		names = append(names, pod.Name)
	}
	started := 0
	deadline, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	for _, name := range names {
		pod, err := framework.WaitPodIn(deadline, c, ns, name, 4*time.Minute, func(p *corev1.Pod) (bool, error) {
			return p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed, nil
		})
		if pod != nil {
			for _, cs := range pod.Status.InitContainerStatuses {
				if term := cs.State.Terminated; term != nil {
					started++
					if term.ExitCode != 0 {
						logs, _ := framework.PodLogs(t.Context(), c, ns, name, cs.Name)
						t.Errorf("pod %s container %s saw the host's directory through the subPath: %q", name, cs.Name, logs)
					}
				}
			}
		}
		if err != nil {
			t.Errorf("pod %s: %v", name, err)
		}
	}
	refused := 0
	if events, err := c.CoreV1().Events(ns).List(t.Context(), metav1.ListOptions{}); err == nil {
		for _, e := range events.Items {
			if strings.Contains(e.Message, "failed to prepare subPath") || strings.Contains(e.Message, "failed to create subPath") {
				refused += int(max(e.Count, 1))
			}
		}
	}
	t.Logf("%d container starts through the swapped subPath, %d refused and retried", started, refused)
}

// A subPath that is a symlink out of the volume is refused as kubelet
// refuses it: the container waits with CreateContainerConfigError and
// kubelet's message, which does not describe the host's filesystem.
func TestSubPathSymlinkOutsideRefused(t *testing.T) {
	t.Parallel()
	c := shared.Client(t)
	ns := testNamespace(t, c, "subpath-escape")
	pod := subPathPod(ns, "escape", "ls /host", []corev1.Volume{emptyDirVolume("vol")},
		[]corev1.VolumeMount{{Name: "vol", MountPath: "/host", SubPath: "esc"}})
	pod.Spec.InitContainers = []corev1.Container{{
		Name: "link", Image: e2eBusybox, ImagePullPolicy: corev1.PullIfNotPresent,
		Command:      []string{"ln", "-s", "/", "/vol/esc"},
		VolumeMounts: []corev1.VolumeMount{{Name: "vol", MountPath: "/vol"}},
	}}
	framework.CreatePod(t, c, pod)
	const want = `failed to prepare subPath for volumeMount "vol" of container "main"`
	got, err := framework.WaitPodIn(t.Context(), c, ns, pod.Name, framework.PodTimeout, func(p *corev1.Pod) (bool, error) {
		for _, cs := range p.Status.ContainerStatuses {
			if w := cs.State.Waiting; w != nil && w.Reason == "CreateContainerConfigError" {
				return true, nil
			}
			if cs.State.Running != nil || cs.State.Terminated != nil {
				return false, fmt.Errorf("the container ran: %s", framework.PodStatus(p))
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if w := got.Status.ContainerStatuses[0].State.Waiting; w.Message != want {
		t.Errorf("waiting message %q, want %q", w.Message, want)
	}
	if got.Status.Phase != corev1.PodPending {
		t.Errorf("phase %s, want Pending", got.Status.Phase)
	}
	waitEvent(t, c, ns, pod.Name, "Failed", 30*time.Second, func(e *corev1.Event) bool { return e.Message == "Error: "+want })
	if m := subPathMounts(string(got.UID)); len(m) != 0 {
		t.Errorf("refused subPath left mounts: %v", m)
	}
}

// subPaths of a configMap (a file, through ..data) and of an emptyDir (a
// directory, also read-only) work through the bind mounts under
// volume-subpaths, which go when the pod is deleted.
func TestSubPathConfigMapAndEmptyDir(t *testing.T) {
	t.Parallel()
	c := shared.Client(t)
	ns := testNamespace(t, c, "subpath-plain")
	if _, err := c.CoreV1().ConfigMaps(ns).Create(t.Context(), &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "cfg"}, Data: map[string]string{"key": "from-configmap"},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	volumes := []corev1.Volume{emptyDirVolume("data"), {Name: "cfg", VolumeSource: corev1.VolumeSource{
		ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}},
	}}}
	// "dir" is made by the init container, "dir/new" by the agent (safely,
	// as kubelet's SafeMakeDir).
	script := `cat /etc/key; cat /work/f; test -d /new && echo NEWDIR; if touch /ro/x; then echo WRITABLE; else echo READONLY; fi; touch /work/mine && ls /all/dir/mine && echo SHARED; sleep 3600`
	pod := subPathPod(ns, "plain", script, volumes, []corev1.VolumeMount{
		{Name: "cfg", MountPath: "/etc/key", SubPath: "key"},
		{Name: "data", MountPath: "/work", SubPath: "dir"},
		{Name: "data", MountPath: "/ro", SubPath: "dir", ReadOnly: true},
		{Name: "data", MountPath: "/new", SubPath: "dir/new"},
		{Name: "data", MountPath: "/all"},
	})
	pod.Spec.InitContainers = []corev1.Container{{
		Name: "fill", Image: e2eBusybox, ImagePullPolicy: corev1.PullIfNotPresent,
		Command:      []string{"sh", "-c", "mkdir /data/dir && echo from-emptydir > /data/dir/f"},
		VolumeMounts: []corev1.VolumeMount{{Name: "data", MountPath: "/data"}},
	}}
	framework.CreatePod(t, c, pod)
	running := framework.WaitPod(t, c, ns, pod.Name, "Running", framework.Running)
	uid := string(running.UID)
	var logs string
	if err := wait.PollUntilContextTimeout(t.Context(), 200*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		logs, _ = framework.PodLogs(ctx, c, ns, pod.Name, "main")
		return strings.Contains(logs, "SHARED") || strings.Contains(logs, "WRITABLE"), nil
	}); err != nil {
		t.Fatalf("logs of main: %q", logs)
	}
	for _, want := range []string{"from-configmap", "from-emptydir\n", "NEWDIR\n", "READONLY\n", "SHARED\n"} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs of main %q lack %q", logs, want)
		}
	}
	if !strings.Contains(logs, "Read-only file system") {
		t.Errorf("the read-only subPath did not fail a write as read-only: %q", logs)
	}
	mounts := subPathMounts(uid)
	if len(mounts) != 4 { // key, dir, dir (read-only), dir/new
		t.Errorf("volume-subpaths mounts of the pod: %q, want 4", mounts)
	}
	if err := c.CoreV1().Pods(ns).Delete(t.Context(), pod.Name, metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil {
		t.Fatal(err)
	}
	if err := wait.PollUntilContextTimeout(t.Context(), 200*time.Millisecond, framework.PodTimeout, true, func(context.Context) (bool, error) {
		return len(subPathMounts(uid)) == 0, nil
	}); err != nil {
		t.Errorf("volume-subpaths mounts left after the pod was deleted: %q", subPathMounts(uid))
	}
}

// Ctrl-C stops the node's pods and takes their subPath mounts with them
// (stopCleanly checks for every mount of the pod). The cluster is the
// test's own.
func TestSubPathMountsGoWithCtrlC(t *testing.T) {
	c := startNodeCluster(t)
	client := c.Client(t)
	c.ImportBusybox(t, e2eBusybox)
	framework.WaitServiceAccount(t, client, "default")
	pod := subPathPod("default", "subpath", "sleep 3600", []corev1.Volume{emptyDirVolume("data")},
		[]corev1.VolumeMount{{Name: "data", MountPath: "/work", SubPath: "dir"}})
	framework.RunPods(t, client, pod)
	running, err := client.CoreV1().Pods("default").Get(t.Context(), "subpath", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if m := subPathMounts(string(running.UID)); len(m) != 1 {
		t.Errorf("volume-subpaths mounts of the running pod: %q, want 1", m)
	}
	stopCleanly(t, c)
}
