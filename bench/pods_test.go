//go:build bench

package bench

import (
	"bufio"
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"

	"github.com/pocketkube/pocketkube/test/framework"
)

// BenchmarkPodStart creates N busybox pods at once (`sh -c 'echo
// started; exec sleep 3600'`, imagePullPolicy IfNotPresent, the image
// imported from the host's busybox-static) per iteration, watches them,
// and reports over all pods of all iterations: scheduler bind → Running
// (Ready), create → Running, create → the container's first log line
// (its CRI log timestamp), and create → all N Running (median over the
// iterations). The pods are deleted and gone before the next iteration.
func BenchmarkPodStart(b *testing.B) {
	for _, n := range []int{1, 30, 100} {
		b.Run(fmt.Sprintf("pods=%d", n), func(b *testing.B) {
			c := podsCluster(b)
			measurePodStart(b, highQPSClient(b, c), n, func() string { return "" })
		})
	}
}

// measurePodStart runs b's iterations of podStartRun with n pods and
// reports BenchmarkPodStart's figures; context() adds what to show with a
// failure (the peer's logs).
func measurePodStart(b *testing.B, client kubernetes.Interface, n int, context func() string) {
	var all []podSample
	var allRunning []time.Duration
	run := 0
	for b.Loop() {
		samples, last, err := podStartRun(b.Context(), client, n, run)
		if err != nil {
			b.Fatalf("%v\n%s", err, context())
		}
		run++
		all = append(all, samples...)
		allRunning = append(allRunning, last)
	}
	noNsPerOp(b)
	pick := func(f func(podSample) time.Duration) []time.Duration {
		var d []time.Duration
		for _, s := range all {
			d = append(d, f(s))
		}
		return d
	}
	reportQuantiles(b, "bound-running", pick(func(s podSample) time.Duration { return s.boundToRunning }), false)
	reportQuantiles(b, "create-running", pick(func(s podSample) time.Duration { return s.running }), false)
	reportQuantiles(b, "create-firstlog", pick(func(s podSample) time.Duration { return s.firstLog }), false)
	b.ReportMetric(ms(quantile(allRunning, 0.5)), "all-running-ms")
}

// highQPSClient is an admin client without client-side throttling in the
// way of 100 creates at once.
func highQPSClient(b *testing.B, c *framework.Cluster) kubernetes.Interface {
	b.Helper()
	cfg, err := c.RESTConfig()
	if err != nil {
		b.Fatal(err)
	}
	cfg.QPS, cfg.Burst = 500, 1000
	return kubernetes.NewForConfigOrDie(cfg)
}

type podSample struct{ running, boundToRunning, firstLog time.Duration }

// podStartRun is one run of bench/podstart: n pods created at once.
func podStartRun(ctx context.Context, client kubernetes.Interface, n, r int) ([]podSample, time.Duration, error) {
	label := fmt.Sprintf("bench-run-%d-%d", time.Now().UnixNano(), r)
	opts := metav1.ListOptions{LabelSelector: "bench=" + label}
	w, err := client.CoreV1().Pods("default").Watch(ctx, opts)
	if err != nil {
		return nil, 0, err
	}
	defer func() { w.Stop() }()
	created := make([]time.Time, n)
	bound := map[string]time.Time{}
	ready := map[string]time.Time{}
	var mu sync.Mutex
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			for ev := range w.ResultChan() {
				if ev.Type == watch.Error {
					continue
				}
				pod, ok := ev.Object.(*corev1.Pod)
				if !ok {
					continue
				}
				now := time.Now()
				mu.Lock()
				if _, ok := bound[pod.Name]; !ok && pod.Spec.NodeName != "" {
					bound[pod.Name] = now
				}
				if _, ok := ready[pod.Name]; !ok && framework.Ready(pod) {
					ready[pod.Name] = now
				}
				all := len(ready) == n
				mu.Unlock()
				if all {
					return
				}
			}
			// The server ended the watch (a timeout): watch again; a new
			// watch starts with the pods' current state.
			if w, err = client.CoreV1().Pods("default").Watch(ctx, opts); err != nil {
				return
			}
		}
	}()
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			pod := &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s-%d", label, i), Labels: map[string]string{"bench": label}},
				Spec: corev1.PodSpec{
					TerminationGracePeriodSeconds: new(int64),
					Containers: []corev1.Container{{
						Name: "main", Image: "busybox", ImagePullPolicy: corev1.PullIfNotPresent,
						Command: []string{"sh", "-c", "echo started; exec sleep 3600"},
					}},
				},
			}
			created[i] = time.Now()
			if _, err := client.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return nil, 0, err
	}
	select {
	case <-done:
	case <-time.After(5 * time.Minute):
		mu.Lock()
		defer mu.Unlock()
		return nil, 0, fmt.Errorf("pods not Running after 5 minutes: %d of %d", len(ready), n)
	}
	allRunning := time.Since(start)
	var samples []podSample
	for i := range n {
		name := fmt.Sprintf("%s-%d", label, i)
		first, err := firstLogLine(ctx, client, name)
		if err != nil {
			return nil, 0, err
		}
		samples = append(samples, podSample{
			running:        ready[name].Sub(created[i]),
			boundToRunning: ready[name].Sub(bound[name]),
			firstLog:       first.Sub(created[i]),
		})
	}
	// Clean up and wait until the pods are gone, so runs do not overlap.
	client.CoreV1().Pods("default").DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: new(int64)}, opts)
	wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		l, err := client.CoreV1().Pods("default").List(ctx, opts)
		return err == nil && len(l.Items) == 0, nil
	})
	return samples, allRunning, nil
}

