//go:build bench

package bench

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/httpstream"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"

	"github.com/pocketkube/pocketkube/test/framework"
)

var (
	soakMinutes  = flag.Int("soak-minutes", 0, "BenchmarkSoak: how long the soak runs, in minutes (0: $SOAK_MINUTES; the benchmark skips when neither is set)")
	soakWarmup   = flag.Duration("soak-warmup", 5*time.Minute, "BenchmarkSoak: the warm-up left out of the slopes")
	soakInterval = flag.Duration("soak-interval", 15*time.Second, "BenchmarkSoak: the least time between two samples")
	soakCSV      = flag.String("soak-csv", "", "BenchmarkSoak: where the samples are written as CSV (empty: $SOAK_CSV, else results/soak-<time>.csv)")
)

// soakBatch is how many pods each loop of the soak creates at once.
const soakBatch = 3

// BenchmarkSoak runs a cluster for SOAK_MINUTES (or -soak-minutes) under a
// loop of pod churn and watches the process for leaks. One iteration is
// the whole soak (run it with -benchtime 1x). The cluster runs in a
// network namespace of its own (framework.ClusterConfig{NetNS: true}), so
// the soak needs no e2e lock and runs beside the other clusters of the
// machine.
//
// Each loop creates soakBatch pods, each with an exec liveness probe, an
// HTTP readiness probe (busybox httpd) and a downwardAPI volume of its
// labels; once they are Running and Ready it runs `kubectl exec` and a
// client-go exec in each, reads their logs, patches a label and waits
// (through client-go exec) until the container's downwardAPI file shows it,
// then deletes them and waits until they are gone. A steady pod (HTTP
// liveness, exec readiness, 1 s periods) lives through the whole soak and
// is exec'ed into and its logs read every loop.
//
// Between loops, when -soak-interval has passed since the last, it samples
// pocketkube's RSS, open fds and threads (/proc/<pid>), its goroutines
// (the API server's /debug/pprof/goroutine?debug=1, which counts the whole
// process), its mounts (/proc/<pid>/mountinfo, the host's mount namespace:
// nsenter only enters the network namespace; and those under the data
// dir), the pod network namespaces (the agent's netns dir; /run/netns is
// the host's, other clusters' included), the cgroups under the cluster's
// cgroup root (every hierarchy) and the shim processes in the cluster's
// namespace. Samples are taken only between loops, when the steady pod is
// the only one, so that a count that should come back to its baseline
// does not saw-tooth with the loop.
//
// For each resource it reports the value at the end of the warm-up
// (-soak-warmup, the first sample at or after it: <name>-first), the last
// value (<name>-last) and the least-squares slope per hour over the
// samples from the warm-up on (<name>-per-h); the RSS also as growth in
// percent (rss-growth-%). The samples go to a CSV file (-soak-csv).
// Failed operations are counted (errors) and fail the benchmark after the
// figures are written.
func BenchmarkSoak(b *testing.B) {
	minutes := *soakMinutes
	if minutes == 0 {
		if v := os.Getenv("SOAK_MINUTES"); v != "" {
			m, err := strconv.Atoi(v)
			if err != nil || m <= 0 {
				b.Fatalf("SOAK_MINUTES=%q: want a positive number of minutes", v)
			}
			minutes = m
		}
	}
	if minutes == 0 {
		b.Skip("the soak runs only when asked: set SOAK_MINUTES or -soak-minutes (make soak)")
	}
	duration := time.Duration(minutes) * time.Minute
	csvPath := *soakCSV
	if csvPath == "" {
		csvPath = os.Getenv("SOAK_CSV")
	}
	if csvPath == "" {
		csvPath = filepath.Join("results", "soak-"+time.Now().UTC().Format("2006-01-02T1504Z")+".csv")
	}
	noNsPerOp(b)
	for b.Loop() {
		soak(b, duration, csvPath)
	}
}

