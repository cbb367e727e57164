//go:build bench

package bench

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/pocketkube/pocketkube/internal/pki"
	"github.com/pocketkube/pocketkube/test/framework"
)

var timelineLogs = flag.String("timeline-logs", "", "BenchmarkTimeToK8sTimeline: directory to keep each start's `up -v 2` log in")

// timeline records when each named step of a start was first seen, as
// the time since the process started.
type timeline struct {
	start time.Time
	mu    sync.Mutex
	at    map[string]time.Duration
}

func (t *timeline) mark(name string) { t.markAt(name, time.Now()) }

// markAt records name at when unless it was seen before.
func (t *timeline) markAt(name string, when time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.at[name]; !ok {
		t.at[name] = when.Sub(t.start)
	}
}

func (t *timeline) has(name string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	_, ok := t.at[name]
	return ok
}

// timelineLogSteps are the steps read from `up -v 2`'s log: the first
// line that matches each regexp, at the klog timestamp of the line.
var timelineLogSteps = []struct {
	name string
	re   *regexp.Regexp
}{
	{"log: etcd ready", regexp.MustCompile(`"Etcd ready"`)},
	{"log: kube-apiserver serving", regexp.MustCompile(`Serving securely on`)},
	{"log: controller-manager starting", regexp.MustCompile(`controllermanager.go:\d+\] "Starting"`)},
	{"log: controller-manager first controller running", regexp.MustCompile(`"Controller starting\.\.\."`)},
	{"log: controller-manager serviceaccount controller synced", regexp.MustCompile(`"Caches are synced" controller="service account"`)},
	{"log: controller-manager root-ca publisher synced", regexp.MustCompile(`"Caches are synced" controller="crt configmap"`)},
	{"log: controller-manager node ipam synced", regexp.MustCompile(`"Caches are synced" controller="node"`)},
	{"log: scheduler starting", regexp.MustCompile(`"Starting Kubernetes Scheduler"`)},
	{"log: scheduler caches synced", regexp.MustCompile(`^scheduler .*"Caches are synced"`)},
	{"log: node registered", regexp.MustCompile(`"Registered node"`)},
	{"log: node pod network set up", regexp.MustCompile(`(?i)pod network|"Set up pod network`)},
	{"log: app pod start steps done", regexp.MustCompile(`"Pod start steps".*pod="default/app"`)},
}

// klogTime is a klog header's time of day; the date comes from day.
var klogTime = regexp.MustCompile(`[IWE]\d{4} (\d\d:\d\d:\d\d\.\d{6})`)

// readLogSteps adds the log's steps to t.
func readLogSteps(t *timeline, logPath string) error {
	f, err := os.Open(logPath)
	if err != nil {
		return err
	}
	defer f.Close()
	day := t.start.UTC().Format("2006-01-02 ")
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		m := klogTime.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		when, err := time.Parse("2006-01-02 15:04:05.000000", day+m[1])
		if err != nil {
			continue
		}
		for _, s := range timelineLogSteps {
			if s.re.MatchString(line) {
				t.markAt(s.name, when)
			}
		}
	}
	return sc.Err()
}

