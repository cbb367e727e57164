//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/pocketkube/pocketkube/test/framework"
)

// applyPod applies manifest with kubectl and deletes the pod at the end
// of the test.
func applyPod(t *testing.T, c *framework.Cluster, name, manifest string) {
	t.Helper()
	c.ImportBusybox(t, "busybox")
	// ServiceAccount admission refuses pods until the controller manager
	// made the namespace's default service account, as on a new cluster.
	err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, framework.PodTimeout, true, func(ctx context.Context) (bool, error) {
		_, err := c.Client(t).CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{})
		return err == nil, nil
	})
	if err != nil {
		t.Fatalf("no default service account: %v", err)
	}
	if _, err := c.KubectlStdin(context.Background(), framework.Newest(), manifest, "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Client(t).CoreV1().Pods("default").Delete(context.Background(), name, metav1.DeleteOptions{GracePeriodSeconds: new(int64)})
	})
}

// waitPod polls the pod until cond holds and returns it.
func waitPod(t *testing.T, c kubernetes.Interface, name string, what string, cond func(*corev1.Pod) bool) *corev1.Pod {
	t.Helper()
	var pod *corev1.Pod
	err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, framework.PodTimeout, true, func(ctx context.Context) (bool, error) {
		p, err := c.CoreV1().Pods("default").Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		pod = p
		return cond(p), nil
	})
	if err != nil {
		t.Fatalf("pod %s never %s: %v\nstatus: %s", name, what, err, framework.PodStatus(pod))
	}
	return pod
}

func phaseIs(ph corev1.PodPhase) func(*corev1.Pod) bool {
	return func(p *corev1.Pod) bool { return p.Status.Phase == ph }
}

func TestNodeRegistered(t *testing.T) {
	c := shared.Client(t)
	var node *corev1.Node
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, framework.PodTimeout, true, func(ctx context.Context) (bool, error) {
		nodes, err := c.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil || len(nodes.Items) != 1 {
			return false, nil
		}
		node = &nodes.Items[0]
		return node.Labels["node-role.kubernetes.io/control-plane"] == "true", nil
	})
	if err != nil {
		t.Fatalf("no labelled node: %v (%+v)", err, node)
	}
	hostname, _ := os.Hostname()
	if node.Name != strings.ToLower(hostname) || node.Labels["kubernetes.io/hostname"] != node.Name {
		t.Errorf("node %q labels %v, want the lowercase hostname %q", node.Name, node.Labels, strings.ToLower(hostname))
	}
	for _, l := range []string{"kubernetes.io/os", "kubernetes.io/arch", "beta.kubernetes.io/os", "node-role.kubernetes.io/master"} {
		if node.Labels[l] == "" {
			t.Errorf("label %s missing: %v", l, node.Labels)
		}
	}
	info := node.Status.NodeInfo
	if info.KubeletVersion != "v1.37.2" || !strings.HasPrefix(info.ContainerRuntimeVersion, "runc://") || info.OperatingSystem != "linux" {
		t.Errorf("nodeInfo = %+v", info)
	}
	if node.Spec.PodCIDR == "" {
		t.Error("node has no pod CIDR")
	}
	ready := false
	for _, cond := range node.Status.Conditions {
		if cond.Type == corev1.NodeReady {
			ready = cond.Status == corev1.ConditionTrue && cond.Reason == "KubeletReady"
		}
	}
	if !ready {
		t.Errorf("node not Ready: %+v", node.Status.Conditions)
	}
	if pods := node.Status.Allocatable[corev1.ResourcePods]; pods.Value() != 110 {
		t.Errorf("allocatable pods = %s", pods.String())
	}
	lease, err := c.CoordinationV1().Leases("kube-node-lease").Get(context.Background(), node.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if *lease.Spec.HolderIdentity != node.Name || len(lease.OwnerReferences) == 0 {
		t.Errorf("lease %+v", lease.Spec)
	}
	// kubectl shows it Ready, with its roles.
	out, err := shared.Kubectl(context.Background(), framework.Newest(), "get", "nodes")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, " Ready ") || !strings.Contains(out, "control-plane,master") {
		t.Errorf("kubectl get nodes:\n%s", out)
	}
}

