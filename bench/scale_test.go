//go:build bench

package bench

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/pocketkube/pocketkube/test/framework"
)

var (
	scaleSteps  = flag.String("scale-steps", "10,25,50", "BenchmarkAgentScale: the numbers of agents the cluster grows to, in order")
	scaleSettle = flag.Duration("scale-settle", 60*time.Second, "BenchmarkAgentScale: how long each step idles, its agents Ready and pods Running, before its window")
	scaleWindow = flag.Duration("scale-window", 60*time.Second, "BenchmarkAgentScale: how long each step's figures are measured over")
)

// scaleProbes is how many requests of its own BenchmarkAgentScale times
// in a window: a GET of a Node and a LIST of the cluster's pods in turn,
// evenly spread over the window.
const scaleProbes = 100

// BenchmarkAgentScale (issue 15, "simulated scale") grows one `up` to
// many nodes: `pocketkube agent`s, each in a network namespace of its own
// with its own data dir (busybox imported from one tar), node name,
// cgroup root and kubelet API (port 10250 of its own address), are added
// in steps (-scale-steps, 10, 25, 50) and each gets one busybox pod pinned
// to it. Once all are Ready and Running, each step idles -scale-settle,
// then measures over -scale-window:
//
//   - the `up` process's VmRSS at the window's end and its CPU time
//     (utime+stime of /proc/PID/stat) per minute of the window; `up` also
//     runs the server's own node, so the cluster has one Node more than
//     agents;
//   - the Lease renewals (kube-node-lease) and the Node updates per
//     minute, counted from informers (watches): a Node update whose status
//     changed is a status write, any other a metadata or spec write;
//   - API latency p99 two ways: over all the API server's requests of the
//     window but WATCH and CONNECT, from the deltas of its
//     apiserver_request_duration_seconds histograms (interpolated in the
//     bucket, as histogram_quantile), and over the benchmark's own probes
//     (scaleProbes requests, client side);
//   - the agents' VmRSS and RssAnon (their own memory, without the
//     binary's shared pages) p50 and CPU time per minute (p50 and sum; an
//     agent's CPU includes the children it waited for: iptables, runc).
//
// It reports each figure per step as NAME@AGENTS and prints a table. At the
// end it deletes the pods, stops the agents (Ctrl-C) and checks that
// nothing is left of them: processes, network namespaces, links, cgroups,
// mounts under their data dirs.
//
// One iteration is the whole run (-benchtime 1x); it needs a -timeout
// beyond go test's 10 minutes.
func BenchmarkAgentScale(b *testing.B) {
	var steps []int
	for f := range strings.SplitSeq(*scaleSteps, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || (len(steps) > 0 && n <= steps[len(steps)-1]) {
			b.Fatalf("-scale-steps %q: want growing numbers of agents", *scaleSteps)
		}
		steps = append(steps, n)
	}
	var results []scaleResult
	for b.Loop() {
		results = agentScale(b, steps)
	}
	noNsPerOp(b)
	for _, r := range results {
		at := fmt.Sprintf("@%d", r.agents)
		b.ReportMetric(r.serverRSS, "server-rss-MiB"+at)
		b.ReportMetric(r.serverCPU, "server-cpu-s/min"+at)
		b.ReportMetric(r.leaseWrites, "lease-writes/min"+at)
		b.ReportMetric(r.nodeStatusWrites, "node-status-writes/min"+at)
		b.ReportMetric(r.nodeOtherWrites, "node-other-writes/min"+at)
		b.ReportMetric(r.apiRequests, "api-requests/min"+at)
		b.ReportMetric(r.apiP99, "api-p99-ms"+at)
		b.ReportMetric(ms(quantile(r.getNode, 0.99)), "probe-get-node-p99-ms"+at)
		b.ReportMetric(ms(quantile(r.listPods, 0.99)), "probe-list-pods-p99-ms"+at)
		b.ReportMetric(r.agentRSS, "agent-rss-p50-MiB"+at)
		b.ReportMetric(r.agentAnon, "agent-rss-anon-p50-MiB"+at)
		b.ReportMetric(r.agentCPU, "agent-cpu-p50-s/min"+at)
		b.ReportMetric(r.agentsCPU, "agents-cpu-s/min"+at)
	}
	logScaleTable(b, results)
}