// firstLogLine returns the timestamp of the container's first log line.
func firstLogLine(ctx context.Context, client kubernetes.Interface, name string) (time.Time, error) {
	var ts time.Time
	err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		rc, err := client.CoreV1().Pods("default").GetLogs(name, &corev1.PodLogOptions{Timestamps: true}).Stream(ctx)
		if err != nil {
			return false, nil
		}
		defer rc.Close()
		line, err := bufio.NewReader(rc).ReadString('\n')
		if err != nil {
			return false, nil
		}
		stamp, _, _ := strings.Cut(line, " ")
		ts, err = time.Parse(time.RFC3339Nano, stamp)
		return err == nil, nil
	})
	return ts, err
}

// BenchmarkPodMemory measures, per iteration, as bench/pods.sh did after
// its pod starts: pocketkube's RSS idle (no pods), then with 30 running
// pods (`sleep 3600`, which ignores SIGTERM, grace period 30 s), the
// per-container shims' RSS, the memory per running pod ((agent growth +
// shims) / 30; by VmRSS, and by PSS, which counts the shim binary that all
// shims share once; 5 s after the pods were Ready, and by PSS again at
// steadyAfter, once the burst's garbage is collected), and Ctrl-C → exit with the 30 pods running (the agent
// caps the grace at 3 s). The cluster is started again afterwards and the
// pods deleted.
func BenchmarkPodMemory(b *testing.B) {
	const pods = 30
	c := podsCluster(b)
	var idle, busy, shims, shimsPss, steady, steadyShimsPss, stop []float64
	for b.Loop() {
		time.Sleep(5 * time.Second)
		idleKiB, err := rssKiB(c.Pid())
		if err != nil {
			b.Fatal(err)
		}
		if err := runSleepers(b.Context(), c, pods); err != nil {
			b.Fatal(err)
		}
		time.Sleep(5 * time.Second)
		busyKiB, err := rssKiB(c.Pid())
		if err != nil {
			b.Fatal(err)
		}
		shimKiB, shimPssKiB := sumKiB(shimPids(c.DataDir)...), sumPssKiB(shimPids(c.DataDir)...)
		time.Sleep(steadyAfter - 5*time.Second)
		steadyKiB, err := rssKiB(c.Pid())
		if err != nil {
			b.Fatal(err)
		}
		steady = append(steady, float64(steadyKiB)/1024)
		steadyShimsPss = append(steadyShimsPss, float64(sumPssKiB(shimPids(c.DataDir)...))/1024)
		took, err := c.Stop(time.Minute)
		if err != nil {
			b.Fatalf("Ctrl-C with %d pods: %v after %s", pods, err, took)
		}
		if n := len(shimPids(c.DataDir)); n != 0 {
			b.Errorf("%d shims left after the cluster stopped", n)
		}
		idle, busy = append(idle, float64(idleKiB)/1024), append(busy, float64(busyKiB)/1024)
		shims, stop = append(shims, float64(shimKiB)/1024), append(stop, took.Seconds())
		shimsPss = append(shimsPss, float64(shimPssKiB)/1024)
		if c, err = c.Restart(); err != nil {
			b.Fatal(err)
		}
		sharedPods.c = c
		client := c.Client(b)
		grace := int64(0)
		client.CoreV1().Pods("default").DeleteCollection(b.Context(), metav1.DeleteOptions{GracePeriodSeconds: &grace}, metav1.ListOptions{})
		wait.PollUntilContextTimeout(b.Context(), 200*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
			l, err := client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{})
			return err == nil && len(l.Items) == 0 && len(shimPids(c.DataDir)) == 0, nil
		})
	}
	noNsPerOp(b)
	b.ReportMetric(mean(idle), "idle-rss-MiB")
	b.ReportMetric(mean(busy), "rss-30pods-MiB")
	b.ReportMetric((mean(busy)-mean(idle)+mean(shims))/pods, "MiB/pod")
	b.ReportMetric(mean(shims)/pods, "shim-MiB/pod")
	b.ReportMetric((mean(busy)-mean(idle)+mean(shimsPss))/pods, "pss-MiB/pod")
	b.ReportMetric(mean(shimsPss)/pods, "shim-pss-MiB/pod")
	b.ReportMetric(mean(steady), "rss-30pods-steady-MiB")
	b.ReportMetric((mean(steady)-mean(idle)+mean(steadyShimsPss))/pods, "steady-pss-MiB/pod")
	b.ReportMetric(mean(stop), "ctrlc-30pods-s")
}