const sleeperPod = `apiVersion: v1
kind: Pod
metadata:
  name: %[1]s
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - name: main
    image: busybox
    command: ["sh", "-c", "echo hello from $(POD_NAME); sleep 0.2; echo to stderr >&2; exec sleep 3600"]
    env:
    - name: POD_NAME
      valueFrom:
        fieldRef:
          fieldPath: metadata.name
`

func TestPodRunsLogsAndExec(t *testing.T) {
	ctx := context.Background()
	c := shared.Client(t)
	applyPod(t, shared, "sleeper", fmt.Sprintf(sleeperPod, "sleeper"))
	pod := waitPod(t, c, "sleeper", "Running", framework.Running)
	_, cidr, _ := net.ParseCIDR("10.244.0.0/16")
	if ip := net.ParseIP(pod.Status.PodIP); ip == nil || !cidr.Contains(ip) {
		t.Errorf("podIP %q not in %s", pod.Status.PodIP, cidr)
	}
	cs := pod.Status.ContainerStatuses[0]
	if !strings.HasPrefix(cs.ContainerID, "runc://") || !cs.Ready || cs.Started == nil || !*cs.Started {
		t.Errorf("container status %+v", cs)
	}
	if pod.Status.HostIP == "" || pod.Status.StartTime == nil || pod.Status.QOSClass != corev1.PodQOSBestEffort {
		t.Errorf("status %+v", pod.Status)
	}
	for _, v := range framework.KubectlVersions {
		t.Run("kubectl-"+v, func(t *testing.T) {
			var out string
			err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 10*time.Second, true, func(ctx context.Context) (bool, error) {
				out, _ = shared.Kubectl(ctx, v, "logs", "sleeper")
				return strings.Contains(out, "to stderr"), nil
			})
			if err != nil || out != "hello from sleeper\nto stderr\n" {
				t.Errorf("logs = %q", out)
			}
			out, err = shared.Kubectl(ctx, v, "logs", "sleeper", "--timestamps", "--tail=1")
			if err != nil || !strings.HasSuffix(out, " to stderr\n") || !strings.Contains(out, "T") {
				t.Errorf("logs --timestamps --tail=1 = %q, %v", out, err)
			}
			out, err = shared.Kubectl(ctx, v, "exec", "sleeper", "--", "cat", "/etc/hostname")
			if err != nil || out != "sleeper\n" {
				t.Errorf("exec cat /etc/hostname = %q, %v", out, err)
			}
			_, err = shared.Kubectl(ctx, v, "exec", "sleeper", "--", "sh", "-c", "exit 7")
			var exit *exec.ExitError
			if !asExit(err, &exit) || exit.ExitCode() != 7 {
				t.Errorf("exec exit 7: %v", err)
			}
			out, err = shared.KubectlStdin(ctx, v, "from stdin\n", "exec", "-i", "sleeper", "--", "cat")
			if err != nil || out != "from stdin\n" {
				t.Errorf("exec -i cat = %q, %v", out, err)
			}
		})
	}
}

