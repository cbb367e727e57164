//go:build e2e

package e2e

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/pocketkube/pocketkube/test/framework"
)

// shims counts the runtime shims running for containers of the cluster
// in dataDir (their bundles are under it).
func shims(dataDir string) int {
	out, _ := exec.Command("pgrep", "-f", "shim.*--bundle "+dataDir).Output()
	return len(strings.Fields(string(out)))
}

// stubbornPod ignores SIGTERM, so only SIGKILL ends it, and has a long
// grace period, so that Ctrl-C must cap it. It is ready while
// /tmp/unready does not exist: touching that file makes the agent write
// a new status, which only an agent that syncs the pod can do.
var stubbornPod = podYAML("survivor", 30, `  containers:
  - name: main
    image: busybox
    command: ["sh", "-c", "trap '' TERM; echo started; while true; do sleep 1; done"]
    readinessProbe:
      exec:
        command: ["sh", "-c", "! test -e /tmp/unready"]
      periodSeconds: 1
`)

// Ctrl-C stops the node's pods and leaves nothing behind; `up` again runs
// them again, with the restart count kubelet reports after a node restart;
// after kill -9 the next `up` adopts the containers that kept running.
// The cluster is the test's own, in a network namespace of its own: the
// shared cluster is never stopped.
func TestNodeRestartAndCrash(t *testing.T) {
	ctx := context.Background()
	c := startNodeCluster(t)
	c.ApplyPod(t, "survivor", stubbornPod)
	pod := framework.WaitPod(t, c.Client(t), "default", "survivor", "Running", framework.Running)
	uid := string(pod.UID)
	before := pod.Status.ContainerStatuses[0].RestartCount

	// The pod ignores SIGTERM and asks for 30 s: Ctrl-C gives it the 3 s
	// the node's shutdown grace period allows, then SIGKILLs it.
	took := stopCleanly(t, c)
	if took < 3*time.Second {
		t.Errorf("Ctrl-C took %s with a pod that ignores SIGTERM: it did not wait the 3 s shutdown grace period", took)
	}
	for _, l := range checkNoPodLeftovers(c.DataDir, uid) {
		if !strings.Contains(l, "/logs/") { // logs stay: they carry the restart count
			t.Error(l)
		}
	}

	c = restartNode(t, c)
	pod = framework.WaitPod(t, c.Client(t), "default", "survivor", "Running again", func(p *corev1.Pod) bool {
		return framework.Running(p) && p.Status.ContainerStatuses[0].RestartCount == before+1
	})
	if string(pod.UID) != uid {
		t.Fatalf("pod UID changed: %s", pod.UID)
	}
	id := pod.Status.ContainerStatuses[0].ContainerID

	// kill -9: the container keeps running under its shim, and the next
	// up adopts it: same container, no restart.
	c.Kill()
	if n := shims(c.DataDir); n == 0 {
		t.Errorf("no shim survived kill -9")
	}
	c = restartNode(t, c)
	// The API still holds the status the killed agent wrote. Make the pod
	// unready: the status that says so is written by the new agent, after
	// it synced the pod and probed its container.
	// The exec works once the new agent knows the pod again.
	if _, err := c.PollKubectl(ctx, framework.Newest(), framework.PodTimeout, func(_ string, err error) bool { return err == nil },
		"exec", "survivor", "--", "touch", "/tmp/unready"); err != nil {
		t.Fatalf("exec after kill -9: %v", err)
	}
	pod = framework.WaitPod(t, c.Client(t), "default", "survivor", "unready after kill -9", func(p *corev1.Pod) bool {
		return len(p.Status.ContainerStatuses) == 1 && !p.Status.ContainerStatuses[0].Ready && p.Status.Phase == corev1.PodRunning
	})
	cs := pod.Status.ContainerStatuses[0]
	if cs.ContainerID != id || cs.RestartCount != before+1 || cs.State.Running == nil {
		t.Errorf("after kill -9: container %s restarts %d running %v, want adopted %s with %d", cs.ContainerID, cs.RestartCount, cs.State.Running, id, before+1)
	}
	out, err := c.Kubectl(ctx, framework.Newest(), "exec", "survivor", "--", "cat", "/etc/hostname")
	if err != nil || out != "survivor\n" {
		t.Errorf("exec after adoption: %q, %v", out, err)
	}
	c.Client(t).CoreV1().Pods("default").Delete(ctx, "survivor", metav1.DeleteOptions{GracePeriodSeconds: new(int64)})
}