// shimPids are the container shims of the cluster in dataDir (their
// bundles are under it).
func shimPids(dataDir string) []int {
	out, _ := exec.Command("pgrep", "-f", "shim.*--bundle "+dataDir).Output()
	var pids []int
	for _, f := range strings.Fields(string(out)) {
		if pid, err := strconv.Atoi(f); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

// runSleepers applies n busybox sleeper pods rss-0… to c's default
// namespace and waits until all are Ready: the burst the memory
// benchmarks measure, the same for pocketkube and its peer.
func runSleepers(ctx context.Context, c *framework.Cluster, n int) error {
	var manifest strings.Builder
	for i := range n {
		fmt.Fprintf(&manifest, `apiVersion: v1
kind: Pod
metadata: {name: rss-%d}
spec:
  terminationGracePeriodSeconds: 30
  containers: [{name: main, image: busybox, imagePullPolicy: IfNotPresent, command: [sleep, "3600"]}]
---
`, i)
	}
	if _, err := c.KubectlStdin(ctx, framework.Newest(), manifest.String(), "apply", "-f", "-"); err != nil {
		return err
	}
	_, err := c.Kubectl(ctx, framework.Newest(), "wait", "--for=condition=Ready", "pod", "--all", "--timeout=120s")
	return err
}

// BenchmarkLoggingShimMemory measures, per iteration, the private memory
// (RssAnon) of the shim of a container that writes log lines without a
// pause (busybox sh, `while :; do echo …; done`), next to the shim of a
// sleeper started with it, 20 s after both were Ready: a shim turns every
// line its container writes into a CRI log entry, for the container's
// life.
func BenchmarkLoggingShimMemory(b *testing.B) {
	const run = "shimlog"
	c := podsCluster(b)
	client := c.Client(b)
	ctx := b.Context()
	pod := func(name, script string) *corev1.Pod {
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"bench": run}},
			Spec: corev1.PodSpec{TerminationGracePeriodSeconds: new(int64), Containers: []corev1.Container{{
				Name: "main", Image: "busybox", ImagePullPolicy: corev1.PullIfNotPresent, Command: []string{"sh", "-c", script},
			}}},
		}
	}
	var logging, sleeping []float64
	for b.Loop() {
		for _, p := range []*corev1.Pod{
			pod("logging", `trap 'exit 0' TERM; i=0; while :; do i=$((i+1)); echo "line $i: a log line of about eighty bytes, as an application writes them"; done`),
			pod("sleeping", "trap 'exit 0' TERM; sleep 3600 & wait"),
		} {
			if _, err := client.CoreV1().Pods("default").Create(ctx, p, metav1.CreateOptions{}); err != nil {
				b.Fatal(err)
			}
		}
		if err := waitReady(ctx, client, "default", run, 2); err != nil {
			b.Fatal(err)
		}
		time.Sleep(20 * time.Second)
		for name, into := range map[string]*[]float64{"logging": &logging, "sleeping": &sleeping} {
			p, err := client.CoreV1().Pods("default").Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				b.Fatal(err)
			}
			id, _ := strings.CutPrefix(p.Status.ContainerStatuses[0].ContainerID, "runc://")
			out, err := exec.Command("pgrep", "-f", "shim.*--bundle .*/"+id).Output()
			pid, convErr := strconv.Atoi(strings.TrimSpace(string(out)))
			if err != nil || convErr != nil {
				b.Fatalf("shim of %s (container %s): %v %v %q", name, id, err, convErr, out)
			}
			kib, err := statusKiB(pid, "RssAnon:")
			if err != nil {
				b.Fatal(err)
			}
			*into = append(*into, float64(kib))
		}
		cleanupLabelsPods(client, "default", run)
	}
	noNsPerOp(b)
	b.ReportMetric(mean(logging), "logging-shim-anon-KiB")
	b.ReportMetric(mean(sleeping), "sleeping-shim-anon-KiB")
}