func TestRestartPolicies(t *testing.T) {
	c := shared.Client(t)
	manifest := `apiVersion: v1
kind: Pod
metadata:
  name: %s
spec:
  restartPolicy: %s
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: busybox
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "echo done; exit %d"]
`
	t.Run("Never-fails", func(t *testing.T) {
		applyPod(t, shared, "never-fails", fmt.Sprintf(manifest, "never-fails", "Never", 3))
		pod := waitPod(t, c, "never-fails", "Failed", phaseIs(corev1.PodFailed))
		term := pod.Status.ContainerStatuses[0].State.Terminated
		if term == nil || term.ExitCode != 3 || term.Reason != "Error" {
			t.Errorf("terminated = %+v", term)
		}
	})
	t.Run("termination-messages", func(t *testing.T) {
		applyPod(t, shared, "term-msg", `apiVersion: v1
kind: Pod
metadata:
  name: term-msg
spec:
  restartPolicy: Never
  containers:
  - name: file
    image: busybox
    command: ["sh", "-c", "printf 'written by the app' > /dev/termination-log; exit 0"]
  - name: logs
    image: busybox
    terminationMessagePolicy: FallbackToLogsOnError
    command: ["sh", "-c", "echo first; echo last words; exit 2"]
`)
		pod := waitPod(t, c, "term-msg", "Failed", phaseIs(corev1.PodFailed))
		for _, cs := range pod.Status.ContainerStatuses {
			want := map[string]string{"file": "written by the app", "logs": "first\nlast words\n"}[cs.Name]
			if got := cs.State.Terminated; got == nil || got.Message != want {
				t.Errorf("%s: terminated %+v, want message %q", cs.Name, got, want)
			}
		}
	})
	t.Run("OnFailure-succeeds", func(t *testing.T) {
		applyPod(t, shared, "onfailure-ok", fmt.Sprintf(manifest, "onfailure-ok", "OnFailure", 0))
		pod := waitPod(t, c, "onfailure-ok", "Succeeded", phaseIs(corev1.PodSucceeded))
		term := pod.Status.ContainerStatuses[0].State.Terminated
		if term == nil || term.ExitCode != 0 || term.Reason != "Completed" {
			t.Errorf("terminated = %+v", term)
		}
		for _, cond := range pod.Status.Conditions {
			if cond.Type == corev1.PodReady && cond.Reason != "PodCompleted" {
				t.Errorf("Ready condition %+v, want reason PodCompleted", cond)
			}
		}
	})
	t.Run("Always-crashloops", func(t *testing.T) {
		applyPod(t, shared, "crashloop", fmt.Sprintf(manifest, "crashloop", "Always", 1))
		pod := waitPod(t, c, "crashloop", "in CrashLoopBackOff", func(p *corev1.Pod) bool {
			if len(p.Status.ContainerStatuses) == 0 {
				return false
			}
			cs := p.Status.ContainerStatuses[0]
			return cs.RestartCount >= 1 && cs.State.Waiting != nil && cs.State.Waiting.Reason == "CrashLoopBackOff"
		})
		cs := pod.Status.ContainerStatuses[0]
		if !strings.HasPrefix(cs.State.Waiting.Message, "back-off 10s restarting failed container=main pod=crashloop_default(") &&
			!strings.HasPrefix(cs.State.Waiting.Message, "back-off 20s restarting failed container=main pod=crashloop_default(") {
			t.Errorf("waiting message %q", cs.State.Waiting.Message)
		}
		if last := cs.LastTerminationState.Terminated; last == nil || last.ExitCode != 1 {
			t.Errorf("lastState = %+v", cs.LastTerminationState)
		}
		if pod.Status.Phase != corev1.PodRunning {
			t.Errorf("phase %s, want Running (kubelet's getPhase for restartPolicy Always)", pod.Status.Phase)
		}
		out, err := shared.Kubectl(context.Background(), framework.Newest(), "logs", "crashloop", "--previous")
		if err != nil || out != "done\n" {
			t.Errorf("logs --previous = %q, %v", out, err)
		}
	})
}

func TestInitContainersAndVolumes(t *testing.T) {
	ctx := context.Background()
	c := shared.Client(t)
	_, err := c.CoreV1().ConfigMaps("default").Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "vol-cm"}, Data: map[string]string{"greeting": "hello", "other": "x"},
	}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	_, err = c.CoreV1().Secrets("default").Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "vol-secret"}, StringData: map[string]string{"password": "s3cret"},
	}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.CoreV1().ConfigMaps("default").Delete(ctx, "vol-cm", metav1.DeleteOptions{})
		c.CoreV1().Secrets("default").Delete(ctx, "vol-secret", metav1.DeleteOptions{})
	})
	hostDir := t.TempDir()
	os.WriteFile(filepath.Join(hostDir, "from-host"), []byte("host file\n"), 0o644)
	manifest := fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: volumes