// scaleResult is one step's figures; rates are per minute.
type scaleResult struct {
	agents            int
	join, podsRunning time.Duration // the step's start → all its agents Ready, → all its pods Running
	serverRSS         float64       // MiB
	serverCPU         float64       // CPU seconds per minute
	leaseWrites       float64
	nodeStatusWrites  float64
	nodeOtherWrites   float64
	apiRequests       float64 // all but WATCH and CONNECT
	apiP99            float64 // ms
	topRequests       string
	getNode, listPods []time.Duration
	agentRSS          float64 // MiB, p50
	agentAnon         float64 // MiB, p50 of RssAnon: the agent's own memory, without the binary's shared pages
	nodeStatusTotal   int64   // Node status writes since the run's start, joins included
	agentCPU          float64 // CPU seconds per minute, p50
	agentsCPU         float64 // CPU seconds per minute, all agents
	memAvailable      float64 // GiB, the machine's, at the window's end
	loadavg           string  // /proc/loadavg at the window's end
}

// scaleInotifyInstances is the fs.inotify.max_user_instances the run
// needs. The limit is per user, and every agent runs as root: an agent
// takes 2 instances (its runtime's exit watch among them), an `up` 14,
// so 50 agents beside two clusters of other tests overrun Linux's
// default of 128, and the agent that finds none left exits ("watch exits:
// too many open files"). kind's known issues give the same advice for
// many nodes on one machine.
const scaleInotifyInstances = 512

// raiseInotifyInstances raises fs.inotify.max_user_instances to at least
// n until b ends, then puts back the value it found.
func raiseInotifyInstances(b *testing.B, n int) {
	const path = "/proc/sys/fs/inotify/max_user_instances"
	raw, err := os.ReadFile(path)
	if err != nil {
		b.Fatal(err)
	}
	was, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil {
		b.Fatalf("%s: %v", path, err)
	}
	if was >= n {
		return
	}
	if err := os.WriteFile(path, []byte(strconv.Itoa(n)), 0o644); err != nil {
		b.Fatal(err)
	}
	b.Logf("fs.inotify.max_user_instances raised from %d to %d for the run", was, n)
	b.Cleanup(func() {
		if err := os.WriteFile(path, []byte(strconv.Itoa(was)), 0o644); err != nil {
			b.Errorf("restore %s: %v", path, err)
		}
	})
}

// scaleAgent is one `pocketkube agent` of the run.
type scaleAgent struct {
	name    string
	ns      *framework.NetNS
	dataDir string
	p       *framework.Process
	pid     int
}

