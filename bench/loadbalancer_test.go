//go:build bench

package bench

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/pocketkube/pocketkube/test/framework"
)

// BenchmarkLoadBalancer measures a LoadBalancer Service from its creation
// to its first answer (servicelb, then kube-proxy's nftables rules): a
// busybox httpd pod serves its name, each iteration creates a
// LoadBalancer Service on a port of its own for it, and the clock runs
// from the create call until the Service's status has an ingress address
// (create-address) and until a new connection from the host to that
// address and port is answered by the pod (create-answer). The Service
// is deleted before the next iteration. The client is not throttled: at
// client-go's default 5 requests a second, the 5 ms polls of the status
// spent the burst and then waited 200 ms per request, which made
// create-address a multiple of 200 ms (~400 ms once the answer came
// sooner than the bucket refilled).
func BenchmarkLoadBalancer(b *testing.B) {
	c := startCluster(b)
	c.ImportBusybox(b, "busybox")
	client := highQPSClient(b, c)
	ctx := b.Context()
	const backend = "bench-lb-0"
	runBackend(b, client, backend, "lb")
	services := client.CoreV1().Services("default")
	httpClient := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	var toAddress, toAnswer []time.Duration
	i := 0
	for b.Loop() {
		i++
		name := fmt.Sprintf("bench-lb-%d", i)
		port := int32(20000 + i)
		start := time.Now()
		_, err := services.Create(ctx, &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: corev1.ServiceSpec{
				Type:     corev1.ServiceTypeLoadBalancer,
				Selector: map[string]string{svcLabelKey: "lb"},
				Ports:    []corev1.ServicePort{{Port: port, TargetPort: intstr.FromInt32(8080)}},
			},
		}, metav1.CreateOptions{})
		if err != nil {
			b.Fatalf("create service %s: %v", name, err)
		}
		var ip string
		err = wait.PollUntilContextTimeout(ctx, 5*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
			svc, err := services.Get(ctx, name, metav1.GetOptions{})
			if err != nil || len(svc.Status.LoadBalancer.Ingress) == 0 {
				return false, nil
			}
			ip = svc.Status.LoadBalancer.Ingress[0].IP
			return true, nil
		})
		if err != nil {
			b.Fatalf("service %s got no address: %v", name, err)
		}
		addressed := time.Now()
		answered, err := waitAnswer(httpClient, "http://"+net.JoinHostPort(ip, strconv.Itoa(int(port)))+"/", backend, 30*time.Second)
		if err != nil {
			b.Fatalf("service %s: %v", name, err)
		}
		toAddress = append(toAddress, addressed.Sub(start))
		toAnswer = append(toAnswer, answered.Sub(start))
		if err := services.Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
			b.Fatalf("delete service %s: %v", name, err)
		}
	}
	noNsPerOp(b)
	reportRoundedQuantiles(b, "create-address", toAddress)
	reportRoundedQuantiles(b, "create-answer", toAnswer)
}

// runBackend creates the backend pod name (backendPod, labelled app) in
// default and waits until it is ready.
func runBackend(b *testing.B, client kubernetes.Interface, name, app string) {
	ctx := b.Context()
	if _, err := client.CoreV1().Pods("default").Create(ctx, backendPod(name, app), metav1.CreateOptions{}); err != nil {
		b.Fatalf("create pod: %v", err)
	}
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		p, err := client.CoreV1().Pods("default").Get(ctx, name, metav1.GetOptions{})
		return err == nil && framework.Ready(p), nil
	})
	if err != nil {
		b.Fatalf("pod %s not ready: %v", name, err)
	}
}
