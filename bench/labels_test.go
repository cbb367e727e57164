//go:build bench

package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"

	"github.com/pocketkube/pocketkube/test/framework"
)

// mountPath is where every labels pod mounts its downwardAPI volume.
const mountPath = "/etc/podinfo"

// BenchmarkLabelToFile measures how fast a pod label change reaches the
// container's downwardAPI file: per iteration, one merge patch of
// metadata.labels (n=<i>), timed from the PATCH returning to the first
// read of the file, as the container sees it, that holds the new value
// (polled every 200 µs). With pods=50, 49 other pods with their own
// downwardAPI volumes share the node and one is measured. Besides the
// p50/p90/p99/max it reports the torn reads seen by a reader looping on
// the file without a pause during 100 more changes after the timed ones
// (with their p99, patch-file-spinning-p99-ms: that reader takes one of
// the machine's cores), the container's restarts and how often the
// unchanged podName file was rewritten; the log has a breakdown by
// timestamps and the agent's workqueue metrics.
//
// The container's view is /proc/<pid>/root/etc/podinfo: the path walk goes
// through the container's root and mount namespace, so it sees exactly the
// bind mount and ..data symlink the container sees. pid is the container's
// init, found without guessing: the pod's status.containerStatuses[0]
// .containerID (runc://<id>) names the runc container, `runc --root
// <data-dir>/node/runtime/runc state <id>` gives its pid, and the pid's
// /proc/<pid>/cgroup must name the pod's UID.
//
// The breakdown comes from timestamps, not from the agent's logs: our own
// watch on the pod (when the API server delivers the new labels), the new
// labels file's mtime (the atomic write) and the ..data symlink's mtime
// (the swap), and the agent's pod workqueue metrics ("pods": wait in the
// queue, syncPod duration), which the single process exposes on the API
// server's /metrics. Changes go back to back: the next PATCH follows as
// soon as a change is seen, so it can arrive while the agent is still
// finishing the sync that wrote the file.
func BenchmarkLabelToFile(b *testing.B) {
	c := startCluster(b)
	c.ImportBusybox(b, "busybox")
	for _, n := range []int{1, 50} {
		b.Run(fmt.Sprintf("pods=%d", n), func(b *testing.B) { labelToFile(b, c, n) })
	}
}

// change is what was seen for one label change.
type change struct {
	ack      time.Time // the PATCH returned
	watched  time.Time // our own watch delivered the new labels (zero: not seen)
	written  time.Time // mtime of the new labels file (the atomic write)
	swapped  time.Time // mtime of the new ..data symlink (made just before the rename)
	visible  time.Time // first read through the container's view with the new value
	dataLink string
}

