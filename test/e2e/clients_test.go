//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pocketkube/pocketkube/test/framework"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
)

// examplesDir is examples/ of the repository; tests run in test/e2e.
const examplesDir = "../../examples"

// exampleClient is one example program: how to prepare it (build or
// install) and the command line that runs it, without its flags.
type exampleClient struct {
	name    string
	command func(t *testing.T) []string
}

var exampleClients = []exampleClient{
	{"client-go", func(t *testing.T) []string { return []string{buildClientGoExample(t)} }},
	// Debian's python3-kubernetes is installed for the system python3, not
	// for a pyenv one that may come first in PATH.
	{"python3-kubernetes", func(t *testing.T) []string {
		return []string{"/usr/bin/python3", absExample(t, "python/list_watch.py")}
	}},
	{"client-node", func(t *testing.T) []string { return []string{"node", installNodeExample(t)} }},
}

func absExample(t *testing.T, rel string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join(examplesDir, rel))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

var clientGoBuild struct {
	once sync.Once
	path string
	err  error
}

// buildClientGoExample builds examples/client-go once per test binary,
// statically (CGO_ENABLED=0) so the same file also runs in a busybox image.
func buildClientGoExample(t *testing.T) string {
	t.Helper()
	clientGoBuild.once.Do(func() {
		dir, err := os.MkdirTemp("", "pk-client-go-")
		if err != nil {
			clientGoBuild.err = err
			return
		}
		// The file outlives the test that built it: other tests use it.
		clientGoBuild.path = filepath.Join(dir, "client-go")
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", clientGoBuild.path, "./client-go")
		cmd.Dir = examplesDir
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			clientGoBuild.err = fmt.Errorf("go build examples/client-go: %w\n%s", err, out)
		}
	})
	if clientGoBuild.err != nil {
		t.Fatal(clientGoBuild.err)
	}
	return clientGoBuild.path
}

// installNodeExample copies examples/node to a temporary directory, installs
// the pinned @kubernetes/client-node there with `npm ci` (from
// package-lock.json) and returns the script's path.
func installNodeExample(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, f := range []string{"package.json", "package-lock.json", "list_watch.mjs"} {
		data, err := os.ReadFile(filepath.Join(examplesDir, "node", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "npm", "ci", "--no-audit", "--no-fund")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm ci in a copy of examples/node: %v\n%s", err, out)
	}
	return filepath.Join(dir, "list_watch.mjs")
}

// startSleepers creates busybox pods that sleep, labelled app=listed, and
// waits until each runs and is Ready, so that no status change of theirs
// reaches a watch started afterwards.
func startSleepers(t *testing.T, c kubernetes.Interface, ns string, names ...string) {
	t.Helper()
	shared.ImportBusybox(t, "busybox")
	var pods []*corev1.Pod
	for _, name := range names {
		pods = append(pods, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{"app": "listed"}},
			Spec: corev1.PodSpec{
				TerminationGracePeriodSeconds: new(int64),
				Containers: []corev1.Container{{
					Name: "main", Image: "busybox", Command: []string{"sleep", "3600"},
				}},
			},
		})
	}
	framework.RunPods(t, c, pods...)
}

// churnPod makes exactly four watch events for pod name in ns: it creates
// the pod (ADDED), labels it (MODIFIED) and deletes it, which the API
// server does in two writes even with no grace period: it sets
// deletionTimestamp (MODIFIED), then removes the pod (DELETED). A scheduling
// gate keeps the scheduler and the node away from the pod, so nothing else
// changes it: it stays Pending, and a pod on no node is deleted at once.
func churnPod(t *testing.T, c kubernetes.Interface, ns, name string) {
	t.Helper()
	ctx := t.Context()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{"app": "listed"}},
		Spec: corev1.PodSpec{
			SchedulingGates: []corev1.PodSchedulingGate{{Name: "example.com/hold"}},
			Containers: []corev1.Container{{
				Name: "main", Image: "busybox", Command: []string{"sleep", "3600"},
			}},
		},
	}
	if _, err := c.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create pod %s/%s: %v", ns, name, err)
	}
	patch := []byte(`{"metadata":{"labels":{"step":"modified"}}}`)
	if _, err := c.CoreV1().Pods(ns).Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatalf("label pod %s/%s: %v", ns, name, err)
	}
	if err := c.CoreV1().Pods(ns).Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
		t.Fatalf("delete pod %s/%s: %v", ns, name, err)
	}
}

