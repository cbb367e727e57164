// Command services measures how fast Service traffic follows an
// EndpointSlice change against a running cluster: two busybox httpd pods
// each serve their own name, a ClusterIP Service selects one of them, and
// each change moves the Service's selector to the other. The clock starts
// when this program's EndpointSlice watch sees the slice hold only the new
// backend (the moment kube-proxy's watch sees it too), and stops when a new
// connection from the host to the ClusterIP is answered by the new backend.
// It prints p50/p90/p99/max over the changes, and the same from the
// selector PATCH's acknowledgement.
// Usage: go run ./bench/services --kubeconfig K --changes 20
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

const (
	name     = "bench-svc"
	labelKey = "bench-svc-backend"
)

func main() {
	kubeconfig := flag.String("kubeconfig", "", "admin kubeconfig")
	changes := flag.Int("changes", 20, "selector changes to measure")
	gap := flag.Duration("gap", 1500*time.Millisecond, "pause between changes; kube-proxy syncs at most once per minSyncPeriod (1s), so a shorter gap measures that wait too")
	image := flag.String("image", "busybox", "image (must be present on the node)")
	flag.Parse()
	if err := run(*kubeconfig, *changes, *gap, *image); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run(kubeconfig string, changes int, gap time.Duration, image string) error {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return err
	}
	client := kubernetes.NewForConfigOrDie(cfg)
	ctx := context.Background()
	pods := client.CoreV1().Pods("default")
	backends := []string{name + "-0", name + "-1"}
	defer func() {
		client.CoreV1().Services("default").Delete(ctx, name, metav1.DeleteOptions{})
		for _, b := range backends {
			pods.Delete(ctx, b, metav1.DeleteOptions{GracePeriodSeconds: new(int64)})
		}
	}()
	ips := map[string]string{}
	for i, b := range backends {
		if _, err := pods.Create(ctx, backendPod(b, fmt.Sprint(i), image), metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("create pod %s: %w", b, err)
		}
	}
	for _, b := range backends {
		err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
			p, err := pods.Get(ctx, b, metav1.GetOptions{})
			if err != nil || !ready(p) {
				return false, nil
			}
			ips[b] = p.Status.PodIP
			return true, nil
		})
		if err != nil {
			return fmt.Errorf("pod %s not ready: %w", b, err)
		}
	}
	svc, err := client.CoreV1().Services("default").Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{labelKey: "0"},
			Ports:    []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("create service: %w", err)
	}
	url := "http://" + svc.Spec.ClusterIP + "/"
	httpClient := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	if _, err := waitAnswer(ctx, httpClient, url, backends[0], time.Minute); err != nil {
		return fmt.Errorf("first answer: %w", err)
	}

	var fromSlice, fromPatch []time.Duration
	for i := 1; i <= changes; i++ {
		time.Sleep(gap)
		target := i % 2
		want := backends[target]
		sliceClient := client.DiscoveryV1().EndpointSlices("default")
		list, err := sliceClient.List(ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=" + name})
		if err != nil {
			return err
		}
		w, err := sliceClient.Watch(ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=" + name, ResourceVersion: list.ResourceVersion})
		if err != nil {
			return err
		}
		patch := fmt.Sprintf(`{"spec":{"selector":{%q:"%d"}}}`, labelKey, target)
		if _, err := client.CoreV1().Services("default").Patch(ctx, name, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
			w.Stop()
			return fmt.Errorf("patch selector: %w", err)
		}
		patched := time.Now()
		changed, err := waitSlice(w, ips[want], 30*time.Second)
		w.Stop()
		if err != nil {
			return fmt.Errorf("change %d: %w", i, err)
		}
		answered, err := waitAnswer(ctx, httpClient, url, want, 30*time.Second)
		if err != nil {
			return fmt.Errorf("change %d: %w", i, err)
		}
		fromSlice = append(fromSlice, answered.Sub(changed))
		fromPatch = append(fromPatch, answered.Sub(patched))
	}
	fmt.Printf("| EndpointSlice seen → new backend answers | %d | %s |\n", changes, stats(fromSlice))
	fmt.Printf("| selector PATCH acked → new backend answers | %d | %s |\n", changes, stats(fromPatch))
	return nil
}

func backendPod(name, backend, image string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{labelKey: backend}},
		Spec: corev1.PodSpec{
			TerminationGracePeriodSeconds: new(int64),
			Containers: []corev1.Container{{
				Name:            "web",
				Image:           image,
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

func ready(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
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
func waitAnswer(ctx context.Context, c *http.Client, url, want string, timeout time.Duration) (time.Time, error) {
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

func stats(d []time.Duration) string {
	s := slices.Clone(d)
	slices.Sort(s)
	pct := func(p float64) time.Duration { return s[int(p*float64(len(s)-1)+0.5)] }
	ms := func(d time.Duration) string { return fmt.Sprintf("%.1f", float64(d.Microseconds())/1000) }
	return strings.Join([]string{ms(pct(0.5)), ms(pct(0.9)), ms(pct(0.99)), ms(s[len(s)-1])}, " | ")
}