func labelToFile(b *testing.B, c *framework.Cluster, nPods int) {
	const (
		poll    = 200 * time.Microsecond
		timeout = 10 * time.Second
		settle  = 2 * time.Second
		noops   = 20
		// tornChanges are the label changes made with a reader looping
		// on the file, after the timed ones.
		tornChanges = 100
	)
	ctx := b.Context()
	client := highQPSClient(b, c)
	ns := "default"
	run := fmt.Sprintf("labels-%d", time.Now().UnixNano()%1e9)
	pods := client.CoreV1().Pods(ns)

	// Pod 0 is measured; the others only share the node.
	for i := range nPods {
		if _, err := pods.Create(ctx, labelsPod(run, i), metav1.CreateOptions{}); err != nil {
			b.Fatalf("create pod %d: %v", i, err)
		}
	}
	b.Cleanup(func() { cleanupLabelsPods(client, ns, run) })
	if err := waitReady(ctx, client, ns, run, nPods); err != nil {
		b.Fatal(err)
	}
	// Right after the last pod is Running the agent still writes statuses
	// and re-syncs pods; measure the node at rest.
	settled, err := waitQuiet(ctx, client, ns, run, settle)
	if err != nil {
		b.Fatal(err)
	}
	name := fmt.Sprintf("%s-0", run)
	pod, err := pods.Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		b.Fatal(err)
	}
	pid, err := containerPid(ctx, c.DataDir, pod)
	if err != nil {
		b.Fatal(err)
	}
	dir := fmt.Sprintf("/proc/%d/root%s", pid, mountPath)
	labelsPath := filepath.Join(dir, "labels")
	if got, err := os.ReadFile(labelsPath); err != nil || !hasLine(got, `n="0"`) {
		b.Fatalf("container view %s: %q, %v", labelsPath, got, err)
	}
	nameBefore, err := os.Stat(filepath.Join(dir, "podName"))
	if err != nil {
		b.Fatal(err)
	}
	linkBefore, _ := os.Readlink(filepath.Join(dir, "..data"))

	// Our own watch on the pod: when the apiserver delivers each new
	// label value, a proxy for when the agent's informer gets it.
	watched := map[int]time.Time{}
	var wmu sync.Mutex
	w, err := pods.Watch(ctx, metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", name).String(), ResourceVersion: pod.ResourceVersion})
	if err != nil {
		b.Fatal(err)
	}
	defer w.Stop()
	go func() {
		for ev := range w.ResultChan() {
			now := time.Now()
			p, ok := ev.Object.(*corev1.Pod)
			if !ok || ev.Type != watch.Modified {
				continue
			}
			if n, err := strconv.Atoi(p.Labels["n"]); err == nil && n > 0 {
				wmu.Lock()
				if _, seen := watched[n]; !seen {
					watched[n] = now
				}
				wmu.Unlock()
			}
		}
	}()

	// change makes label change i and waits until the container sees it.
	nameRewrites, links := 0, map[string]bool{}
	lastName := nameBefore
	change1 := func(i int) change {
		patch := fmt.Appendf(nil, `{"metadata":{"labels":{"n":"%d"}}}`, i)
		if _, err := pods.Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
			b.Fatalf("patch %d: %v", i, err)
		}
		ch := change{ack: time.Now()}
		want := fmt.Sprintf(`n="%d"`, i)
		for {
			got, err := os.ReadFile(labelsPath)
			if err == nil && hasLine(got, want) {
				ch.visible = time.Now()
				break
			}
			if time.Since(ch.ack) > timeout {
				b.Fatalf("change %d not visible in %s after %v: %q, %v", i, labelsPath, timeout, got, err)
			}
			time.Sleep(poll)
		}
		if fi, err := os.Stat(labelsPath); err == nil {
			ch.written = fi.ModTime()
		}
		if fi, err := os.Lstat(filepath.Join(dir, "..data")); err == nil {
			ch.swapped = fi.ModTime()
		}
		ch.dataLink, _ = os.Readlink(filepath.Join(dir, "..data"))
		links[ch.dataLink] = true
		if fi, err := os.Stat(filepath.Join(dir, "podName")); err == nil {
			if !sameFile(fi, lastName) {
				nameRewrites++
			}
			lastName = fi
		}
		return ch
	}

	qBefore := scrapeQueue(ctx, client)
	var changes []change
	i := 0
	for b.Loop() {
		i++
		changes = append(changes, change1(i))
	}
	noNsPerOp(b)
	qAfter := scrapeQueue(ctx, client)

	// Torn reads, in changes of their own: a reader looping on the file
	// without a pause takes one of the machine's cores, which the timed
	// changes above must not share with it.
	torn := &tornReader{path: labelsPath, keys: []string{"app", "bench", "n"}}
	rctx, cancel := context.WithCancel(ctx)
	readerDone := make(chan struct{})
	go func() { defer close(readerDone); torn.run(rctx) }()
	stopReader := func() { cancel(); <-readerDone }
	defer stopReader()
	var spinning []change
	for range tornChanges {
		i++
		spinning = append(spinning, change1(i))
	}

	// Updates that change nothing the volume projects: no new ..data.
	linkAfter, _ := os.Readlink(filepath.Join(dir, "..data"))
	for i := 1; i <= noops; i++ {
		patch := fmt.Appendf(nil, `{"metadata":{"annotations":{"noop":"%d"}}}`, i)
		if _, err := pods.Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
			b.Fatalf("annotation patch %d: %v", i, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond)
	linkNoop, _ := os.Readlink(filepath.Join(dir, "..data"))
	stopReader()

	wmu.Lock()
	for i := range changes {
		changes[i].watched = watched[i+1]
	}
	wmu.Unlock()
	if pod, err = pods.Get(ctx, name, metav1.GetOptions{}); err != nil {
		b.Fatal(err)
	}
	restarts := int32(-1)
	if len(pod.Status.ContainerStatuses) == 1 {
		restarts = pod.Status.ContainerStatuses[0].RestartCount
	}
	// What one `runc state` costs here.
	var runcTimes []time.Duration
	var pidAfter int
	for range 10 {
		t := time.Now()
		if pidAfter, err = containerPid(ctx, c.DataDir, pod); err != nil {
			b.Fatal(err)
		}
		runcTimes = append(runcTimes, time.Since(t))
	}
	nameAfter, _ := os.Stat(filepath.Join(dir, "podName"))

	lat := pick(changes, func(c change) time.Duration { return c.visible.Sub(c.ack) })
	reportQuantiles(b, "patch-file", lat, true)
	spinLat := pick(spinning, func(c change) time.Duration { return c.visible.Sub(c.ack) })
	b.ReportMetric(ms(quantile(spinLat, 0.99)), "patch-file-spinning-p99-ms")
	b.ReportMetric(float64(torn.torn.Load()+torn.missing.Load()), "torn-reads")
	b.ReportMetric(float64(torn.reads.Load()), "reads")
	b.ReportMetric(float64(restarts), "restarts")
	b.ReportMetric(float64(nameRewrites), "podname-rewrites")

	b.Logf("%d pod(s) on the node, %d label changes, measured on %s (container pid %d); pods quiet for %v after %v",
		nPods, len(changes), name, pid, settle, settled.Round(time.Millisecond))
	logQuantiles(b, "PATCH ack → new bytes in container", lat)
	var seen []change
	for _, c := range changes {
		if !c.watched.IsZero() {
			seen = append(seen, c)
		}
	}
	logQuantiles(b, fmt.Sprintf("  PATCH ack → our watch event (%d)", len(seen)), pick(seen, func(c change) time.Duration { return c.watched.Sub(c.ack) }))
	logQuantiles(b, "  PATCH ack → labels file mtime", pick(changes, func(c change) time.Duration { return c.written.Sub(c.ack) }))
	logQuantiles(b, "  labels file mtime → ..data swap", pick(changes, func(c change) time.Duration { return c.swapped.Sub(c.written) }))
	logQuantiles(b, "  ..data symlink mtime → seen", pick(changes, func(c change) time.Duration { return c.visible.Sub(c.swapped) }))
	b.Logf("(file mtimes use the kernel's coarse clock: a few ms of granularity)")
	qAfter.sub(qBefore).log(b.Logf)
	logQuantiles(b, "one `runc state` exec (10 runs)", runcTimes)
	b.Logf("torn reads: %d of %d reads (%d ENOENT, %d malformed, %d other errors)",
		torn.torn.Load()+torn.missing.Load(), torn.reads.Load(), torn.missing.Load(), torn.torn.Load(), torn.other.Load())
	for _, s := range torn.samples() {
		b.Logf("  torn sample: %q", s)
	}
	b.Logf("restartCount: %d; container pid before %d, after %d", restarts, pid, pidAfter)
	b.Logf("..data targets: %d distinct for %d changes; unchanged after %d annotation-only patches: %v",
		len(links), len(changes), noops, linkNoop == linkAfter && linkAfter != linkBefore)
	b.Logf("podName (bytes unchanged): new inode on %d of %d changes; inode %d→%d, mtime %s→%s",
		nameRewrites, len(changes), ino(nameBefore), ino(nameAfter),
		nameBefore.ModTime().Format("15:04:05.000"), modTime(nameAfter))
}