spec:
  terminationGracePeriodSeconds: 1
  initContainers:
  - name: first
    image: busybox
    command: ["sh", "-c", "echo first > /work/order"]
    volumeMounts: [{name: work, mountPath: /work}]
  - name: second
    image: busybox
    command: ["sh", "-c", "echo second >> /work/order"]
    volumeMounts: [{name: work, mountPath: /work}]
  containers:
  - name: main
    image: busybox
    command: ["sleep", "3600"]
    volumeMounts:
    - {name: work, mountPath: /work}
    - {name: mem, mountPath: /mem}
    - {name: cm, mountPath: /etc/cm}
    - {name: secret, mountPath: /etc/secret}
    - {name: host, mountPath: /host, readOnly: true}
  volumes:
  - name: work
    emptyDir: {}
  - name: mem
    emptyDir: {medium: Memory, sizeLimit: 16Mi}
  - name: cm
    configMap:
      name: vol-cm
      items: [{key: greeting, path: sub/greeting.txt, mode: 0400}]
  - name: secret
    secret: {secretName: vol-secret}
  - name: host
    hostPath: {path: %s, type: Directory}
`, hostDir)
	applyPod(t, shared, "volumes", manifest)
	waitPod(t, c, "volumes", "Running", framework.Running)
	exec := func(cmd string) string {
		t.Helper()
		out, err := shared.Kubectl(ctx, framework.Newest(), "exec", "volumes", "--", "sh", "-c", cmd)
		if err != nil {
			t.Errorf("exec %q: %v", cmd, err)
		}
		return out
	}
	for _, tc := range []struct{ cmd, want string }{
		{"cat /work/order", "first\nsecond\n"},
		{"cat /etc/cm/sub/greeting.txt", "hello"},
		{"stat -L -c %a /etc/cm/sub/greeting.txt", "400\n"},
		{"ls /etc/cm", "sub\n"},
		{"cat /etc/secret/password", "s3cret"},
		{"cat /host/from-host", "host file\n"},
		{"touch /host/x 2>/dev/null && echo writable || echo read-only", "read-only\n"},
		{"touch /etc/cm/x 2>/dev/null && echo writable || echo read-only", "read-only\n"},
		{"grep ' /mem ' /proc/mounts | cut -d' ' -f3", "tmpfs\n"},
		{"echo hi > /work/new && cat /work/new", "hi\n"},
	} {
		if got := exec(tc.cmd); got != tc.want {
			t.Errorf("%s = %q, want %q", tc.cmd, got, tc.want)
		}
	}
	// A ConfigMap change reaches the file without a restart.
	cm, _ := c.CoreV1().ConfigMaps("default").Get(ctx, "vol-cm", metav1.GetOptions{})
	cm.Data["greeting"] = "changed"
	if _, err := c.CoreV1().ConfigMaps("default").Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 90*time.Second, true, func(ctx context.Context) (bool, error) {
		out, _ := shared.Kubectl(ctx, framework.Newest(), "exec", "volumes", "--", "cat", "/etc/cm/sub/greeting.txt")
		return out == "changed", nil
	})
	if err != nil {
		t.Errorf("ConfigMap update never reached the volume: %v", err)
	}
}

func TestContainersShareLocalhostAndPodsReachEachOther(t *testing.T) {
	ctx := context.Background()
	c := shared.Client(t)
	manifest := `apiVersion: v1
kind: Pod
metadata:
  name: %s
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: web
    image: busybox
    command: ["sh", "-c", "mkdir -p /www && echo served by %s > /www/index.html && exec httpd -f -p 8080 -h /www"]
  - name: client
    image: busybox
    command: ["sleep", "3600"]