func agentScale(b *testing.B, steps []int) []scaleResult {
	c := startCluster(b)
	defer stopCluster(b, c)
	client := highQPSClient(b, c)
	ctx := b.Context()
	var flags []string
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
		data, err := os.ReadFile(filepath.Join(c.DataDir, "node-token"))
		flags = strings.Fields(string(data))
		return err == nil && len(flags) == 4, nil
	})
	if err != nil {
		b.Fatalf("node-token: %q, %v", flags, err)
	}
	dir := b.TempDir()
	tarPath := filepath.Join(dir, "busybox.tar")
	if err := framework.BusyboxTar(tarPath, nil); err != nil {
		b.Fatal(err)
	}
	writes := countWrites(ctx, b, client)
	raiseInotifyInstances(b, scaleInotifyInstances)

	var agents []*scaleAgent
	defer func() { stopAgents(b, client, agents, dir) }()
	var results []scaleResult
	for _, n := range steps {
		r := scaleResult{agents: n}
		start := time.Now()
		var added []*scaleAgent
		for i := len(agents); i < n; i++ {
			a := &scaleAgent{name: fmt.Sprintf("scale-%d-%d", os.Getpid(), i), dataDir: filepath.Join(dir, fmt.Sprintf("agent-%d", i))}
			if _, err := framework.Run(ctx, nil, binary, "images", "import", "--data-dir", a.dataDir, "--name", "busybox", tarPath); err != nil {
				b.Fatal(err)
			}
			if a.ns, err = framework.NewNetNS(); err != nil {
				b.Fatal(err)
			}
			agents = append(agents, a)
			a.p, err = framework.StartIn(a.ns, binary, append([]string{"agent", "--server", c.Server, "--data-dir", a.dataDir,
				"--node-name", a.name, "--node-ip", a.ns.Addr, "--cgroup-root", a.ns.CgroupRoot, "--kubelet-port", "10250"}, flags...)...)
			if err != nil {
				b.Fatal(err)
			}
			added = append(added, a)
		}
		if err := waitAgentsReady(ctx, client, agents); err != nil {
			b.Fatalf("%d agents: %v", n, err)
		}
		r.join = time.Since(start)
		for _, a := range added {
			if _, err := client.CoreV1().Pods("default").Create(ctx, scalePod(a.name), metav1.CreateOptions{}); err != nil {
				b.Fatal(err)
			}
		}
		if err := waitScalePods(ctx, client, agents); err != nil {
			b.Fatalf("%d agents: %v", n, err)
		}
		r.podsRunning = time.Since(start)
		for _, a := range added {
			if a.pid, err = agentPid(a.name); err != nil {
				b.Fatalf("agent %s: %v", a.name, err)
			}
		}
		b.Logf("%d agents: all Ready %.1f s and their pods Running %.1f s after the step's start; settling %s",
			n, r.join.Seconds(), r.podsRunning.Seconds(), *scaleSettle)
		select {
		case <-time.After(*scaleSettle):
		case <-ctx.Done():
			b.Fatal(ctx.Err())
		}
		checkAgentsAlive(b, agents)
		measureWindow(b, c, client, writes, agents, &r)
		checkAgentsAlive(b, agents)
		results = append(results, r)
	}
	return results
}

// measureWindow fills r's figures over one -scale-window.
func measureWindow(b *testing.B, c *framework.Cluster, client kubernetes.Interface, writes *writeCounts, agents []*scaleAgent, r *scaleResult) {
	ctx := b.Context()
	agentCPU0 := make([]time.Duration, len(agents))
	for i, a := range agents {
		agentCPU0[i] = cpuTime(b, a.pid)
	}
	api0, err := scrapeAPI(ctx, client)
	if err != nil {
		b.Fatal(err)
	}
	w0 := writes.snapshot()
	cpu0 := cpuTime(b, c.Pid())
	start := time.Now()

	interval := *scaleWindow / scaleProbes
	for i := range scaleProbes {
		time.Sleep(time.Until(start.Add(time.Duration(i) * interval)))
		t := time.Now()
		if i%2 == 0 {
			a := agents[(i/2)%len(agents)]
			if _, err := client.CoreV1().Nodes().Get(ctx, a.name, metav1.GetOptions{}); err != nil {
				b.Fatalf("probe: get node %s: %v", a.name, err)
			}
			r.getNode = append(r.getNode, time.Since(t))
		} else {
			if _, err := client.CoreV1().Pods("").List(ctx, metav1.ListOptions{}); err != nil {
				b.Fatalf("probe: list pods: %v", err)
			}
			r.listPods = append(r.listPods, time.Since(t))
		}
	}
	time.Sleep(time.Until(start.Add(*scaleWindow)))

	cpu1 := cpuTime(b, c.Pid())
	w1 := writes.snapshot()
	elapsed := time.Since(start)
	api1, err := scrapeAPI(ctx, client)
	if err != nil {
		b.Fatal(err)
	}
	perMin := func(v float64) float64 { return v / elapsed.Minutes() }
	var agentRSS, agentAnon, agentCPU []float64
	for i, a := range agents {
		cpu := perMin((cpuTime(b, a.pid) - agentCPU0[i]).Seconds())
		agentCPU = append(agentCPU, cpu)
		r.agentsCPU += cpu
		k, err := rssKiB(a.pid)
		if err != nil {
			b.Fatalf("agent %s: %v", a.name, err)
		}
		agentRSS = append(agentRSS, float64(k)/1024)
		if k, err = statusKiB(a.pid, "RssAnon:"); err != nil {
			b.Fatalf("agent %s: %v", a.name, err)
		}
		agentAnon = append(agentAnon, float64(k)/1024)
	}
	r.agentRSS, r.agentAnon, r.agentCPU = median(agentRSS), median(agentAnon), median(agentCPU)
	r.nodeStatusTotal = w1.nodeStatus
	k, err := rssKiB(c.Pid())
	if err != nil {
		b.Fatal(err)
	}
	r.serverRSS = float64(k) / 1024
	r.serverCPU = perMin((cpu1 - cpu0).Seconds())
	r.leaseWrites = perMin(float64(w1.leases - w0.leases))
	r.nodeStatusWrites = perMin(float64(w1.nodeStatus - w0.nodeStatus))
	r.nodeOtherWrites = perMin(float64(w1.nodeOther - w0.nodeOther))
	d := api1.sub(api0)
	r.apiRequests = perMin(d.count)
	r.apiP99 = d.quantile(0.99) * 1000
	r.topRequests = d.top(6, elapsed)
	r.memAvailable = memAvailableGiB()
	if l, err := os.ReadFile("/proc/loadavg"); err == nil {
		r.loadavg = strings.TrimSpace(string(l))
	}
}