// soakRun is one soak's cluster, clients and counters.
type soakRun struct {
	c      *framework.Cluster
	client kubernetes.Interface
	rest   *rest.Config
	ns     string

	mu     sync.Mutex
	errs   map[string]int // failed operations by kind
	errLog []string       // the first few failures
	ops    map[string]int // operations by kind
}

func soak(b *testing.B, duration time.Duration, csvPath string) {
	stopPodsCluster()
	dir := b.TempDir()
	c, err := framework.StartCluster(framework.ClusterConfig{
		Binary: binary, DataDir: filepath.Join(dir, "data"), NetNS: true, Timeout: 3 * time.Minute,
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := c.Cleanup(); err != nil {
			b.Errorf("cluster cleanup: %v", err)
		}
		if b.Failed() {
			b.Logf("cluster output:\n%s", framework.Tail(c.Output(), 60))
		}
	})
	waitNodeReady(b, c)
	c.ImportBusybox(b, "busybox")
	cfg, err := c.RESTConfig()
	if err != nil {
		b.Fatal(err)
	}
	r := &soakRun{c: c, client: c.Client(b), rest: cfg, errs: map[string]int{}, ops: map[string]int{}}
	r.ns = framework.NewNamespace(b, r.client, "soak-")
	framework.RunPods(b, r.client, steadyPod(r.ns))

	sampler := newSoakSampler(c)
	ctx := b.Context()
	start := time.Now()
	loops, created := 0, 0
	var samples []soakSample
	var lastSample time.Time
	take := func() {
		lastSample = time.Now()
		s, err := sampler.sample(ctx)
		if err != nil {
			r.fail("sample", err)
			return
		}
		s.elapsed, s.loops, s.pods = time.Since(start), loops, created
		samples = append(samples, s)
	}
	take()
	for time.Since(start) < duration {
		if err := c.Exited(); err != nil {
			b.Fatalf("%v\n%s", err, framework.Tail(c.Output(), 60))
		}
		created += r.loop(ctx, loops)
		loops++
		if time.Since(lastSample) >= *soakInterval {
			take()
		}
	}
	if time.Since(lastSample) >= time.Second {
		take()
	}

	if err := writeSoakCSV(csvPath, samples); err != nil {
		b.Errorf("write samples: %v", err)
	} else {
		b.Logf("samples: %s", csvPath)
	}
	if steady, err := r.client.CoreV1().Pods(r.ns).Get(ctx, "steady", metav1.GetOptions{}); err != nil {
		r.fail("steady-get", err)
	} else if len(steady.Status.ContainerStatuses) == 1 {
		b.ReportMetric(float64(steady.Status.ContainerStatuses[0].RestartCount), "steady-restarts")
	}
	b.ReportMetric(float64(loops), "loops")
	b.ReportMetric(float64(created), "pods")
	b.ReportMetric(time.Since(start).Minutes(), "minutes")
	r.report(b, samples)
}

// fail counts a failed operation of kind and keeps its message.
func (r *soakRun) fail(kind string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs[kind]++
	if len(r.errLog) < 20 {
		r.errLog = append(r.errLog, fmt.Sprintf("%s %s: %v", time.Now().UTC().Format(time.TimeOnly), kind, err))
	}
}

// do runs op as an operation of kind and counts it, and its failure.
func (r *soakRun) do(kind string, op func() error) bool {
	r.mu.Lock()
	r.ops[kind]++
	r.mu.Unlock()
	if err := op(); err != nil {
		r.fail(kind, err)
		return false
	}
	return true
}