// logQuantiles logs p50/p90/p99/max of d.
func logQuantiles(b *testing.B, name string, d []time.Duration) {
	if len(d) == 0 {
		return
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	b.Logf("%-38s p50 %6.1f ms  p90 %6.1f ms  p99 %6.1f ms  max %6.1f ms",
		name, ms(quantile(d, 0.5)), ms(quantile(d, 0.9)), ms(quantile(d, 0.99)), ms(d[len(d)-1]))
}

// queueStats are the agent's pod workqueue metrics ("pods"), as the
// process exposes them on the API server's /metrics (one process, one
// legacy registry): cumulative counts and sums, and the histograms'
// buckets.
type queueStats struct {
	ok      bool
	adds    float64
	metrics map[string]float64 // name{le} → value, for the two histograms
}

func scrapeQueue(ctx context.Context, client kubernetes.Interface) queueStats {
	raw, err := client.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return queueStats{}
	}
	st := queueStats{metrics: map[string]float64{}}
	for line := range strings.SplitSeq(string(raw), "\n") {
		if !strings.HasPrefix(line, "workqueue_") || !strings.Contains(line, `name="pods"`) {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		name, labels, _ := strings.Cut(line[:i], "{")
		le := ""
		if _, rest, ok := strings.Cut(labels, `le="`); ok {
			le, _, _ = strings.Cut(rest, `"`)
		}
		switch name {
		case "workqueue_adds_total":
			st.adds, st.ok = v, true
		case "workqueue_queue_duration_seconds_bucket", "workqueue_work_duration_seconds_bucket",
			"workqueue_queue_duration_seconds_sum", "workqueue_work_duration_seconds_sum",
			"workqueue_queue_duration_seconds_count", "workqueue_work_duration_seconds_count":
			st.metrics[name+"/"+le] = v
		}
	}
	return st
}

func (a queueStats) sub(b queueStats) queueStats {
	d := queueStats{ok: a.ok && b.ok, adds: a.adds - b.adds, metrics: map[string]float64{}}
	for k, v := range a.metrics {
		d.metrics[k] = v - b.metrics[k]
	}
	return d
}

func (d queueStats) log(logf func(string, ...any)) {
	if !d.ok {
		logf("agent workqueue metrics: not exposed on /metrics")
		return
	}
	logf("agent workqueue \"pods\" during the changes: %.0f adds", d.adds)
	for _, h := range []string{"queue", "work"} {
		n := d.metrics["workqueue_"+h+"_duration_seconds_count/"]
		sum := d.metrics["workqueue_"+h+"_duration_seconds_sum/"]
		if n == 0 {
			continue
		}
		var les []float64
		for k := range d.metrics {
			if le, ok := strings.CutPrefix(k, "workqueue_"+h+"_duration_seconds_bucket/"); ok {
				if f, err := strconv.ParseFloat(le, 64); err == nil {
					les = append(les, f)
				}
			}
		}
		sort.Float64s(les)
		var parts []string
		prev := 0.0
		for _, le := range les {
			c := d.metrics[fmt.Sprintf("workqueue_%s_duration_seconds_bucket/%s", h, strconv.FormatFloat(le, 'g', -1, 64))]
			if c-prev > 0 {
				parts = append(parts, fmt.Sprintf("≤%.3gms:%.0f", le*1000, c-prev))
			}
			prev = c
		}
		what := map[string]string{"queue": "enqueue → worker picks it (queue_duration)", "work": "syncPod (work_duration)"}[h]
		logf("  %-44s n=%.0f mean %.1f ms  [%s]", what, n, sum/n*1000, strings.Join(parts, " "))
	}
}

func labelsPod(run string, i int) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name:   fmt.Sprintf("%s-%d", run, i),
			Labels: map[string]string{"bench": run, "app": "labels-bench", "n": "0"},
		},
		Spec: corev1.PodSpec{
			TerminationGracePeriodSeconds: new(int64),
			Containers: []corev1.Container{{
				Name: "main", Image: "busybox", ImagePullPolicy: corev1.PullIfNotPresent,
				// Exits on SIGTERM, so deleting 50 pods is quick.
				Command:      []string{"sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"},
				VolumeMounts: []corev1.VolumeMount{{Name: "podinfo", MountPath: mountPath}},
			}},
			Volumes: []corev1.Volume{{
				Name: "podinfo",
				VolumeSource: corev1.VolumeSource{DownwardAPI: &corev1.DownwardAPIVolumeSource{
					Items: []corev1.DownwardAPIVolumeFile{
						{Path: "labels", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.labels"}},
						{Path: "podName", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}},
					},
				}},
			}},
		},
	}
}