// statusKiB is a field of /proc/PID/status that is in kB, in KiB.
func statusKiB(pid int, field string) (int, error) {
	return statusField("/proc/"+strconv.Itoa(pid)+"/status", field)
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

// writeCounts counts the writes the watches see: Lease updates in
// kube-node-lease and Node updates, with and without a status change.
type writeCounts struct {
	leases, nodeStatus, nodeOther atomic.Int64
}

type writeSnapshot struct{ leases, nodeStatus, nodeOther int64 }

func (w *writeCounts) snapshot() writeSnapshot {
	return writeSnapshot{w.leases.Load(), w.nodeStatus.Load(), w.nodeOther.Load()}
}

// countWrites starts the informers that count writes until ctx is done.
func countWrites(ctx context.Context, b *testing.B, client kubernetes.Interface) *writeCounts {
	w := &writeCounts{}
	leases := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithNamespace(corev1.NamespaceNodeLease))
	nodes := informers.NewSharedInformerFactory(client, 0)
	changed := func(o, n metav1.Object) bool { return o.GetResourceVersion() != n.GetResourceVersion() }
	if _, err := leases.Coordination().V1().Leases().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		UpdateFunc: func(oldObj, newObj any) {
			o, ok1 := oldObj.(*coordinationv1.Lease)
			n, ok2 := newObj.(*coordinationv1.Lease)
			if ok1 && ok2 && changed(o, n) {
				w.leases.Add(1)
			}
		},
	}); err != nil {
		b.Fatal(err)
	}
	if _, err := nodes.Core().V1().Nodes().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		UpdateFunc: func(oldObj, newObj any) {
			o, ok1 := oldObj.(*corev1.Node)
			n, ok2 := newObj.(*corev1.Node)
			switch {
			case !ok1 || !ok2 || !changed(o, n):
			case !apiequality.Semantic.DeepEqual(o.Status, n.Status):
				w.nodeStatus.Add(1)
			default:
				w.nodeOther.Add(1)
			}
		},
	}); err != nil {
		b.Fatal(err)
	}
	leases.Start(ctx.Done())
	nodes.Start(ctx.Done())
	for _, synced := range []map[reflect.Type]bool{leases.WaitForCacheSync(ctx.Done()), nodes.WaitForCacheSync(ctx.Done())} {
		for typ, ok := range synced {
			if !ok {
				b.Fatalf("informer of %v not synced", typ)
			}
		}
	}
	b.Cleanup(func() { leases.Shutdown(); nodes.Shutdown() })
	return w
}

// apiStats are the API server's request counters and latency histograms,
// summed over every series whose verb is not WATCH, WATCHLIST or CONNECT
// (long-running requests, whose duration is the watch's).
type apiStats struct {
	count   float64             // requests, from the histograms' counts
	buckets map[float64]float64 // upper bound → cumulative count
	byKind  map[string]float64  // "VERB resource[/subresource]" → requests
}