// loop is one loop of the soak (see BenchmarkSoak); it returns how many
// pods it created.
func (r *soakRun) loop(ctx context.Context, n int) int {
	var wg sync.WaitGroup
	names := make([]string, soakBatch)
	for i := range names {
		names[i] = fmt.Sprintf("churn-%d-%d", n, i)
		wg.Go(func() { r.churnPod(ctx, names[i], n) })
	}
	wg.Go(func() {
		r.do("steady-exec", func() error {
			return r.execExpect(ctx, "steady", []string{"cat", "/etc/podinfo/labels"}, `app="soak-steady"`)
		})
		r.do("steady-logs", func() error {
			logs, err := framework.PodLogs(ctx, r.client, r.ns, "steady", "main")
			if err == nil && !strings.Contains(logs, "tick") {
				err = fmt.Errorf("no tick in the logs: %q", framework.Tail(logs, 3))
			}
			return err
		})
		r.do("steady-kubectl-logs", func() error {
			_, err := r.c.Kubectl(ctx, framework.Newest(), "-n", r.ns, "logs", "steady", "--tail", "5")
			return err
		})
	})
	wg.Wait()
	return len(names)
}

// churnPod runs one churn pod's life: create, Ready, exec, logs, label
// patch seen in the downwardAPI file, delete, gone.
func (r *soakRun) churnPod(ctx context.Context, name string, loop int) {
	defer r.do("delete", func() error {
		err := r.client.CoreV1().Pods(r.ns).Delete(ctx, name, metav1.DeleteOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
		return wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
			_, err := r.client.CoreV1().Pods(r.ns).Get(ctx, name, metav1.GetOptions{})
			return apierrors.IsNotFound(err), nil
		})
	})
	ok := r.do("create", func() error {
		_, err := r.client.CoreV1().Pods(r.ns).Create(ctx, churnPodSpec(r.ns, name), metav1.CreateOptions{})
		if err != nil {
			return err
		}
		pod, err := framework.WaitPodIn(ctx, r.client, r.ns, name, 2*time.Minute, func(p *corev1.Pod) (bool, error) {
			return framework.Running(p), nil
		})
		if err != nil {
			return fmt.Errorf("%w%s", err, r.whyNotRunning(ctx, pod))
		}
		return nil
	})
	if !ok {
		return
	}
	r.do("kubectl-exec", func() error {
		out, err := r.c.PodExec(ctx, r.ns, name, "cat", "/etc/podinfo/labels")
		if err == nil && !strings.Contains(out, `gen="0"`) {
			err = fmt.Errorf("labels file %q has no gen=\"0\"", out)
		}
		return err
	})
	r.do("exec", func() error { return r.execExpect(ctx, name, []string{"echo", "hello " + name}, "hello "+name) })
	r.do("logs", func() error {
		logs, err := framework.PodLogs(ctx, r.client, r.ns, name, "main")
		if err == nil && !strings.Contains(logs, "started "+name) {
			err = fmt.Errorf("no start line in the logs: %q", framework.Tail(logs, 3))
		}
		return err
	})
	r.do("label-to-file", func() error {
		gen := strconv.Itoa(loop + 1)
		patch := fmt.Sprintf(`{"metadata":{"labels":{"gen":%q}}}`, gen)
		if _, err := r.client.CoreV1().Pods(r.ns).Patch(ctx, name, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
			return err
		}
		var last error
		err := wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
			last = r.execExpect(ctx, name, []string{"cat", "/etc/podinfo/labels"}, `gen="`+gen+`"`)
			return last == nil, nil
		})
		if err != nil {
			return fmt.Errorf("%w (last read: %v)", err, last)
		}
		return nil
	})
}