// runTwin runs, in cluster c, the web pod "twin-web" behind a ClusterIP
// Service and a client pod "twin-client", checks that the Service answers
// the client, and returns the web pod and the Service's ClusterIP. With
// keep, they stay when the test ends (their cluster goes with it).
func runTwin(t *testing.T, c *framework.Cluster, keep bool) (*corev1.Pod, string) {
	t.Helper()
	ctx := context.Background()
	c.ImportBusybox(t, "busybox")
	framework.WaitServiceAccount(t, c.Client(t), "default")
	manifest := fmt.Sprintf(webPod, "twin-web", "twin-web") + "---\n" + clientPod("twin-client") +
		"---\n" + serviceManifest("twin-web", "twin-web", "ClusterIP")
	if _, err := c.KubectlStdin(ctx, framework.Newest(), manifest, "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	if !keep {
		t.Cleanup(func() {
			if _, err := c.KubectlStdin(ctx, framework.Newest(), manifest, "delete", "--grace-period=0", "--force", "-f", "-"); err != nil {
				t.Errorf("delete the twin pods: %v", err)
			}
		})
	}
	svc, err := c.Client(t).CoreV1().Services("default").Get(ctx, "twin-web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	waitRunning(t, c.Client(t), "twin-client")
	web := framework.WaitPod(t, c.Client(t), "default", "twin-web", "Running and ready", framework.Running)
	checkTwinService(t, c, svc.Spec.ClusterIP)
	return web, svc.Spec.ClusterIP
}

// checkTwinService checks that the twin-web Service at ip answers
// twin-client in cluster c.
func checkTwinService(t *testing.T, c *framework.Cluster, ip string) {
	t.Helper()
	pollAnswers(t, "ClusterIP from a pod of "+c.Server, func(ctx context.Context) ([]string, error) {
		out, err := c.Kubectl(ctx, framework.Newest(), "exec", "twin-client", "--", "sh", "-c", "timeout 3 wget -qO- http://"+ip+"/ || echo FAILED")
		return strings.Fields(out), err
	}, only("twin-web"))
}

// podCgroups lists the cgroup directories of the pod uid, in every
// hierarchy.
func podCgroups(uid string) []string {
	var out []string
	filepath.WalkDir("/sys/fs/cgroup", func(path string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() && strings.Contains(d.Name(), uid) {
			out = append(out, path)
			return filepath.SkipDir
		}
		return nil
	})
	return out
}

// A second cluster with a node agent, in a network namespace and a cgroup
// root of its own, runs beside the shared cluster: each runs its pods and
// Services, and stopping the second leaves the shared one working and
// nothing of the second on the host.
func TestTwoNodeClustersAtOnce(t *testing.T) {
	sharedWeb, sharedIP := runTwin(t, shared, false)
	sharedID := sharedWeb.Status.ContainerStatuses[0].ContainerID

	second := startNodeCluster(t)
	secondWeb, _ := runTwin(t, second, true)
	for _, p := range []struct {
		pod  *corev1.Pod
		root string
	}{{sharedWeb, "/kubepods/"}, {secondWeb, second.NetNS.CgroupRoot + "/kubepods/"}} {
		dirs := podCgroups(string(p.pod.UID))
		if len(dirs) == 0 {
			t.Errorf("no cgroup of pod %s of %s", p.pod.UID, p.pod.Spec.NodeName)
		}
		for _, d := range dirs {
			if rel := strings.TrimPrefix(d, "/sys/fs/cgroup"); !strings.Contains(rel, p.root) || (p.root == "/kubepods/" && strings.Contains(rel, second.NetNS.CgroupRoot)) {
				t.Errorf("cgroup %s of pod %s is not under %s", d, p.pod.UID, p.root)
			}
		}
	}
	// The second node's start (its kube-proxy deletes a leftover table
	// of its own name, its bridge plugin sets up pk0) broke nothing of
	// the shared cluster's.
	if len(kubeProxyTables(t, nil)) == 0 {
		out, _ := exec.Command("nft", "list", "tables").CombinedOutput()
		t.Errorf("the shared cluster's kube-proxy table is gone while the second runs; the host's tables:\n%s", out)
	}
	checkTwinService(t, shared, sharedIP)

	uids := podUIDs(t, second)
	stopCleanly(t, second)
	if got := kubeProxyTables(t, second.NetNS); len(got) != 0 {
		t.Errorf("tables left in %s after Ctrl-C: %q", second.NetNS.Name, got)
	}
	if pids := second.NetNS.Pids(); len(pids) != 0 {
		t.Errorf("processes left in %s after Ctrl-C: %v", second.NetNS.Name, pids)
	}
	for _, uid := range uids {
		if dirs := podCgroups(uid); len(dirs) != 0 {
			t.Errorf("cgroups of pod %s left after Ctrl-C: %v", uid, dirs)
		}
	}
	// What the framework made (namespace, veth pair, cgroup root) goes
	// without a process to kill or a mount to undo.
	if err := second.Cleanup(); err != nil {
		t.Errorf("after Ctrl-C: %v", err)
	}
	if _, err := os.Stat(second.NetNS.Path()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("network namespace %s left: %v", second.NetNS.Name, err)
	}
	if _, err := net.InterfaceByName(second.NetNS.HostLink); err == nil {
		t.Errorf("link %s left", second.NetNS.HostLink)
	}

	// The shared cluster works as before: same container, its table, its
	// bridge, its Service.
	web := framework.WaitPod(t, shared.Client(t), "default", "twin-web", "Running and ready", framework.Running)
	if id := web.Status.ContainerStatuses[0].ContainerID; id != sharedID {
		t.Errorf("shared cluster's container %s became %s", sharedID, id)
	}
	if len(kubeProxyTables(t, nil)) == 0 {
		t.Error("the shared cluster's kube-proxy table is gone after the second stopped")
	}
	if _, err := net.InterfaceByName("pk0"); err != nil {
		t.Errorf("the shared cluster's bridge: %v", err)
	}
	if len(podCgroups(string(web.UID))) == 0 {
		t.Error("the shared cluster's pod lost its cgroups")
	}
	checkTwinService(t, shared, sharedIP)
}

// podUIDs lists the UIDs of the pods cluster c holds.
func podUIDs(t *testing.T, c *framework.Cluster) []string {
	t.Helper()
	pods, err := c.Client(t).CoreV1().Pods("").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var uids []string
	for _, p := range pods.Items {
		uids = append(uids, string(p.UID))
	}
	return uids
}

// outageImage is busybox under a tag that is not "latest": the pull
// policy is IfNotPresent, so a restart during the outage needs no
// registry, as with any pinned image.
const outageImage = "pocketkube.test/busybox:outage"

// outageScript runs until the file quit appears in its hostPath directory
// /trigger, then removes it and exits 3; each start appends a line to
// /trigger/starts. The host sees both without the API.
const outageScript = `echo started >> /trigger/starts
echo "run $(wc -l < /trigger/starts)"
while [ ! -e /trigger/quit ]; do sleep 0.1; done
rm /trigger/quit
echo quitting
exit 3`

// The API server unavailable to the node agent while a container exits:
// the agent restarts it as restartPolicy says without the API, and once
// the API answers again the pod's status there says what happened
// (restartCount, the exit in lastState, the new container), nothing lost.
//
// The API server runs in the same process as the agent, so the test cuts
// the agent off where it talks to it: in the cluster's own network
// namespace, an nftables rule resets every connection from there to the
// API server's address and port (the agent's, and the other in-process
// clients': controller manager, scheduler, Service proxy, DNS). The
// test's own requests come from the host, through the namespace's input
// path, and still get answers: they show the pod's status and the node's
// Lease standing still in the API while the container restarts.
func TestAPIOutageAgentCatchesUp(t *testing.T) {
	const outage = 20 * time.Second
	c := startNodeCluster(t)
	ctx := t.Context()
	cs := c.Client(t)

	importTaggedBusybox(t, c, outageImage)
	ns := framework.NewNamespace(t, cs, "outage-")
	trigger := t.TempDir()
	pod := dnsPod(ns, "outlast", outageImage, func(s *corev1.PodSpec) {
		s.Containers[0].Command = []string{"sh", "-c", outageScript}
		s.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "trigger", MountPath: "/trigger"}}
		s.Volumes = []corev1.Volume{{Name: "trigger", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: trigger}}}}
	})
	pod = framework.RunPods(t, cs, pod)[pod.Name]
	before := pod.Status.ContainerStatuses[0]
	if before.RestartCount != 0 {
		t.Fatalf("restartCount %d before the outage", before.RestartCount)
	}
	leaseBefore, err := cs.CoordinationV1().Leases("kube-node-lease").Get(ctx, pod.Spec.NodeName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}

	restore := cutAPI(t, c)
	cut := time.Now()
	if err := os.WriteFile(filepath.Join(trigger, "quit"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	// The container exits and the agent starts it again: the second
	// start's line appears, with no API to read or write.
	starts := func() int {
		b, _ := os.ReadFile(filepath.Join(trigger, "starts"))
		return strings.Count(string(b), "started\n")
	}
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, outage-5*time.Second, true, func(context.Context) (bool, error) {
		return starts() == 2, nil
	})
	if err != nil {
		t.Fatalf("the container was not restarted during the outage: %d starts", starts())
	}
	t.Logf("restarted %s after the cut", time.Since(cut).Round(time.Millisecond))
	// Until the outage ends the API holds the status from before: the
	// agent is cut off (else this test proves nothing), and the node's
	// Lease is not renewed.
	for time.Since(cut) < outage {
		p, err := cs.CoreV1().Pods(ns).Get(ctx, pod.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("the API server, from the host, during the outage: %v", err)
		}
		if s := p.Status.ContainerStatuses[0]; s.RestartCount != 0 || s.ContainerID != before.ContainerID {
			t.Fatalf("status written during the outage (restarts %d, container %s): the agent was not cut off", s.RestartCount, s.ContainerID)
		}
		time.Sleep(time.Second)
	}
	lease, err := cs.CoordinationV1().Leases("kube-node-lease").Get(ctx, pod.Spec.NodeName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !lease.Spec.RenewTime.Equal(leaseBefore.Spec.RenewTime) && lease.Spec.RenewTime.After(cut) {
		t.Fatalf("lease renewed at %s during the outage (cut at %s): the agent was not cut off", lease.Spec.RenewTime, cut)
	}
	if n := starts(); n != 2 {
		t.Errorf("%d starts during the outage, want 2: the restarted container did not keep running", n)
	}

	restore()
	back := time.Now()
	// kubelet's status manager writes pending statuses every 10 s; the
	// agent gets the same bound, with time for its connections to come
	// back.
	p, err := framework.WaitPodIn(ctx, cs, ns, pod.Name, 30*time.Second, func(p *corev1.Pod) (bool, error) {
		s := p.Status.ContainerStatuses[0]
		return s.RestartCount == 1 && s.State.Running != nil && framework.Running(p), nil
	})
	if err != nil {
		t.Fatalf("status did not catch up within 30 s of the API's return: %v", err)
	}
	t.Logf("status caught up %s after the API came back", time.Since(back).Round(time.Millisecond))
	s := p.Status.ContainerStatuses[0]
	if s.ContainerID == before.ContainerID {
		t.Errorf("containerID %s unchanged after the restart", s.ContainerID)
	}
	if term := s.LastTerminationState.Terminated; term == nil || term.ExitCode != 3 || term.Reason != "Error" || term.ContainerID != before.ContainerID {
		t.Errorf("lastState.terminated %+v, want exit 3, reason Error, container %s", term, before.ContainerID)
	}
	if prev, err := c.Kubectl(ctx, framework.Newest(), "-n", ns, "logs", "--previous", pod.Name); err != nil || prev != "run 1\nquitting\n" {
		t.Errorf("logs --previous: %q, %v", prev, err)
	}
	if cur, err := c.Kubectl(ctx, framework.Newest(), "-n", ns, "logs", pod.Name); err != nil || cur != "run 2\n" {
		t.Errorf("logs: %q, %v", cur, err)
	}
	err = wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		l, err := cs.CoordinationV1().Leases("kube-node-lease").Get(ctx, pod.Spec.NodeName, metav1.GetOptions{})
		return err == nil && l.Spec.RenewTime.After(back), nil
	})
	if err != nil {
		t.Errorf("node lease not renewed after the outage: %v", err)
	}
	if n := starts(); n != 2 {
		t.Errorf("%d starts, want 2", n)
	}
	stopCleanly(t, c)
}