`
	applyPod(t, shared, "web-a", fmt.Sprintf(manifest, "web-a", "web-a"))
	applyPod(t, shared, "web-b", fmt.Sprintf(manifest, "web-b", "web-b"))
	waitPod(t, c, "web-a", "Running", framework.Running)
	b := waitPod(t, c, "web-b", "Running", framework.Running)
	fetch := func(url string) (string, error) {
		var out string
		var err error
		wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 10*time.Second, true, func(ctx context.Context) (bool, error) {
			out, err = shared.Kubectl(ctx, framework.Newest(), "exec", "web-a", "-c", "client", "--", "wget", "-qO-", url)
			return err == nil, nil
		})
		return out, err
	}
	if out, err := fetch("http://localhost:8080/"); err != nil || out != "served by web-a\n" {
		t.Errorf("localhost from the other container: %q, %v", out, err)
	}
	if out, err := fetch("http://" + b.Status.PodIP + ":8080/"); err != nil || out != "served by web-b\n" {
		t.Errorf("pod-to-pod: %q, %v", out, err)
	}
	// port-forward through the API server and the kubelet API.
	for _, v := range framework.KubectlVersions {
		t.Run("port-forward-"+v, func(t *testing.T) {
			port, err := FreePort()
			if err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(filepath.Join(framework.KubectlDir, "kubectl."+v), "--kubeconfig", shared.Kubeconfig, "port-forward", "pod/web-a", fmt.Sprintf("%d:8080", port))
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() { cmd.Process.Kill(); cmd.Wait() }()
			var body string
			err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 15*time.Second, true, func(ctx context.Context) (bool, error) {
				body, _, err = framework.Curl(ctx, fmt.Sprintf("http://127.0.0.1:%d/", port))
				return err == nil, nil
			})
			if err != nil || body != "served by web-a\n" {
				t.Errorf("port-forward: %q, %v", body, err)
			}
		})
	}
}

// A pod that ignores SIGTERM is SIGKILLed when its grace period is over,
// not before, and its deletion leaves nothing behind.
func TestDeleteLeavesNothing(t *testing.T) {
	c := shared.Client(t)
	const grace = 3 * time.Second
	applyPod(t, shared, "ephemeral", `apiVersion: v1
kind: Pod
metadata:
  name: ephemeral
spec:
  terminationGracePeriodSeconds: 3
  containers:
  - name: main
    image: busybox
    command: ["sh", "-c", "trap '' TERM; while true; do sleep 1; done"]
`)
	pod := waitPod(t, c, "ephemeral", "Running", framework.Running)
	uid := string(pod.UID)
	start := time.Now()
	if _, err := shared.Kubectl(context.Background(), framework.Newest(), "delete", "pod", "ephemeral", "--wait=true", "--timeout=60s"); err != nil {
		t.Fatalf("delete of a pod that ignores SIGTERM, after %s: %v", time.Since(start).Round(time.Millisecond), err)
	}
	took := time.Since(start)
	t.Logf("deleted in %s (grace %s, SIGTERM ignored)", took.Round(time.Millisecond), grace)
	// The lower bound is exact (the grace period starts after the delete
	// call); the upper one leaves room for a busy machine.
	if took < grace {
		t.Errorf("deleted in %s: the container was killed before its %s grace period ended", took, grace)
	}
	if took > grace+15*time.Second {
		t.Errorf("deleted in %s: no SIGKILL when the %s grace period ended", took, grace)
	}
	leftovers := checkNoPodLeftovers(shared.DataDir, uid)
	for _, l := range leftovers {
		t.Error(l)
	}
}

// checkNoPodLeftovers lists what of pod uid is still on the host.
func checkNoPodLeftovers(dataDir, uid string) []string {
	var out []string
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	for _, line := range strings.Split(string(mounts), "\n") {
		if strings.Contains(line, uid) {
			out = append(out, "mount left: "+line)
		}
	}
	filepath.WalkDir(filepath.Join(dataDir, "node"), func(path string, d os.DirEntry, err error) error {
		if err == nil && strings.Contains(d.Name(), uid) {
			out = append(out, "file left: "+path)
		}
		return nil
	})
	for _, root := range []string{"/sys/fs/cgroup/memory/kubepods", "/sys/fs/cgroup/cpu/kubepods", "/sys/fs/cgroup/kubepods", "/sys/fs/cgroup/pids/kubepods"} {
		filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
			if err == nil && strings.Contains(d.Name(), uid) {
				out = append(out, "cgroup left: "+path)
			}
			return nil
		})
	}
	return out
}

func TestJobRunsToComplete(t *testing.T) {
	ctx := context.Background()
	shared.ImportBusybox(t, "busybox")
	manifest := `apiVersion: batch/v1