func waitReady(ctx context.Context, client kubernetes.Interface, ns, run string, n int) error {
	var ready int
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 5*time.Minute, true, func(ctx context.Context) (bool, error) {
		l, err := client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "bench=" + run})
		if err != nil {
			return false, nil
		}
		ready = 0
		for i := range l.Items {
			if framework.Ready(&l.Items[i]) {
				ready++
			}
		}
		return ready == n, nil
	})
	if err != nil {
		return fmt.Errorf("pods not Running: %d of %d: %w", ready, n, err)
	}
	return nil
}

// waitQuiet waits until no pod of run changed (resourceVersion) for quiet,
// and returns how long that took.
func waitQuiet(ctx context.Context, client kubernetes.Interface, ns, run string, quiet time.Duration) (time.Duration, error) {
	start, last := time.Now(), time.Now()
	seen := map[string]string{}
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		l, err := client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "bench=" + run})
		if err != nil {
			return false, nil
		}
		for _, p := range l.Items {
			if seen[p.Name] != p.ResourceVersion {
				seen[p.Name] = p.ResourceVersion
				last = time.Now()
			}
		}
		return time.Since(last) >= quiet, nil
	})
	if err != nil {
		return 0, fmt.Errorf("pods of %s still changing: %w", run, err)
	}
	return time.Since(start), nil
}

