//go:build e2e

package e2e

import (
	"context"
	"os"
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