func scrapeAPI(ctx context.Context, client kubernetes.Interface) (apiStats, error) {
	raw, err := client.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return apiStats{}, fmt.Errorf("scrape the API server's /metrics: %w", err)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(string(raw)))
	if err != nil {
		return apiStats{}, fmt.Errorf("parse the API server's /metrics: %w", err)
	}
	s := apiStats{buckets: map[float64]float64{}, byKind: map[string]float64{}}
	labels := func(m *dto.Metric) map[string]string {
		l := map[string]string{}
		for _, p := range m.GetLabel() {
			l[p.GetName()] = p.GetValue()
		}
		return l
	}
	longRunning := func(verb string) bool { return verb == "WATCH" || verb == "WATCHLIST" || verb == "CONNECT" }
	for _, m := range fams["apiserver_request_duration_seconds"].GetMetric() {
		if longRunning(labels(m)["verb"]) {
			continue
		}
		h := m.GetHistogram()
		s.count += float64(h.GetSampleCount())
		for _, bk := range h.GetBucket() {
			s.buckets[bk.GetUpperBound()] += float64(bk.GetCumulativeCount())
		}
		s.buckets[math.Inf(1)] += float64(h.GetSampleCount())
	}
	for _, m := range fams["apiserver_request_total"].GetMetric() {
		l := labels(m)
		if longRunning(l["verb"]) {
			continue
		}
		kind := l["verb"] + " " + l["resource"]
		if l["resource"] == "" {
			kind = l["verb"] + " (non-resource)"
		}
		if l["subresource"] != "" {
			kind += "/" + l["subresource"]
		}
		s.byKind[kind] += m.GetCounter().GetValue()
	}
	if s.count == 0 {
		return apiStats{}, errors.New("the API server's /metrics has no apiserver_request_duration_seconds")
	}
	return s, nil
}

func (a apiStats) sub(b apiStats) apiStats {
	d := apiStats{count: a.count - b.count, buckets: map[float64]float64{}, byKind: map[string]float64{}}
	for k, v := range a.buckets {
		d.buckets[k] = v - b.buckets[k]
	}
	for k, v := range a.byKind {
		if v-b.byKind[k] > 0 {
			d.byKind[k] = v - b.byKind[k]
		}
	}
	return d
}

// quantile is Prometheus' histogram_quantile over the buckets, in
// seconds: linear within the bucket the rank falls in; the highest finite
// bound if it falls in +Inf.
func (a apiStats) quantile(q float64) float64 {
	if a.count <= 0 {
		return math.NaN()
	}
	var bounds []float64
	for k := range a.buckets {
		bounds = append(bounds, k)
	}
	sort.Float64s(bounds)
	rank := q * a.count
	prevBound, prevCount := 0.0, 0.0
	for _, ub := range bounds {
		n := a.buckets[ub]
		if n >= rank {
			if math.IsInf(ub, 1) {
				return prevBound
			}
			if n == prevCount {
				return ub
			}
			return prevBound + (ub-prevBound)*(rank-prevCount)/(n-prevCount)
		}
		prevBound, prevCount = ub, n
	}
	return prevBound
}

// top lists the n most frequent kinds of request, per minute.
func (a apiStats) top(n int, elapsed time.Duration) string {
	kinds := make([]string, 0, len(a.byKind))
	for k := range a.byKind {
		kinds = append(kinds, k)
	}
	sort.Slice(kinds, func(i, j int) bool { return a.byKind[kinds[i]] > a.byKind[kinds[j]] })
	var out []string
	for _, k := range kinds[:min(n, len(kinds))] {
		out = append(out, fmt.Sprintf("%s %.0f", k, a.byKind[k]/elapsed.Minutes()))
	}
	return strings.Join(out, ", ")
}

func memAvailableGiB() float64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return math.NaN()
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "MemAvailable:"); ok {
			k, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return float64(k) / (1 << 20)
		}
	}
	return math.NaN()
}

func scalePod(node string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: node, Namespace: "default", Labels: map[string]string{"app": "scale"}},
		Spec: corev1.PodSpec{
			NodeName:                      node,
			TerminationGracePeriodSeconds: new(int64),
			Containers: []corev1.Container{{Name: "main", Image: "busybox", ImagePullPolicy: corev1.PullIfNotPresent,
				Command: []string{"sleep", "3600"}}},
		},
	}
}

