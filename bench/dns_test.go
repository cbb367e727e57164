//go:build bench

package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/pocketkube/pocketkube/test/framework"
)

// BenchmarkDNS measures cluster DNS query latency from a pod: bench/dns,
// a static Go DNS client in the busybox image, runs in a pod and sends
// queries one after the other to the kube-dns Service (10.96.0.10,
// through kube-proxy's nftables rules to the node's DNS server), each on
// a new UDP socket as a libc resolver does. An iteration is a batch: 1000
// A queries for kubernetes.default.svc.cluster.local (NOERROR), or 200
// for www.example.com.default.svc.cluster.local (NXDOMAIN: the first
// name a pod's resolver tries for www.example.com, ndots:5). Percentiles
// are nearest-rank over all queries of the run; failed queries are
// counted.
func BenchmarkDNS(b *testing.B) {
	c := startCluster(b)
	importDNSImage(b, c)
	const ns, pod = "default", "dns-bench"
	framework.RunPods(b, c.Client(b), &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: pod},
		Spec: corev1.PodSpec{
			TerminationGracePeriodSeconds: new(int64),
			Containers: []corev1.Container{{
				Name: "main", Image: dnsBenchImage, ImagePullPolicy: corev1.PullIfNotPresent,
				Command: []string{"sleep", "3600"},
			}},
		},
	})
	// The Service and its EndpointSlice are published after `up`: wait for
	// an answer before measuring.
	err := wait.PollUntilContextTimeout(b.Context(), 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		out, err := c.PodExec(ctx, ns, pod, "/bin/dns", "query", "kubernetes.default.svc.cluster.local", "A")
		return err == nil && strings.Contains(out, `"rcode":"NOERROR"`), nil
	})
	if err != nil {
		b.Fatalf("no DNS answer from the pod: %v", err)
	}
	for _, q := range []struct {
		rcode, name string
		n           int
	}{
		{"NOERROR", "kubernetes.default.svc.cluster.local", 1000},
		{"NXDOMAIN", "www.example.com.default.svc.cluster.local", 200},
	} {
		b.Run(q.rcode, func(b *testing.B) {
			var lat []time.Duration
			queries, failed := 0, 0
			for b.Loop() {
				out, err := c.PodExec(b.Context(), ns, pod, "/bin/dns", "bench", "--n", fmt.Sprint(q.n), "--rcode", q.rcode, q.name, "A")
				if err != nil {
					b.Fatal(err)
				}
				var r struct {
					Queries   int             `json:"queries"`
					Failed    int             `json:"failed"`
					Latencies []time.Duration `json:"latenciesNs"`
				}
				if err := json.Unmarshal([]byte(out), &r); err != nil {
					b.Fatalf("dns bench printed %q: %v", out, err)
				}
				lat = append(lat, r.Latencies...)
				queries, failed = queries+r.Queries, failed+r.Failed
			}
			noNsPerOp(b)
			slices.Sort(lat)
			for _, p := range []int{50, 90, 99} {
				b.ReportMetric(ms(nearestRank(lat, p)), fmt.Sprintf("query-p%d-ms", p))
			}
			b.ReportMetric(ms(lat[len(lat)-1]), "query-max-ms")
			b.ReportMetric(float64(failed), "failed")
			b.ReportMetric(float64(queries), "queries")
		})
	}
}

// nearestRank is the p-th percentile of sorted by the nearest-rank
// method, as bench/dns computed it in the pod.
func nearestRank(sorted []time.Duration, p int) time.Duration {
	i := max((p*len(sorted)+99)/100, 1)
	return sorted[i-1]
}

const dnsBenchImage = "pocketkube.bench/dns:1"

// importDNSImage builds bench/dns statically and imports busybox with it
// at /bin/dns into c.
func importDNSImage(b *testing.B, c *framework.Cluster) {
	b.Helper()
	dir := b.TempDir()
	bin := filepath.Join(dir, "dns")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", bin, "./dns")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("go build ./bench/dns: %v\n%s", err, out)
	}
	tarPath := filepath.Join(dir, "dns.tar")
	if err := framework.BusyboxTar(tarPath, map[string]string{"bin/dns": bin}); err != nil {
		b.Fatal(err)
	}
	if err := c.ImportImage(b.Context(), dnsBenchImage, tarPath); err != nil {
		b.Fatal(err)
	}
}