kind: Job
metadata:
  name: e2e-batch
spec:
  template:
    spec:
      restartPolicy: OnFailure
      containers:
      - name: main
        image: busybox
        command: ["sh", "-c", "echo batch done"]
`
	if _, err := shared.KubectlStdin(ctx, framework.Newest(), manifest, "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		shared.Kubectl(ctx, framework.Newest(), "delete", "job", "e2e-batch", "--cascade=background", "--wait=false")
	})
	if _, err := shared.Kubectl(ctx, framework.Newest(), "wait", "--for=condition=Complete", "job/e2e-batch", "--timeout=60s"); err != nil {
		t.Fatal(err)
	}
	out, err := shared.Kubectl(ctx, framework.Newest(), "logs", "job/e2e-batch")
	if err != nil || out != "batch done\n" {
		t.Errorf("job logs %q, %v", out, err)
	}
}

func TestBadInputsGetUpstreamReasons(t *testing.T) {
	c := shared.Client(t)
	manifest := `apiVersion: v1
kind: Pod
metadata:
  name: %s
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
%s
`
	for _, tc := range []struct {
		name, spec string
		reasons    []string
		message    string
	}{
		{"missing-image", "    image: nope.invalid/missing:1.0", []string{"ErrImagePull", "ImagePullBackOff"}, `"nope.invalid/missing:1.0"`},
		{"never-pull", "    image: not-imported:1.0\n    imagePullPolicy: Never", []string{"ErrImageNeverPull"}, `Container image "not-imported:1.0" is not present with pull policy of Never`},
		{"bad-command", "    image: busybox\n    command: [\"/no/such/binary\"]", []string{"RunContainerError", "CrashLoopBackOff", "CreateContainerError", "StartError"}, "/no/such/binary"},
		{"non-root", "    image: busybox\n    command: [\"true\"]\n    securityContext: {runAsNonRoot: true}", []string{"CreateContainerConfigError"}, "runAsNonRoot"},
		{"missing-configmap", "    image: busybox\n    envFrom: [{configMapRef: {name: no-such-cm}}]", []string{"CreateContainerConfigError"}, `configmap "no-such-cm" not found`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			applyPod(t, shared, tc.name, fmt.Sprintf(manifest, tc.name, tc.spec))
			pod := waitPod(t, c, tc.name, "waiting with an upstream reason", func(p *corev1.Pod) bool {
				if len(p.Status.ContainerStatuses) == 0 {
					return false
				}
				cs := p.Status.ContainerStatuses[0]
				for _, r := range tc.reasons {
					if w := cs.State.Waiting; w != nil && w.Reason == r && strings.Contains(w.Message, tc.message) {
						return true
					}
					if x := cs.LastTerminationState.Terminated; x != nil && x.Reason == r && strings.Contains(x.Message, tc.message) {
						return true
					}
				}
				return false
			})
			if pod.Status.Phase != corev1.PodPending && pod.Status.Phase != corev1.PodRunning {
				t.Errorf("phase %s", pod.Status.Phase)
			}
		})
	}
	// The agent is still healthy: a good pod runs.
	applyPod(t, shared, "after-bad", fmt.Sprintf(sleeperPod, "after-bad"))
	waitPod(t, c, "after-bad", "Running", framework.Running)
}
