package apilb

import (
	"context"
	"errors"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"

	"github.com/pocketkube/pocketkube/internal/atomicfile"
	"github.com/pocketkube/pocketkube/internal/keeper"
)

// keepResync is how often Keep looks at the endpoints without an event.
const keepResync = time.Minute

// maxSaved is how many servers a saved file may name; the rest of a
// longer one is ignored.
const maxSaved = 64

// Keep makes lb try the API servers of the `kubernetes` Service's
// EndpointSlices (namespace default, port https), ready ones only, and
// saves them in file, one HOST:PORT a line, for the next start (Saved),
// until ctx is done. When the slices list no ready server, lb keeps the
// servers it had. client's connections should go through lb.
func Keep(ctx context.Context, client kubernetes.Interface, lb *LB, file string) error {
	factory := informers.NewSharedInformerFactoryWithOptions(client, 0,
		informers.WithNamespace(metav1.NamespaceDefault),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.LabelSelector = discoveryv1.LabelServiceName + "=kubernetes"
		}))
	apiSlices := factory.Discovery().V1().EndpointSlices()
	infs := []cache.SharedIndexInformer{apiSlices.Informer()}
	saved := Saved(file)
	loop := keeper.Loop{What: "Keeping the API servers of the load balancer", Resync: keepResync, Retry: time.Second}
	return keeper.Run(ctx, loop, []keeper.Factory{factory}, infs, func(ctx context.Context) error {
		all, err := apiSlices.Lister().EndpointSlices(metav1.NamespaceDefault).List(labels.Everything())
		if err != nil {
			return err
		}
		servers := Servers(all)
		if len(servers) == 0 {
			return nil
		}
		lb.SetServers(servers)
		if slices.Equal(servers, saved) {
			return nil
		}
		if err := atomicfile.Write(file, []byte(strings.Join(servers, "\n")+"\n"), 0o644); err != nil {
			return err
		}
		klog.FromContext(ctx).Info("API servers of the load balancer", "servers", servers)
		saved = servers
		return nil
	})
}

// Servers returns the HOST:PORT of each ready endpoint of the slices, at
// their port named https, sorted, each once.
func Servers(eps []*discoveryv1.EndpointSlice) []string {
	var out []string
	for _, s := range eps {
		var port int32
		for _, p := range s.Ports {
			if p.Name != nil && *p.Name == "https" && p.Port != nil {
				port = *p.Port
			}
		}
		if port == 0 {
			continue
		}
		for _, ep := range s.Endpoints {
			if ep.Conditions.Ready != nil && !*ep.Conditions.Ready {
				continue
			}
			for _, a := range ep.Addresses {
				out = append(out, net.JoinHostPort(a, strconv.Itoa(int(port))))
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// Saved returns the servers Keep saved in file; none when there is no
// such file. Lines that are not HOST:PORT are skipped.
func Saved(file string) []string {
	data, err := os.ReadFile(file)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			klog.Background().Info("Reading the saved API servers", "file", file, "err", err)
		}
		return nil
	}
	var out []string
	for _, line := range strings.Split(string(data), "\n") {
		if _, _, err := net.SplitHostPort(line); err != nil || len(out) == maxSaved {
			continue
		}
		out = append(out, line)
	}
	return out
}