// whyNotRunning describes the container's last termination and the
// pod's events, for a pod that did not become Ready.
func (r *soakRun) whyNotRunning(ctx context.Context, pod *corev1.Pod) string {
	if pod == nil {
		return ""
	}
	var b strings.Builder
	for _, cs := range pod.Status.ContainerStatuses {
		if t := cs.LastTerminationState.Terminated; t != nil {
			fmt.Fprintf(&b, "; last termination: %s exit %d %q", t.Reason, t.ExitCode, t.Message)
		}
	}
	events, err := r.client.CoreV1().Events(r.ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=" + pod.Name})
	if err == nil {
		for _, e := range events.Items {
			fmt.Fprintf(&b, "; event %s %s x%d: %s", e.Type, e.Reason, e.Count, e.Message)
		}
	}
	return b.String()
}

// execExpect runs cmd in pod's container "main" through client-go
// (WebSocket, falling back to SPDY, as kubectl does) and checks that its
// stdout contains want.
func (r *soakRun) execExpect(ctx context.Context, pod string, cmd []string, want string) error {
	req := r.client.CoreV1().RESTClient().Post().Resource("pods").Namespace(r.ns).Name(pod).SubResource("exec").
		VersionedParams(&corev1.PodExecOptions{Container: "main", Command: cmd, Stdout: true, Stderr: true}, scheme.ParameterCodec)
	ws, err := remotecommand.NewWebSocketExecutor(r.rest, "GET", req.URL().String())
	if err != nil {
		return err
	}
	spdy, err := remotecommand.NewSPDYExecutor(r.rest, "POST", req.URL())
	if err != nil {
		return err
	}
	exec, err := remotecommand.NewFallbackExecutor(ws, spdy, func(err error) bool {
		return httpstream.IsUpgradeFailure(err) || httpstream.IsHTTPSProxyError(err)
	})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	if err := exec.StreamWithContext(ctx, remotecommand.StreamOptions{Stdout: &stdout, Stderr: &stderr}); err != nil {
		return fmt.Errorf("exec %v in %s: %w (stderr %q)", cmd, pod, err, stderr.String())
	}
	if !strings.Contains(stdout.String(), want) {
		return fmt.Errorf("exec %v in %s: stdout %q has no %q", cmd, pod, stdout.String(), want)
	}
	return nil
}

// soakContainer is busybox serving HTTP on :8080 (httpd), logging a tick
// a second, with the pod's labels in /etc/podinfo.
func soakContainer(name string) corev1.Container {
	return corev1.Container{
		Name: "main", Image: "busybox", ImagePullPolicy: corev1.PullIfNotPresent,
		// The setup ends with ";": "a && b & c" would put the whole
		// and-list in the background and race httpd against mkdir.
		Command: []string{"sh", "-c", "mkdir -p /www && echo ok > /www/index.html && touch /tmp/healthy && echo started " + name +
			"; (while true; do echo tick; sleep 1; done) & exec httpd -f -p 8080 -h /www"},
		VolumeMounts: []corev1.VolumeMount{{Name: "podinfo", MountPath: "/etc/podinfo"}},
	}
}

func soakPod(ns, name string, labels map[string]string, c corev1.Container) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels},
		Spec: corev1.PodSpec{
			TerminationGracePeriodSeconds: new(int64(1)),
			Containers:                    []corev1.Container{c},
			Volumes: []corev1.Volume{{Name: "podinfo", VolumeSource: corev1.VolumeSource{DownwardAPI: &corev1.DownwardAPIVolumeSource{
				Items: []corev1.DownwardAPIVolumeFile{{Path: "labels", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.labels"}}},
			}}}},
		},
	}
}

var (
	execProbe = corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"cat", "/tmp/healthy"}}}
	httpProbe = corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/", Port: intstr.FromInt32(8080)}}
)

// churnPodSpec is a loop's pod: exec liveness, HTTP readiness.
func churnPodSpec(ns, name string) *corev1.Pod {
	c := soakContainer(name)
	c.LivenessProbe = &corev1.Probe{ProbeHandler: execProbe, PeriodSeconds: 2, FailureThreshold: 3}
	c.ReadinessProbe = &corev1.Probe{ProbeHandler: httpProbe, PeriodSeconds: 1}
	return soakPod(ns, name, map[string]string{"app": "soak-churn", "gen": "0"}, c)
}

// steadyPod lives through the soak: HTTP liveness, exec readiness.
func steadyPod(ns string) *corev1.Pod {
	c := soakContainer("steady")
	c.LivenessProbe = &corev1.Probe{ProbeHandler: httpProbe, PeriodSeconds: 1, FailureThreshold: 5}
	c.ReadinessProbe = &corev1.Probe{ProbeHandler: execProbe, PeriodSeconds: 1}
	return soakPod(ns, "steady", map[string]string{"app": "soak-steady"}, c)
}