// waitAgentsReady waits until every agent's Node is Ready with a podCIDR,
// or an agent exits.
func waitAgentsReady(ctx context.Context, client kubernetes.Interface, agents []*scaleAgent) error {
	var notReady []string
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 5*time.Minute, true, func(ctx context.Context) (bool, error) {
		for _, a := range agents {
			select {
			case <-a.p.Done():
				return false, fmt.Errorf("agent %s exited: %v\n%s", a.name, a.p.Wait(time.Minute), framework.Tail(a.p.Output(), 30))
			default:
			}
		}
		list, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, nil
		}
		ready := map[string]bool{}
		for _, n := range list.Items {
			for _, cond := range n.Status.Conditions {
				if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue && n.Spec.PodCIDR != "" {
					ready[n.Name] = true
				}
			}
		}
		notReady = notReady[:0]
		for _, a := range agents {
			if !ready[a.name] {
				notReady = append(notReady, a.name)
			}
		}
		return len(notReady) == 0, nil
	})
	if err != nil {
		return fmt.Errorf("nodes not Ready with a podCIDR: %v: %w", notReady, err)
	}
	return nil
}

// waitScalePods waits until the pod of every agent is Running and Ready.
func waitScalePods(ctx context.Context, client kubernetes.Interface, agents []*scaleAgent) error {
	var waiting []string
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 5*time.Minute, true, func(ctx context.Context) (bool, error) {
		list, err := client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=scale"})
		if err != nil {
			return false, nil
		}
		running := map[string]bool{}
		for i := range list.Items {
			if framework.Running(&list.Items[i]) {
				running[list.Items[i].Name] = true
			}
		}
		waiting = waiting[:0]
		for _, a := range agents {
			if !running[a.name] {
				waiting = append(waiting, a.name)
			}
		}
		return len(waiting) == 0, nil
	})
	if err != nil {
		return fmt.Errorf("pods not Running: %v: %w", waiting, err)
	}
	return nil
}

// agentPid finds the `pocketkube agent` process of node name: nsenter
// execs it, so its second argument is "agent". (`ip netns pids` misses
// processes at times: it stops at a process that exits while it scans.)
func agentPid(name string) (int, error) {
	want := "\x00--node-name\x00" + name + "\x00"
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil {
			continue
		}
		if args := strings.Split(string(cmdline), "\x00"); len(args) > 1 && args[1] == "agent" && strings.Contains(string(cmdline), want) {
			return pid, nil
		}
	}
	return 0, fmt.Errorf("no agent process with --node-name %s", name)
}

func checkAgentsAlive(b *testing.B, agents []*scaleAgent) {
	b.Helper()
	for _, a := range agents {
		select {
		case <-a.p.Done():
			b.Fatalf("agent %s exited: %v\n%s", a.name, a.p.Wait(time.Minute), framework.Tail(a.p.Output(), 30))
		default:
		}
	}
}

