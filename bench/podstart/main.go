// Command podstart measures pod start latency against a running cluster:
// for N pods created at once, the time from create to Running (Ready), from
// the scheduler's bind to Running, and from create to the container's first
// log line (its CRI log timestamp). It prints p50/p99 over all pods of all
// runs. Usage: go run ./bench/podstart --kubeconfig K --pods 30 --runs 3
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

func main() {
	kubeconfig := flag.String("kubeconfig", "", "admin kubeconfig")
	pods := flag.Int("pods", 1, "pods created at once per run")
	runs := flag.Int("runs", 1, "runs")
	image := flag.String("image", "busybox", "image (must be present on the node)")
	flag.Parse()
	if err := run(*kubeconfig, *pods, *runs, *image); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

type sample struct{ running, boundToRunning, firstLog time.Duration }

func run(kubeconfig string, n, runs int, image string) error {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return err
	}
	cfg.QPS, cfg.Burst = 500, 1000
	client := kubernetes.NewForConfigOrDie(cfg)
	ctx := context.Background()
	var all []sample
	var allRunning []time.Duration
	for r := 0; r < runs; r++ {
		samples, lastRunning, err := oneRun(ctx, client, n, r, image)
		if err != nil {
			return err
		}
		all = append(all, samples...)
		allRunning = append(allRunning, lastRunning)
	}
	pick := func(f func(sample) time.Duration) []time.Duration {
		var d []time.Duration
		for _, s := range all {
			d = append(d, f(s))
		}
		return d
	}
	fmt.Printf("pods=%d runs=%d samples=%d\n", n, runs, len(all))
	report("create→Running", pick(func(s sample) time.Duration { return s.running }))
	report("bound→Running", pick(func(s sample) time.Duration { return s.boundToRunning }))
	report("create→first log line", pick(func(s sample) time.Duration { return s.firstLog }))
	report("create→all Running", allRunning)
	return nil
}

func report(name string, d []time.Duration) {
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	q := func(p float64) time.Duration { return d[min(len(d)-1, int(p*float64(len(d))))] }
	fmt.Printf("%-24s p50 %7.0f ms   p99 %7.0f ms   max %7.0f ms\n", name, ms(q(0.5)), ms(q(0.99)), ms(d[len(d)-1]))
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func oneRun(ctx context.Context, client kubernetes.Interface, n, r int, image string) ([]sample, time.Duration, error) {
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
				if _, ok := ready[pod.Name]; !ok && isReady(pod) {
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
						Name: "main", Image: image, ImagePullPolicy: corev1.PullIfNotPresent,
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
		return nil, 0, fmt.Errorf("pods not Running after 5 minutes: %d of %d", len(ready), n)
	}
	allRunning := time.Since(start)
	var samples []sample
	for i := range n {
		name := fmt.Sprintf("%s-%d", label, i)
		first, err := firstLogLine(ctx, client, name)
		if err != nil {
			return nil, 0, err
		}
		samples = append(samples, sample{
			running:        ready[name].Sub(created[i]),
			boundToRunning: ready[name].Sub(bound[name]),
			firstLog:       first.Sub(created[i]),
		})
	}
	// Clean up and wait until the pods are gone, so runs do not overlap.
	client.CoreV1().Pods("default").DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: new(int64)}, metav1.ListOptions{LabelSelector: "bench=" + label})
	wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		l, err := client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "bench=" + label})
		return err == nil && len(l.Items) == 0, nil
	})
	return samples, allRunning, nil
}

func isReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
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