// pollReadyz asks the API server's /readyz?verbose as the admin every
// 10 ms until it answers 200, marking the first answer of any kind and
// each check's first "ok".
func pollReadyz(ctx context.Context, t *timeline, url string, paths pki.Paths) error {
	var client *http.Client
	for client == nil {
		// The PKI is written a moment after the start.
		caPEM, err := os.ReadFile(paths.CA)
		cert, err2 := tls.LoadX509KeyPair(paths.Admin, paths.AdminKey)
		if err == nil && err2 == nil {
			pool := x509.NewCertPool()
			pool.AppendCertsFromPEM(caPEM)
			client = &http.Client{Timeout: time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}}}}
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	defer client.CloseIdleConnections()
	for {
		resp, err := client.Get(url + "/readyz?verbose")
		if err == nil {
			now := time.Now()
			t.markAt("api: first answer (any status)", now)
			sc := bufio.NewScanner(resp.Body)
			for sc.Scan() {
				if name, ok := strings.CutPrefix(sc.Text(), "[+]"); ok {
					t.markAt("readyz: "+strings.TrimSuffix(name, " ok"), now)
				}
			}
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				t.markAt("api: /readyz 200", now)
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// watchSteps marks, from watches as the admin, what the app's pod
// waits for: the default service account, the kube-root-ca.crt
// ConfigMap, the node (registered, podCIDR, Ready), the kube-dns
// Service, and the pod itself (bound, Running). It returns when the pod
// runs or ctx ends.
func watchSteps(ctx context.Context, t *timeline, client kubernetes.Interface) {
	var wg sync.WaitGroup
	each := func(w func(context.Context) (watch.Interface, error), on func(obj any) bool) {
		wg.Go(func() {
			for ctx.Err() == nil {
				wi, err := w(ctx)
				if err != nil {
					time.Sleep(10 * time.Millisecond)
					continue
				}
				for ev := range wi.ResultChan() {
					if on(ev.Object) {
						wi.Stop()
						return
					}
				}
			}
		})
	}
	lo := metav1.ListOptions{}
	each(func(ctx context.Context) (watch.Interface, error) {
		return client.CoreV1().ServiceAccounts("default").Watch(ctx, lo)
	}, func(obj any) bool {
		if sa, ok := obj.(*corev1.ServiceAccount); ok && sa.Name == "default" {
			t.mark("api: ServiceAccount default/default")
			return true
		}
		return false
	})
	each(func(ctx context.Context) (watch.Interface, error) {
		return client.CoreV1().ConfigMaps("default").Watch(ctx, lo)
	}, func(obj any) bool {
		if cm, ok := obj.(*corev1.ConfigMap); ok && cm.Name == "kube-root-ca.crt" {
			t.mark("api: ConfigMap default/kube-root-ca.crt")
			return true
		}
		return false
	})
	each(func(ctx context.Context) (watch.Interface, error) {
		return client.CoreV1().Services("kube-system").Watch(ctx, lo)
	}, func(obj any) bool {
		if s, ok := obj.(*corev1.Service); ok && s.Name == "kube-dns" {
			t.mark("api: Service kube-system/kube-dns")
			return true
		}
		return false
	})
	each(func(ctx context.Context) (watch.Interface, error) {
		return client.CoreV1().Nodes().Watch(ctx, lo)
	}, func(obj any) bool {
		n, ok := obj.(*corev1.Node)
		if !ok {
			return false
		}
		t.mark("api: Node registered")
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
				t.mark("api: Node Ready")
			}
		}
		if n.Spec.PodCIDR != "" {
			t.mark("api: Node podCIDR set")
		}
		if len(n.Spec.Taints) == 0 {
			t.mark("api: Node without taints")
		}
		return t.has("api: Node Ready") && t.has("api: Node podCIDR set") && t.has("api: Node without taints")
	})
	each(func(ctx context.Context) (watch.Interface, error) {
		return client.CoreV1().Pods("default").Watch(ctx, lo)
	}, func(obj any) bool {
		p, ok := obj.(*corev1.Pod)
		if !ok || p.Name != "app" {
			return false
		}
		if p.Spec.NodeName != "" {
			t.mark("api: app pod bound")
		}
		if p.Status.Phase == corev1.PodRunning {
			t.mark("api: app pod Running")
			return true
		}
		return false
	})
	wg.Wait()
}