// exampleRun is an example program running with its stdout read line by line.
type exampleRun struct {
	cmd    *exec.Cmd
	lines  chan string // closed at EOF
	stderr bytes.Buffer
	mu     sync.Mutex
	out    []string
}

func startExample(t *testing.T, args ...string) *exampleRun {
	t.Helper()
	r := &exampleRun{cmd: exec.Command(args[0], args[1:]...), lines: make(chan string, 100)}
	r.cmd.Stderr = &r.stderr
	stdout, err := r.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := r.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", strings.Join(args, " "), err)
	}
	t.Cleanup(func() {
		r.cmd.Process.Kill()
		r.cmd.Wait()
	})
	go func(stdout io.Reader) {
		s := bufio.NewScanner(stdout)
		for s.Scan() {
			r.mu.Lock()
			r.out = append(r.out, s.Text())
			r.mu.Unlock()
			r.lines <- s.Text()
		}
		close(r.lines)
	}(stdout)
	return r
}

// waitLine waits for a line with the prefix and fails the test with all
// output so far if none comes within timeout.
func (r *exampleRun) waitLine(t *testing.T, prefix string, timeout time.Duration) {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case line, ok := <-r.lines:
			if !ok {
				r.cmd.Wait()
				t.Fatalf("exited before printing %q: %v\nstdout:\n%s\nstderr:\n%s", prefix, r.cmd.ProcessState, r.stdout(), r.stderr.String())
			}
			if strings.HasPrefix(line, prefix) {
				return
			}
		case <-deadline:
			t.Fatalf("no line %q after %s\nstdout:\n%s", prefix, timeout, r.stdout())
		}
	}
}

// wait drains stdout and waits for the program to exit.
func (r *exampleRun) wait(t *testing.T, timeout time.Duration) error {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		for range r.lines {
		}
		done <- r.cmd.Wait()
	}()
	select {
	case err := <-done:
		return err
	case <-time.After(timeout):
		t.Fatalf("still running after %s\nstdout:\n%s", timeout, r.stdout())
		return nil
	}
}

func (r *exampleRun) stdout() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.out, "\n") + "\n"
}

// rvPattern matches the resourceVersion in the "Watching for" line, which
// differs from run to run.
var rvPattern = regexp.MustCompile(`resourceVersion \d+$`)

// maskRV replaces the resourceVersion in out with RV.
func maskRV(out string) string {
	lines := strings.Split(out, "\n")
	for i, l := range lines {
		lines[i] = rvPattern.ReplaceAllString(l, "resourceVersion RV")
	}
	return strings.Join(lines, "\n")
}

// listAndWatchOutput is what an example prints (with maskRV) when it
// lists listed-1 and listed-2 in ns and then watches the pod "watched"
// come, change twice (churnPod) and go.
func listAndWatchOutput(ns string) string {
	return fmt.Sprintf(`Pods in namespace %s:
  listed-1
  listed-2
Watching for 4 events from resourceVersion RV
ADDED watched
MODIFIED watched
MODIFIED watched
DELETED watched
`, ns)
}