// soakSample is one sample of the watched resources.
type soakSample struct {
	at      time.Time
	elapsed time.Duration
	loops   int // loops done before it
	pods    int // churn pods created before it
	values  []float64
}

// soakResources names the values of a sample, in order, with their units.
var soakResources = []string{
	"rss-MiB", "rss-anon-MiB", "rss-file-MiB", "fds", "threads", "goroutines", "mounts", "mounts-datadir",
	"pod-netns", "host-netns", "cgroups", "shims",
}

type soakSampler struct {
	c        *framework.Cluster
	pid      int
	dataDir  string
	netnsDir string
	pprof    rest.Interface
}

func newSoakSampler(c *framework.Cluster) *soakSampler {
	cfg, _ := c.RESTConfig()
	client := kubernetes.NewForConfigOrDie(cfg)
	return &soakSampler{
		c: c, pid: c.Pid(), dataDir: c.DataDir,
		netnsDir: filepath.Join(c.DataDir, "node", "network", "netns"),
		pprof:    client.CoreV1().RESTClient(),
	}
}

func (s *soakSampler) sample(ctx context.Context) (soakSample, error) {
	out := soakSample{at: time.Now().UTC()}
	proc := "/proc/" + strconv.Itoa(s.pid)
	rss, err := rssKiB(s.pid)
	if err != nil {
		return out, fmt.Errorf("rss: %w", err)
	}
	fds, err := os.ReadDir(proc + "/fd")
	if err != nil {
		return out, err
	}
	threads, err := statusField(proc+"/status", "Threads:")
	if err != nil {
		return out, err
	}
	// RssFile is mostly the binary's text and embedded etcd's bbolt
	// mmap; RssAnon the Go heap and stacks.
	rssAnon, err := statusField(proc+"/status", "RssAnon:")
	if err != nil {
		return out, err
	}
	rssFile, err := statusField(proc+"/status", "RssFile:")
	if err != nil {
		return out, err
	}
	goroutines, err := s.goroutines(ctx)
	if err != nil {
		return out, err
	}
	mountinfo, err := os.ReadFile(proc + "/mountinfo")
	if err != nil {
		return out, err
	}
	mounts, underData := 0, 0
	for line := range strings.SplitSeq(strings.TrimSpace(string(mountinfo)), "\n") {
		mounts++
		if f := strings.Fields(line); len(f) > 4 && strings.HasPrefix(f[4], s.dataDir+"/") {
			underData++
		}
	}
	podNetns, _ := os.ReadDir(s.netnsDir)
	hostNetns, _ := os.ReadDir("/run/netns")
	cgroups := 0
	for _, d := range s.c.NetNS.CgroupDirs() {
		filepath.WalkDir(d, func(path string, e os.DirEntry, err error) error {
			if err == nil && e.IsDir() && path != d {
				cgroups++
			}
			return nil
		})
	}
	shims := 0
	for _, pid := range s.c.NetNS.Pids() {
		cmdline, _ := os.ReadFile("/proc/" + pid + "/cmdline")
		argv0, _, _ := strings.Cut(string(cmdline), "\x00")
		if strings.HasPrefix(filepath.Base(argv0), "pocketkube-shim") || strings.Contains(string(cmdline), "\x00runtime-shim\x00") {
			shims++
		}
	}
	out.values = []float64{float64(rss) / 1024, float64(rssAnon) / 1024, float64(rssFile) / 1024, float64(len(fds)), float64(threads), float64(goroutines),
		float64(mounts), float64(underData), float64(len(podNetns)), float64(len(hostNetns)), float64(cgroups), float64(shims)}
	return out, nil
}