// BenchmarkTimeToK8sTimeline is BenchmarkTimeToK8s taken apart: per
// iteration a cold `up -v 2` with the same curl image and pod, and the
// time from the command to each step on the way to the app's pod reaching
// the API server by DNS name, seen three ways: the API server's
// /readyz?verbose polled every 10 ms as the admin (each check's first
// "ok"), watches as the admin from /readyz 200 on (the default service
// account, kube-root-ca.crt, the Node, the kube-dns Service, the pod),
// and the first log line of each of timelineLogSteps. The pod is created
// with client-go as soon as the default service account is seen (not
// with kubectl, as BenchmarkTimeToK8s does), and its log is read every
// 20 ms. It logs the median of each step, in order, and reports a few;
// -v 2 logs more than the default, so its totals run a little behind
// BenchmarkTimeToK8s's.
func BenchmarkTimeToK8sTimeline(b *testing.B) {
	image := filepath.Join(b.TempDir(), "curl.tar")
	if err := curlTar(image); err != nil {
		b.Fatal(err)
	}
	var runs []map[string]time.Duration
	for b.Loop() {
		dir := filepath.Join(b.TempDir(), "data")
		if _, err := framework.Run(b.Context(), nil, binary, "images", "import", "--data-dir", dir, "--name", "ttk/curl", image); err != nil {
			b.Fatal(err)
		}
		stopPodsCluster()
		listen := fmt.Sprintf("%s:%d", listenHost, freePort(b, listenHost))
		p := startProcess(b, dir+".log", binary, "up", "-v", "2", "--data-dir", dir, "--listen", listen,
			"--kubelet-port", fmt.Sprint(freePort(b, "")))
		p.url = "https://" + listen
		t := &timeline{start: p.start, at: map[string]time.Duration{}}
		paths := pki.PathsFor(filepath.Join(dir, "pki"))
		ctx, cancel := context.WithTimeout(b.Context(), 2*time.Minute)
		if err := pollReadyz(ctx, t, p.url, paths); err != nil {
			cancel()
			b.Fatalf("/readyz: %v", err)
		}
		client := kubernetes.NewForConfigOrDie(&rest.Config{Host: p.url, QPS: -1, TLSClientConfig: rest.TLSClientConfig{
			CAFile: paths.CA, CertFile: paths.Admin, KeyFile: paths.AdminKey,
		}})
		watched := make(chan struct{})
		go func() {
			defer close(watched)
			watchSteps(ctx, t, client)
		}()
		for !t.has("api: ServiceAccount default/default") && ctx.Err() == nil {
			time.Sleep(5 * time.Millisecond)
		}
		if _, err := client.CoreV1().Pods("default").Create(ctx, timelinePod(), metav1.CreateOptions{}); err != nil {
			cancel()
			b.Fatalf("create pod: %v", err)
		}
		t.mark("api: app pod created")
		<-watched
		for ctx.Err() == nil {
			out, err := client.CoreV1().Pods("default").GetLogs("app", &corev1.PodLogOptions{}).DoRaw(ctx)
			if err == nil && strings.Contains(string(out), "DNS-OK") {
				t.mark("api: app pod reached the API by DNS (its log)")
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if ctx.Err() != nil {
			cancel()
			if d := *timelineLogs; d != "" {
				if log, err := os.ReadFile(dir + ".log"); err == nil {
					os.WriteFile(filepath.Join(d, "up-failed.log"), log, 0o644)
				}
			}
			b.Fatalf("timeline not complete after 2 minutes: %v", t.at)
		}
		cancel()
		p.stop(syscall.SIGINT, 30*time.Second)
		if err := readLogSteps(t, dir+".log"); err != nil {
			b.Error(err)
		}
		runs = append(runs, t.at)
		if d := *timelineLogs; d != "" {
			if log, err := os.ReadFile(dir + ".log"); err == nil {
				os.WriteFile(filepath.Join(d, fmt.Sprintf("up-%d.log", len(runs))), log, 0o644)
			}
		}
		if err := removeUnlessMounted(dir); err != nil {
			b.Error(err)
		}
	}
	noNsPerOp(b)
	medians := map[string]time.Duration{}
	for _, r := range runs {
		for name := range r {
			if _, ok := medians[name]; ok {
				continue
			}
			var ds []time.Duration
			for _, r := range runs {
				if d, ok := r[name]; ok {
					ds = append(ds, d)
				}
			}
			medians[name] = quantile(ds, 0.5)
		}
	}
	names := slices.Collect(maps.Keys(medians))
	sort.Slice(names, func(i, j int) bool { return medians[names[i]] < medians[names[j]] })
	var sb strings.Builder
	fmt.Fprintf(&sb, "median of %d cold starts, ms from the command:\n", len(runs))
	for _, n := range names {
		fmt.Fprintf(&sb, "%7d  %s\n", medians[n].Milliseconds(), n)
	}
	b.Log(sb.String())
	for _, m := range []struct{ step, unit string }{
		{"api: /readyz 200", "readyz-s"},
		{"api: ServiceAccount default/default", "default-sa-s"},
		{"api: Node podCIDR set", "node-podcidr-s"},
		{"api: app pod bound", "app-bound-s"},
		{"api: app pod Running", "app-running-s"},
		{"api: app pod reached the API by DNS (its log)", "app-dns-api-s"},
	} {
		b.ReportMetric(medians[m.step].Seconds(), m.unit)
	}
}

// timelinePod is BenchmarkTimeToK8s's pod.
func timelinePod() *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "app"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "app", Image: "ttk/curl", ImagePullPolicy: corev1.PullNever,
			Command: []string{"sh", "-c", "until curl -sf --cacert /var/run/secrets/kubernetes.io/serviceaccount/ca.crt https://kubernetes.default.svc.cluster.local/version; do sleep 0.05; done; echo; echo DNS-OK; exec sleep 3600"},
		}}},
	}
}
