//go:build bench

package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/pocketkube/pocketkube/test/framework"
)

const (
	svcName     = "bench-svc"
	svcLabelKey = "bench-svc-backend"
	// svcGap is the pause between changes: kube-proxy syncs at most once
	// per minSyncPeriod (1 s), so a shorter gap measures that wait too.
	svcGap = 1500 * time.Millisecond
)

// BenchmarkServiceChange measures how fast Service traffic follows an
// EndpointSlice change (kube-proxy's nftables proxier in process): two
// busybox httpd pods each serve their own name, a ClusterIP Service
// selects one of them, and each iteration moves the Service's selector to
// the other. The clock starts when this benchmark's EndpointSlice watch
// sees the slice hold only the new backend (the moment kube-proxy's watch
// sees it too) — slice-answer — or when the selector PATCH returned —
// patch-answer — and stops when a new connection from the host to the
// ClusterIP is answered by the new backend. Changes are 1.5 s apart.
func BenchmarkServiceChange(b *testing.B) {
	c := startCluster(b)
	c.ImportBusybox(b, "busybox")
	client := c.Client(b)
	ctx := b.Context()
	pods := client.CoreV1().Pods("default")
	backends := []string{svcName + "-0", svcName + "-1"}
	ips := map[string]string{}
	for i, name := range backends {
		if _, err := pods.Create(ctx, backendPod(name, fmt.Sprint(i)), metav1.CreateOptions{}); err != nil {
			b.Fatalf("create pod %s: %v", name, err)
		}
	}
	for _, name := range backends {
		err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
			p, err := pods.Get(ctx, name, metav1.GetOptions{})
			if err != nil || !framework.Ready(p) {
				return false, nil
			}
			ips[name] = p.Status.PodIP
			return true, nil
		})
		if err != nil {
			b.Fatalf("pod %s not ready: %v", name, err)
		}
	}
	svc, err := client.CoreV1().Services("default").Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: svcName},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{svcLabelKey: "0"},
			Ports:    []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		b.Fatalf("create service: %v", err)
	}
	url := "http://" + svc.Spec.ClusterIP + "/"
	httpClient := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	if _, err := waitAnswer(httpClient, url, backends[0], time.Minute); err != nil {
		b.Fatalf("first answer: %v", err)
	}

	var fromSlice, fromPatch []time.Duration
	sliceClient := client.DiscoveryV1().EndpointSlices("default")
	sel := metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=" + svcName}
	i := 0
	for b.Loop() {
		i++
		time.Sleep(svcGap)
		target := i % 2
		want := backends[target]
		list, err := sliceClient.List(ctx, sel)
		if err != nil {
			b.Fatal(err)
		}
		wsel := sel
		wsel.ResourceVersion = list.ResourceVersion
		w, err := sliceClient.Watch(ctx, wsel)
		if err != nil {
			b.Fatal(err)
		}
		patch := fmt.Sprintf(`{"spec":{"selector":{%q:"%d"}}}`, svcLabelKey, target)
		if _, err := client.CoreV1().Services("default").Patch(ctx, svcName, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
			w.Stop()
			b.Fatalf("patch selector: %v", err)
		}
		patched := time.Now()
		changed, err := waitSlice(w, ips[want], 30*time.Second)
		w.Stop()
		if err != nil {
			b.Fatalf("change %d: %v", i, err)
		}
		answered, err := waitAnswer(httpClient, url, want, 30*time.Second)
		if err != nil {
			b.Fatalf("change %d: %v", i, err)
		}
		fromSlice = append(fromSlice, answered.Sub(changed))
		fromPatch = append(fromPatch, answered.Sub(patched))
	}
	noNsPerOp(b)
	reportRoundedQuantiles(b, "slice-answer", fromSlice)
	reportRoundedQuantiles(b, "patch-answer", fromPatch)
}

// reportRoundedQuantiles reports p50/p90/p99/max of d as bench/services
// computed them: the sample at the rounded index p·(n-1).
func reportRoundedQuantiles(b *testing.B, name string, d []time.Duration) {
	s := slices.Clone(d)
	slices.Sort(s)
	pct := func(p float64) time.Duration { return s[int(p*float64(len(s)-1)+0.5)] }
	b.ReportMetric(ms(pct(0.5)), name+"-p50-ms")
	b.ReportMetric(ms(pct(0.9)), name+"-p90-ms")
	b.ReportMetric(ms(pct(0.99)), name+"-p99-ms")
	b.ReportMetric(ms(s[len(s)-1]), name+"-max-ms")
}

func backendPod(name, backend string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{svcLabelKey: backend}},
		Spec: corev1.PodSpec{
			TerminationGracePeriodSeconds: new(int64),
			Containers: []corev1.Container{{
				Name:            "web",
				Image:           "busybox",
				ImagePullPolicy: corev1.PullIfNotPresent,
				Command:         []string{"sh", "-c", "mkdir -p /www && echo " + name + " > /www/index.html && exec httpd -f -p 8080 -h /www"},
				ReadinessProbe: &corev1.Probe{
					ProbeHandler:  corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(8080)}},
					PeriodSeconds: 1,
				},
			}},
		},
	}
}

// waitSlice returns when w shows a slice whose only ready endpoint is ip.
func waitSlice(w watch.Interface, ip string, timeout time.Duration) (time.Time, error) {
	deadline := time.After(timeout)
	for {
		select {
		case ev, ok := <-w.ResultChan():
			if !ok {
				return time.Time{}, errors.New("EndpointSlice watch closed")
			}
			s, isSlice := ev.Object.(*discoveryv1.EndpointSlice)
			if !isSlice || ev.Type == watch.Deleted {
				continue
			}
			var readyIPs []string
			for _, e := range s.Endpoints {
				if e.Conditions.Ready == nil || *e.Conditions.Ready {
					readyIPs = append(readyIPs, e.Addresses...)
				}
			}
			if slices.Equal(readyIPs, []string{ip}) {
				return time.Now(), nil
			}
		case <-deadline:
			return time.Time{}, fmt.Errorf("no EndpointSlice with only %s after %s", ip, timeout)
		}
	}
}

// waitAnswer fetches url on new connections until want answers, and
// returns when it did.
func waitAnswer(c *http.Client, url, want string, timeout time.Duration) (time.Time, error) {
	deadline := time.Now().Add(timeout)
	last := ""
	for time.Now().Before(deadline) {
		resp, err := c.Get(url)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			last = strings.TrimSpace(string(body))
			if last == want {
				return time.Now(), nil
			}
		} else {
			last = err.Error()
		}
		time.Sleep(time.Millisecond)
	}
	return time.Time{}, fmt.Errorf("%s never answered on %s (last: %s)", want, url, last)
}