// The examples list the pods of a namespace, then watch from the list's
// resourceVersion: a pod created, changed and deleted meanwhile shows up as
// exactly ADDED, MODIFIED, MODIFIED, DELETED, and the listed pods are not
// repeated.
func TestClientLibrariesListAndWatch(t *testing.T) {
	t.Parallel()
	c := shared.Client(t)
	for _, client := range exampleClients {
		t.Run(client.name, func(t *testing.T) {
			command := client.command(t)
			ns := framework.NewNamespace(t, c, "clients-")
			startSleepers(t, c, ns, "listed-1", "listed-2")

			run := startExample(t, append(command,
				"--kubeconfig", shared.Kubeconfig, "--namespace", ns, "--watch-for", "4", "--timeout", "60")...)
			run.waitLine(t, "Watching for 4 events", 60*time.Second)
			churnPod(t, c, ns, "watched")
			if err := run.wait(t, 90*time.Second); err != nil {
				t.Fatalf("exit: %v\nstdout:\n%s\nstderr:\n%s", err, run.stdout(), run.stderr.String())
			}
			want := listAndWatchOutput(ns)
			if got := maskRV(run.stdout()); got != want {
				t.Errorf("output:\n%s\nwant:\n%s\nstderr:\n%s", got, want, run.stderr.String())
			}
		})
	}
}

// A watch that sees fewer events than asked for ends at --timeout with an
// error and exit status 1, rather than hanging or claiming success.
func TestClientLibrariesWatchTimeout(t *testing.T) {
	t.Parallel()
	c := shared.Client(t)
	ns := framework.NewNamespace(t, c, "clients-timeout-")
	for _, client := range exampleClients {
		t.Run(client.name, func(t *testing.T) {
			command := client.command(t)
			run := startExample(t, append(command,
				"--kubeconfig", shared.Kubeconfig, "--namespace", ns, "--watch-for", "1", "--timeout", "2")...)
			err := run.wait(t, 60*time.Second)
			if framework.ExitCode(err) != 1 {
				t.Fatalf("exit: %v, want exit status 1\nstdout:\n%s\nstderr:\n%s", err, run.stdout(), run.stderr.String())
			}
			want := fmt.Sprintf("Pods in namespace %s:\nWatching for 1 events from resourceVersion RV\n", ns)
			if got := maskRV(run.stdout()); got != want {
				t.Errorf("output:\n%s\nwant:\n%s", got, want)
			}
			if !strings.Contains(run.stderr.String(), "stopped after 0 of 1 events") {
				t.Errorf("stderr %q does not say the watch stopped after 0 of 1 events", run.stderr.String())
			}
		})
	}
}

// clientGoImage is the image with busybox and the client-go example at
// /bin/client-go; its tag is not "latest", so the pull policy is
// IfNotPresent and the imported image is used.
const clientGoImage = "pocketkube.test/client-go-example:e2e"

// importClientGoImage builds a rootfs tar of busybox (as the busybox
// image) plus the statically built client-go example, and imports it into
// the shared cluster with `pocketkube images import`.
func importClientGoImage(t *testing.T) {
	t.Helper()
	binary := buildClientGoExample(t)
	dir := t.TempDir()
	base := filepath.Join(dir, "busybox.tar")
	if err := framework.BusyboxTar(base, nil); err != nil {
		t.Fatalf("busybox rootfs: %v", err)
	}
	rootfs := filepath.Join(dir, "client-go.tar")
	if err := framework.AppendFileToTar(base, rootfs, binary, "bin/client-go"); err != nil {
		t.Fatalf("image rootfs: %v", err)
	}
	if _, err := framework.Run(t.Context(), nil, Binary, "images", "import", "--data-dir", shared.DataDir, "--name", clientGoImage, rootfs); err != nil {
		t.Fatalf("import %s: %v", clientGoImage, err)
	}
}

// grantPodReader creates the service account pod-reader in ns and a Role
// and RoleBinding that let it get, list and watch the namespace's pods:
// what `kubectl create role pod-reader --verb=get,list,watch
// --resource=pods` and `kubectl create rolebinding` make.
func grantPodReader(t *testing.T, c kubernetes.Interface, ns string) {
	t.Helper()
	ctx := t.Context()
	if _, err := c.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{
		ObjectMeta: metav1.ObjectMeta{Name: "pod-reader"},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create service account: %v", err)
	}
	if _, err := c.RbacV1().Roles(ns).Create(ctx, &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "pod-reader"},
		Rules: []rbacv1.PolicyRule{{
			APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list", "watch"},
		}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create role: %v", err)
	}
	if _, err := c.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "pod-reader"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "pod-reader"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "pod-reader", Namespace: ns}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create role binding: %v", err)
	}
}