// importTaggedBusybox imports busybox into c's image store as name.
func importTaggedBusybox(t *testing.T, c *framework.Cluster, name string) {
	t.Helper()
	tarPath := filepath.Join(t.TempDir(), "busybox.tar")
	if err := framework.BusyboxTar(tarPath, nil); err != nil {
		t.Fatal(err)
	}
	if err := c.ImportImage(t.Context(), name, tarPath); err != nil {
		t.Fatalf("import %s: %v", name, err)
	}
}

// cutAPI makes the API server of c unreachable from inside c's network
// namespace: an nftables table there resets every connection to the API
// server's address and port. It returns a function that removes it,
// which fails t unless the rule reset anything (nobody was cut off).
func cutAPI(t *testing.T, c *framework.Cluster) (restore func()) {
	t.Helper()
	const table = "pk-e2e-outage"
	for _, args := range [][]string{
		{"add", "table", "inet", table},
		{"add", "chain", "inet", table, "out", "{ type filter hook output priority 0; policy accept; }"},
		{"add", "rule", "inet", table, "out", "ip", "daddr", c.Host, "tcp", "dport", strconv.Itoa(c.Port), "counter", "reject", "with", "tcp", "reset"},
	} {
		if _, err := c.NetNS.Exec(append([]string{"nft"}, args...)...); err != nil {
			t.Fatal(err)
		}
	}
	removed := false
	t.Cleanup(func() {
		if !removed {
			c.NetNS.Exec("nft", "delete", "table", "inet", table)
		}
	})
	return func() {
		t.Helper()
		rules, err := c.NetNS.Exec("nft", "list", "table", "inet", table)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.NetNS.Exec("nft", "delete", "table", "inet", table); err != nil {
			t.Fatal(err)
		}
		removed = true
		if strings.Contains(rules, "counter packets 0 ") {
			t.Fatalf("nothing in %s tried to reach the API server during the outage:\n%s", c.NetNS.Name, rules)
		}
	}
}
