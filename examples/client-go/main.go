// Command client-go lists the pods of a namespace and then watches them,
// using the official Go client library, k8s.io/client-go. It is the Go
// version of the chapter's "talking to the API server through a client
// library": the same program runs on the host with a kubeconfig and inside
// a pod with the pod's service account.
//
// On the host, with the kubeconfig `pocketkube up` writes:
//
//	go run ./examples/client-go --kubeconfig /var/lib/pocketkube/kubeconfig --namespace default --watch-for 4
//
// In a pod, leave out --kubeconfig: rest.InClusterConfig then reads the
// token and CA that the node mounted under
// /var/run/secrets/kubernetes.io/serviceaccount and finds the API server
// through the KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT variables
// of the `kubernetes` Service. The pod's service account needs a Role that
// allows list and watch on pods (see examples/README.md).
//
// The output is the pod names, then one line per watch event:
//
//	Pods in namespace default:
//	  pod-a
//	  pod-b
//	Watching for 4 events from resourceVersion 1234
//	ADDED pod-c
//	MODIFIED pod-c
//	MODIFIED pod-c
//	DELETED pod-c
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// namespaceFile is where the node puts the pod's own namespace, next to the
// service account's token and the cluster's CA certificate.
const namespaceFile = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

// options are the command line flags.
type options struct {
	kubeconfig string
	namespace  string
	selector   string
	watchFor   int
	timeout    int // seconds
}

func main() {
	var o options
	flag.StringVar(&o.kubeconfig, "kubeconfig", "", "path to a kubeconfig file; empty means the in-cluster config of the pod this runs in")
	flag.StringVar(&o.namespace, "namespace", "", "namespace to list and watch; empty means the kubeconfig context's namespace, or the pod's own namespace in a cluster")
	flag.StringVar(&o.selector, "selector", "", "only pods with these labels, as in `kubectl get pods -l` (e.g. app=demo)")
	flag.IntVar(&o.watchFor, "watch-for", 0, "after listing, watch until this many events have arrived (0: list only)")
	flag.IntVar(&o.timeout, "timeout", 60, "give up watching after this many seconds")
	flag.Parse()

	// Ctrl-C (or the SIGTERM a pod gets on deletion) cancels the watch.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options) error {
	config, namespace, err := loadConfig(o.kubeconfig)
	if err != nil {
		return err
	}
	if o.namespace != "" {
		namespace = o.namespace
	}
	// A Clientset has a typed client for every built-in API group:
	// CoreV1() for pods, AppsV1() for deployments, BatchV1() for jobs...
	clientset, err := kubernetes.NewForConfig(config)
	if err != nil {
		return fmt.Errorf("create client: %w", err)
	}
	pods := clientset.CoreV1().Pods(namespace)

	// GET /api/v1/namespaces/NAMESPACE/pods, as `kubectl get pods` does.
	list, err := pods.List(ctx, metav1.ListOptions{LabelSelector: o.selector})
	if err != nil {
		return fmt.Errorf("list pods in namespace %s: %w", namespace, err)
	}
	fmt.Printf("Pods in namespace %s:\n", namespace)
	for _, pod := range list.Items {
		fmt.Printf("  %s\n", pod.Name)
	}
	if o.watchFor <= 0 {
		return nil
	}

	// The same URL with ?watch=true keeps the response open and streams one
	// event per change. Starting at the list's resourceVersion means no
	// change between the list and the watch is lost, and the pods already
	// listed are not sent again as ADDED events.
	//
	// A plain watch ends when the server closes it (after timeoutSeconds, or
	// a few minutes by default). Long-running programs use an informer
	// (k8s.io/client-go/informers) or watch.NewRetryWatcherWithContext
	// (k8s.io/client-go/tools/watch), which list and re-watch for you.
	fmt.Printf("Watching for %d events from resourceVersion %s\n", o.watchFor, list.ResourceVersion)
	ctx, cancel := context.WithTimeout(ctx, time.Duration(o.timeout)*time.Second)
	defer cancel()
	timeoutSeconds := int64(o.timeout)
	w, err := pods.Watch(ctx, metav1.ListOptions{
		LabelSelector:   o.selector,
		ResourceVersion: list.ResourceVersion,
		TimeoutSeconds:  &timeoutSeconds,
	})
	if err != nil {
		return fmt.Errorf("watch pods in namespace %s: %w", namespace, err)
	}
	defer w.Stop()

	for seen := 0; seen < o.watchFor; {
		select {
		case <-ctx.Done():
			return fmt.Errorf("watch pods in namespace %s: stopped after %d of %d events: %w", namespace, seen, o.watchFor, ctx.Err())
		case event, ok := <-w.ResultChan():
			if !ok {
				return fmt.Errorf("watch pods in namespace %s: stopped after %d of %d events: closed by the server", namespace, seen, o.watchFor)
			}
			switch event.Type {
			case watch.Added, watch.Modified, watch.Deleted:
				pod := event.Object.(*corev1.Pod)
				fmt.Printf("%s %s\n", event.Type, pod.Name)
				seen++
			case watch.Error:
				// The server ends a watch with an error event, for example
				// 410 Gone when the resourceVersion is too old.
				return fmt.Errorf("watch pods in namespace %s: %w", namespace, apierrors.FromObject(event.Object))
			}
		}
	}
	return nil
}

// loadConfig returns how to reach the API server, and the namespace to use
// when --namespace is not given.
func loadConfig(kubeconfig string) (*rest.Config, string, error) {
	if kubeconfig == "" {
		// Inside a pod. This fails outside a cluster, with
		// rest.ErrNotInCluster when KUBERNETES_SERVICE_HOST is unset.
		config, err := rest.InClusterConfig()
		if errors.Is(err, rest.ErrNotInCluster) {
			return nil, "", fmt.Errorf("%w (pass --kubeconfig outside a cluster)", err)
		}
		if err != nil {
			return nil, "", fmt.Errorf("load in-cluster config: %w", err)
		}
		namespace, err := os.ReadFile(namespaceFile)
		if err != nil {
			return nil, "", fmt.Errorf("read the pod's namespace: %w", err)
		}
		return config, strings.TrimSpace(string(namespace)), nil
	}
	// The kubeconfig's current context names the cluster (server URL and
	// CA), the user (here a client certificate) and maybe a namespace:
	// what kubectl --kubeconfig reads.
	loader := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(
		&clientcmd.ClientConfigLoadingRules{ExplicitPath: kubeconfig},
		&clientcmd.ConfigOverrides{},
	)
	config, err := loader.ClientConfig()
	if err != nil {
		return nil, "", fmt.Errorf("load kubeconfig %s: %w", kubeconfig, err)
	}
	namespace, _, err := loader.Namespace()
	if err != nil {
		return nil, "", fmt.Errorf("load kubeconfig %s: %w", kubeconfig, err)
	}
	return config, namespace, nil
}