// goroutines reads the process's goroutine count from the API server's
// profiling endpoint (upstream's --profiling, on by default), whose first
// line is "goroutine profile: total N".
func (s *soakSampler) goroutines(ctx context.Context) (int, error) {
	body, err := s.pprof.Get().AbsPath("/debug/pprof/goroutine").Param("debug", "1").DoRaw(ctx)
	if err != nil {
		return 0, fmt.Errorf("goroutine profile: %w", err)
	}
	first, _, _ := strings.Cut(string(body), "\n")
	n, ok := strings.CutPrefix(first, "goroutine profile: total ")
	if !ok {
		return 0, fmt.Errorf("goroutine profile starts with %q", first)
	}
	return strconv.Atoi(strings.TrimSpace(n))
}

// statusField is the number after key in a /proc/<pid>/status-like file
// (status, smaps_rollup: "Key:   123 kB").
func statusField(path, key string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, key); ok {
			return strconv.Atoi(strings.Fields(v)[0])
		}
	}
	return 0, fmt.Errorf("%s: no %s", path, key)
}

func writeSoakCSV(path string, samples []soakSample) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := csv.NewWriter(f)
	w.Write(append([]string{"time", "elapsed-s", "loops", "pods"}, soakResources...))
	for _, s := range samples {
		row := []string{s.at.Format(time.RFC3339), strconv.FormatFloat(s.elapsed.Seconds(), 'f', 1, 64),
			strconv.Itoa(s.loops), strconv.Itoa(s.pods)}
		for _, v := range s.values {
			row = append(row, strconv.FormatFloat(v, 'f', -1, 64))
		}
		w.Write(row)
	}
	w.Flush()
	return errors.Join(w.Error(), f.Close())
}

// slopePerHour is the least-squares slope of ys over xs (seconds), per
// hour.
func slopePerHour(xs, ys []float64) float64 {
	n := float64(len(xs))
	if n < 2 {
		return 0
	}
	mx, my := mean(xs), mean(ys)
	var sxy, sxx float64
	for i := range xs {
		sxy += (xs[i] - mx) * (ys[i] - my)
		sxx += (xs[i] - mx) * (xs[i] - mx)
	}
	if sxx == 0 {
		return 0
	}
	return sxy / sxx * 3600
}

// report writes the figures (see BenchmarkSoak) and fails b if any
// operation failed.
func (r *soakRun) report(b *testing.B, samples []soakSample) {
	b.Helper()
	var after []soakSample
	for _, s := range samples {
		if s.elapsed >= *soakWarmup {
			after = append(after, s)
		}
	}
	if len(after) < 2 {
		b.Errorf("%d samples after the %s warm-up: no slope", len(after), *soakWarmup)
		return
	}
	var table strings.Builder
	fmt.Fprintf(&table, "%d samples, %d after the %s warm-up\n", len(samples), len(after), *soakWarmup)
	fmt.Fprintf(&table, "%-15s %10s %10s %10s %10s\n", "resource", "start", "first", "last", "per hour")
	for i, name := range soakResources {
		xs, ys := make([]float64, len(after)), make([]float64, len(after))
		for j, s := range after {
			xs[j], ys[j] = s.elapsed.Seconds(), s.values[i]
		}
		first, last, slope := ys[0], ys[len(ys)-1], slopePerHour(xs, ys)
		b.ReportMetric(first, name+"-first")
		b.ReportMetric(last, name+"-last")
		b.ReportMetric(slope, name+"-per-h")
		fmt.Fprintf(&table, "%-15s %10.1f %10.1f %10.1f %10.2f\n", name, samples[0].values[i], first, last, slope)
		if name == "rss-MiB" {
			b.ReportMetric((last-first)/first*100, "rss-growth-%")
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	fmt.Fprintf(&table, "operations: %v\nfailed: %v\n", r.ops, r.errs)
	// To stdout, not b.Log: a benchmark's log is cut to its first lines.
	fmt.Print(table.String())
	failed := 0
	for _, n := range r.errs {
		failed += n
	}
	b.ReportMetric(float64(failed), "errors")
	if failed > 0 {
		b.Errorf("%d operations failed:\n%s", failed, strings.Join(r.errLog, "\n"))
	}
}
