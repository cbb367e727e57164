//go:build bench

package bench

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	statsapi "k8s.io/kubelet/pkg/apis/stats/v1alpha1"

	"github.com/pocketkube/pocketkube/test/framework"
)

// BenchmarkStatsSummary measures GET /stats/summary on the kubelet API
// with 100 running pods (each with an emptyDir volume, which the summary
// measures with a walk cached for a minute, its network read in its
// namespace, its writable layer and logs walked, cached for 10 s), as the API server's kubelet client (its
// SubjectAccessReview cached after the first request, as kubelet caches
// it): one request per iteration, reported as p50 and p99.
func BenchmarkStatsSummary(b *testing.B) {
	const pods = 100
	c := podsCluster(b)
	var manifest strings.Builder
	for i := range pods {
		fmt.Fprintf(&manifest, `apiVersion: v1
kind: Pod
metadata: {name: summary-%d, labels: {bench: summary}}
spec:
  terminationGracePeriodSeconds: 0
  containers: [{name: main, image: busybox, imagePullPolicy: IfNotPresent, command: [sh, -c, "trap 'exit 0' TERM; sleep 3600 & wait"], volumeMounts: [{name: scratch, mountPath: /scratch}]}]
  volumes: [{name: scratch, emptyDir: {}}]
---
`, i)
	}
	if _, err := c.KubectlStdin(b.Context(), framework.Newest(), manifest.String(), "apply", "-f", "-"); err != nil {
		b.Fatal(err)
	}
	client := c.Client(b)
	b.Cleanup(func() {
		grace := int64(0)
		client.CoreV1().Pods("default").DeleteCollection(context.Background(), metav1.DeleteOptions{GracePeriodSeconds: &grace}, metav1.ListOptions{LabelSelector: "bench=summary"})
	})
	if err := waitReady(b.Context(), client, "default", "summary", pods); err != nil {
		b.Fatal(err)
	}
	hc, url := kubeletAdmin(b, c)
	get := func() (time.Duration, []statsapi.PodStats) {
		start := time.Now()
		resp, err := hc.Get(url + "/stats/summary")
		if err != nil {
			b.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		took := time.Since(start)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			b.Fatalf("GET /stats/summary: %d %v %.300s", resp.StatusCode, err, body)
		}
		var s statsapi.Summary
		if err := json.Unmarshal(body, &s); err != nil {
			b.Fatal(err)
		}
		return took, s.Pods
	}
	// The first request sends the SubjectAccessReview.
	_, ps := get()
	if len(ps) < pods {
		b.Fatalf("summary has %d pods, want at least %d", len(ps), pods)
	}
	for _, p := range ps {
		if p.Network == nil || len(p.VolumeStats) == 0 || len(p.Containers) == 0 || p.Containers[0].Rootfs == nil {
			b.Fatalf("pod %s lacks network, volume or writable layer stats: %+v", p.PodRef.Name, p)
		}
	}
	var d []time.Duration
	for b.Loop() {
		took, _ := get()
		d = append(d, took)
	}
	noNsPerOp(b)
	reportQuantiles(b, "summary", d, true)
}

// kubeletAdmin is an HTTPS client of c's kubelet API with the API
// server's kubelet client certificate (system:masters), and its base URL.
func kubeletAdmin(b *testing.B, c *framework.Cluster) (*http.Client, string) {
	b.Helper()
	pki := filepath.Join(c.DataDir, "pki")
	cert, err := tls.LoadX509KeyPair(filepath.Join(pki, "apiserver-kubelet-client.crt"), filepath.Join(pki, "apiserver-kubelet-client.key"))
	if err != nil {
		b.Fatal(err)
	}
	caPEM, err := os.ReadFile(filepath.Join(pki, "ca.crt"))
	if err != nil {
		b.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}, ServerName: "localhost"},
	}}
	return hc, "https://127.0.0.1:" + strconv.Itoa(c.KubeletPort)
}

// BenchmarkMetricsIdleRSS measures the RSS metrics-server adds to an idle
// cluster (no pods): per iteration, pocketkube's RSS 40 s after its node
// is Ready (two of metrics-server's 15 s scrapes), once with `--disable
// metrics` and once without.
func BenchmarkMetricsIdleRSS(b *testing.B) {
	idleRSSAdded(b, "metrics", "metrics")
}

// BenchmarkPlatformIdleRSS is BenchmarkMetricsIdleRSS for every part `up
// --disable` can turn off (issue 14's "idle RSS added by all of this"):
// servicelb, the local-path provisioner, the NetworkPolicy enforcer and
// metrics-server.
func BenchmarkPlatformIdleRSS(b *testing.B) {
	idleRSSAdded(b, "servicelb,storage,networkpolicy,metrics", "platform")
}

// idleRSSAdded reports pocketkube's idle RSS with and without `--disable
// parts`, and the difference as what-added-MiB.
func idleRSSAdded(b *testing.B, parts, what string) {
	var with, without []float64
	rss := func(extra ...string) float64 {
		c := startCluster(b, extra...)
		select {
		case <-time.After(40 * time.Second):
		case <-b.Context().Done():
			b.Fatal(b.Context().Err())
		}
		kib, err := rssKiB(c.Pid())
		if err != nil {
			b.Fatal(err)
		}
		stopCluster(b, c)
		return float64(kib) / 1024
	}
	for b.Loop() {
		without = append(without, rss("--disable", parts))
		with = append(with, rss())
	}
	noNsPerOp(b)
	b.ReportMetric(mean(without), "idle-rss-no-"+what+"-MiB")
	b.ReportMetric(mean(with), "idle-rss-MiB")
	b.ReportMetric(mean(with)-mean(without), what+"-added-MiB")
}