// stopAgents deletes the agents' pods, stops the agents (Ctrl-C) and
// removes their namespaces, then checks that nothing of them is left: no
// namespace, no mount under dir, no cgroup root.
func stopAgents(b *testing.B, client kubernetes.Interface, agents []*scaleAgent, dir string) {
	if len(agents) == 0 {
		return
	}
	// The benchmark's context may be done (a failed step): the cleanup
	// needs its own.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	start := time.Now()
	zero := int64(0)
	if err := client.CoreV1().Pods("default").DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: &zero},
		metav1.ListOptions{LabelSelector: "app=scale"}); err != nil {
		b.Errorf("delete the pods: %v", err)
	}
	err := wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, 3*time.Minute, true, func(ctx context.Context) (bool, error) {
		list, err := client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=scale"})
		return err == nil && len(list.Items) == 0, nil
	})
	if err != nil {
		b.Errorf("pods not gone: %v", err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	for _, a := range agents {
		wg.Go(func() {
			if a.p != nil {
				if err := a.p.Stop(time.Minute); err != nil {
					mu.Lock()
					b.Errorf("stop agent %s: %v\n%s", a.name, err, framework.Tail(a.p.Output(), 20))
					mu.Unlock()
				}
			}
			if err := a.ns.Remove(a.dataDir); err != nil {
				mu.Lock()
				b.Errorf("clean up agent %s: %v", a.name, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	b.Logf("%d agents' pods deleted, agents stopped and their namespaces removed in %.1f s", len(agents), time.Since(start).Seconds())
	if out, err := exec.Command("ip", "netns", "list").Output(); err == nil {
		for _, a := range agents {
			if strings.Contains(string(out), a.ns.Name+" ") || strings.Contains(string(out), a.ns.Name+"\n") {
				b.Errorf("network namespace left: %s", a.ns.Name)
			}
		}
	}
	if mounts, err := os.ReadFile("/proc/self/mounts"); err == nil && strings.Contains(string(mounts), " "+dir+"/") {
		b.Errorf("mounts left under %s", dir)
	}
	for _, a := range agents {
		if d := a.ns.CgroupDirs(); len(d) > 0 {
			b.Errorf("cgroups left: %v", d)
		}
	}
}

// logScaleTable prints the steps' figures side by side, and per node where a
// figure is a sum over the nodes (nodes = agents + the server's own).
func logScaleTable(b *testing.B, results []scaleResult) {
	var t strings.Builder
	row := func(name string, f func(r scaleResult) string) {
		fmt.Fprintf(&t, "%-34s", name)
		for _, r := range results {
			fmt.Fprintf(&t, " %14s", f(r))
		}
		t.WriteString("\n")
	}
	f1 := func(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }
	f2 := func(v float64) string { return strconv.FormatFloat(v, 'f', 2, 64) }
	perNode := func(v float64, r scaleResult) string { return f2(v / float64(r.agents+1)) }
	row("agents (Nodes = agents + 1)", func(r scaleResult) string { return strconv.Itoa(r.agents) })
	row("step start → all Ready s", func(r scaleResult) string { return f1(r.join.Seconds()) })
	row("step start → all pods Running s", func(r scaleResult) string { return f1(r.podsRunning.Seconds()) })
	row("server RSS MiB", func(r scaleResult) string { return f1(r.serverRSS) })
	row("server CPU s/min", func(r scaleResult) string { return f2(r.serverCPU) })
	row("lease writes /min", func(r scaleResult) string { return f1(r.leaseWrites) })
	row("  per node", func(r scaleResult) string { return perNode(r.leaseWrites, r) })
	row("node status writes /min", func(r scaleResult) string { return f1(r.nodeStatusWrites) })
	row("  per node", func(r scaleResult) string { return perNode(r.nodeStatusWrites, r) })
	row("node status writes since start", func(r scaleResult) string { return strconv.FormatInt(r.nodeStatusTotal, 10) })
	row("node other writes /min", func(r scaleResult) string { return f1(r.nodeOtherWrites) })
	row("API requests /min (no watches)", func(r scaleResult) string { return f1(r.apiRequests) })
	row("  per node", func(r scaleResult) string { return perNode(r.apiRequests, r) })
	row("API p99 ms (server histograms)", func(r scaleResult) string { return f1(r.apiP99) })
	row("probe GET node p50 / p99 ms", func(r scaleResult) string {
		return f1(ms(quantile(r.getNode, 0.5))) + " / " + f1(ms(quantile(r.getNode, 0.99)))
	})
	row("probe LIST pods p50 / p99 ms", func(r scaleResult) string {
		return f1(ms(quantile(r.listPods, 0.5))) + " / " + f1(ms(quantile(r.listPods, 0.99)))
	})
	row("agent RSS p50 MiB", func(r scaleResult) string { return f1(r.agentRSS) })
	row("agent RssAnon p50 MiB", func(r scaleResult) string { return f1(r.agentAnon) })
	row("agent CPU p50 s/min", func(r scaleResult) string { return f2(r.agentCPU) })
	row("all agents CPU s/min", func(r scaleResult) string { return f1(r.agentsCPU) })
	row("machine MemAvailable GiB", func(r scaleResult) string { return f1(r.memAvailable) })
	for _, r := range results {
		fmt.Fprintf(&t, "%d agents: loadavg %s; most frequent requests /min: %s\n", r.agents, r.loadavg, r.topRequests)
	}
	// Printed, not logged: go test keeps only the first lines of a
	// benchmark's log.
	fmt.Printf("BenchmarkAgentScale, window %s after %s idle:\n%s", *scaleWindow, *scaleSettle, t.String())
}