// clientGoPod runs the client-go example with the in-cluster config (no
// --kubeconfig) as service account sa; it lists and watches only the pods
// labelled app=listed, so its own pod's status changes are not among the
// events it counts.
func clientGoPod(ns, name, sa string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: corev1.PodSpec{
			ServiceAccountName:            sa,
			RestartPolicy:                 corev1.RestartPolicyNever,
			TerminationGracePeriodSeconds: new(int64),
			Containers: []corev1.Container{{
				Name:    "main",
				Image:   clientGoImage,
				Command: []string{"/bin/client-go", "--selector", "app=listed", "--watch-for", "4", "--timeout", "60"},
			}},
		},
	}
}

// The client-go example runs in a pod with rest.InClusterConfig(): it
// reaches the API server through the `kubernetes` Service with the pod's
// service account token, lists and watches pods as a Role allows, and is
// refused (upstream's 403) with the default service account.
func TestClientGoInPod(t *testing.T) {
	t.Parallel()
	c := shared.Client(t)
	importClientGoImage(t)

	t.Run("role allows list and watch", func(t *testing.T) {
		ns := framework.NewNamespace(t, c, "clients-inpod-")
		grantPodReader(t, c, ns)
		startSleepers(t, c, ns, "listed-1", "listed-2")
		if _, err := c.CoreV1().Pods(ns).Create(t.Context(), clientGoPod(ns, "client-go", "pod-reader"), metav1.CreateOptions{}); err != nil {
			t.Fatalf("create pod: %v", err)
		}
		logs, pod := framework.WaitPodLogs(t, c, ns, "client-go", 90*time.Second, func(logs string) bool {
			return strings.Contains(logs, "Watching for 4 events")
		})
		// The container may print before the agent has written phase
		// Running: wait for the status to catch up (a finished pod fails).
		p, err := framework.WaitPodIn(t.Context(), c, ns, "client-go", 30*time.Second, func(p *corev1.Pod) (bool, error) {
			return p.Status.Phase != corev1.PodPending, nil
		})
		if err != nil {
			t.Fatalf("pod still Pending after its container printed; status: %s", framework.PodStatus(p))
		}
		pod = p
		if pod.Status.Phase != corev1.PodRunning {
			t.Fatalf("pod is %s before the watch, want Running; status: %s\nlogs:\n%s", pod.Status.Phase, framework.PodStatus(pod), logs)
		}
		churnPod(t, c, ns, "watched")
		logs, pod = framework.WaitPodLogs(t, c, ns, "client-go", 90*time.Second, func(string) bool { return false })
		if pod.Status.Phase != corev1.PodSucceeded {
			t.Fatalf("pod is %s, want Succeeded; status: %s\nlogs:\n%s", pod.Status.Phase, framework.PodStatus(pod), logs)
		}
		want := listAndWatchOutput(ns)
		if got := maskRV(logs); got != want {
			t.Errorf("logs:\n%s\nwant:\n%s", got, want)
		}
	})

	t.Run("default service account is forbidden", func(t *testing.T) {
		ns := framework.NewNamespace(t, c, "clients-inpod-")
		if _, err := c.CoreV1().Pods(ns).Create(t.Context(), clientGoPod(ns, "client-go", "default"), metav1.CreateOptions{}); err != nil {
			t.Fatalf("create pod: %v", err)
		}
		logs, pod := framework.WaitPodLogs(t, c, ns, "client-go", 90*time.Second, func(string) bool { return false })
		if pod.Status.Phase != corev1.PodFailed {
			t.Fatalf("pod is %s, want Failed; status: %s\nlogs:\n%s", pod.Status.Phase, framework.PodStatus(pod), logs)
		}
		want := fmt.Sprintf(`error: list pods in namespace %[1]s: pods is forbidden: User "system:serviceaccount:%[1]s:default" cannot list resource "pods" in API group "" in the namespace "%[1]s"`+"\n", ns)
		if logs != want {
			t.Errorf("logs:\n%s\nwant:\n%s", logs, want)
		}
	})
}