// containerPid returns the pid of the pod's only container's init: the
// runc container named by its status, checked against the pod's cgroup.
func containerPid(ctx context.Context, dataDir string, pod *corev1.Pod) (int, error) {
	if len(pod.Status.ContainerStatuses) != 1 {
		return 0, fmt.Errorf("pod %s: %d container statuses", pod.Name, len(pod.Status.ContainerStatuses))
	}
	id, ok := strings.CutPrefix(pod.Status.ContainerStatuses[0].ContainerID, "runc://")
	if !ok {
		return 0, fmt.Errorf("pod %s: container ID %q is not runc://", pod.Name, pod.Status.ContainerStatuses[0].ContainerID)
	}
	root := filepath.Join(dataDir, "node", "runtime", "runc")
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "runc", "--root", root, "state", id)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return 0, fmt.Errorf("runc state %s: %w: %s", id, err, stderr.String())
	}
	var st struct {
		Status string `json:"status"`
		Pid    int    `json:"pid"`
	}
	if err := json.Unmarshal(out, &st); err != nil {
		return 0, fmt.Errorf("parse runc state of %s: %w", id, err)
	}
	if st.Status != "running" || st.Pid == 0 {
		return 0, fmt.Errorf("runc container %s is %q (pid %d)", id, st.Status, st.Pid)
	}
	cg, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", st.Pid))
	if err != nil {
		return 0, err
	}
	if !bytes.Contains(cg, []byte("pod"+string(pod.UID))) {
		return 0, fmt.Errorf("pid %d of container %s is not in pod %s's cgroup: %s", st.Pid, id, pod.UID, cg)
	}
	return st.Pid, nil
}

func cleanupLabelsPods(client kubernetes.Interface, ns, run string) {
	ctx := context.Background()
	sel := metav1.ListOptions{LabelSelector: "bench=" + run}
	// A grace period of 0 would remove the pods from the API at once,
	// before the agent stopped them; 1 s makes the agent delete them
	// after tearing them down, so the next scenario starts on a quiet node.
	grace := int64(1)
	client.CoreV1().Pods(ns).DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: &grace}, sel)
	wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		l, err := client.CoreV1().Pods(ns).List(ctx, sel)
		return err == nil && len(l.Items) == 0, nil
	})
}

// hasLine reports whether b has the line want.
func hasLine(b []byte, want string) bool {
	for line := range bytes.SplitSeq(b, []byte("\n")) {
		if string(line) == want {
			return true
		}
	}
	return false
}

var labelLine = regexp.MustCompile(`^[^=]+="[^"]*"$`)

// tornReader reads path as fast as it can and counts reads that fail or
// are not a complete labels file: every line key="value", every key in
// keys present.
type tornReader struct {
	path                        string
	keys                        []string
	reads, missing, torn, other atomic.Int64
	mu                          sync.Mutex
	bad                         []string
}

func (r *tornReader) run(ctx context.Context) {
	for ctx.Err() == nil {
		b, err := os.ReadFile(r.path)
		r.reads.Add(1)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			r.missing.Add(1)
		case err != nil:
			r.other.Add(1)
			r.sample(err.Error())
		case !r.complete(b):
			r.torn.Add(1)
			r.sample(string(b))
		}
	}
}

func (r *tornReader) complete(b []byte) bool {
	seen := map[string]bool{}
	for line := range strings.SplitSeq(string(b), "\n") {
		if !labelLine.MatchString(line) {
			return false
		}
		k, _, _ := strings.Cut(line, "=")
		seen[k] = true
	}
	for _, k := range r.keys {
		if !seen[k] {
			return false
		}
	}
	return true
}

func (r *tornReader) sample(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.bad) < 5 {
		r.bad = append(r.bad, s)
	}
}

func (r *tornReader) samples() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.bad
}

func sameFile(a, b os.FileInfo) bool {
	return ino(a) == ino(b) && a.ModTime().Equal(b.ModTime())
}

func ino(fi os.FileInfo) uint64 {
	if fi == nil {
		return 0
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Ino
	}
	return 0
}

func modTime(fi os.FileInfo) string {
	if fi == nil {
		return "?"
	}
	return fi.ModTime().Format("15:04:05.000")
}

func pick(cs []change, f func(change) time.Duration) []time.Duration {
	var d []time.Duration
	for _, c := range cs {
		d = append(d, f(c))
	}
	return d
}
