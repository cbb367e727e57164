package bootstrap

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	discoverylisters "k8s.io/client-go/listers/discovery/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
	bootstrapapi "k8s.io/cluster-bootstrap/token/api"
	"k8s.io/klog/v2"

	"github.com/pocketkube/pocketkube/internal/keeper"
	"github.com/pocketkube/pocketkube/internal/node/apilb"
)

// clusterInfoResync is how often KeepClusterInfo looks again without an
// event.
const clusterInfoResync = 30 * time.Second

// KeepClusterInfo keeps kube-public/cluster-info naming a live server, for
// a cluster of several servers, until ctx is done; it returns nil then.
// cluster-info names one API server (kubeadm's format holds one), and a
// node's TLS bootstrap goes to that server whatever server the node
// discovered the cluster through (`kubeadm join` does the same): while it
// is down, no node can join. So when the server it names is not among the
// ready endpoints of the `kubernetes` Service (each API server publishes
// its own and the others remove it once its lease expires, ~15 s after
// it stopped), a server that is among them writes its own URL, self
// (https://HOST:PORT), there. The bootstrapsigner signs the new content
// at once; a joiner that fetches it in between finds a stale signature
// and is refused, and joins when it tries again. Every server runs it; a
// write that meets another's gets a Conflict and the next pass sees a
// live server named.
func KeepClusterInfo(ctx context.Context, client kubernetes.Interface, self string) error {
	if _, err := serverOf(self); err != nil {
		return err
	}
	cmFactory := informers.NewSharedInformerFactoryWithOptions(client, 0,
		informers.WithNamespace(metav1.NamespacePublic),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = "metadata.name=" + bootstrapapi.ConfigMapClusterInfo
		}))
	sliceFactory := informers.NewSharedInformerFactoryWithOptions(client, 0,
		informers.WithNamespace(metav1.NamespaceDefault),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.LabelSelector = discoveryv1.LabelServiceName + "=kubernetes"
		}))
	cms := cmFactory.Core().V1().ConfigMaps()
	apiSlices := sliceFactory.Discovery().V1().EndpointSlices()
	infs := []cache.SharedIndexInformer{cms.Informer(), apiSlices.Informer()}
	loop := keeper.Loop{What: "Keeping kube-public/cluster-info naming a live server", Resync: clusterInfoResync, Retry: retryInterval}
	return keeper.Run(ctx, loop, []keeper.Factory{cmFactory, sliceFactory}, infs, func(ctx context.Context) error {
		return syncClusterInfo(ctx, client, self, cms.Lister(), apiSlices.Lister())
	})
}

// syncClusterInfo makes one pass of KeepClusterInfo over the informers'
// caches.
func syncClusterInfo(ctx context.Context, client kubernetes.Interface, self string, cmLister corelisters.ConfigMapLister, sliceLister discoverylisters.EndpointSliceLister) error {
	cm, err := cmLister.ConfigMaps(metav1.NamespacePublic).Get(bootstrapapi.ConfigMapClusterInfo)
	if err != nil {
		return nil // not made yet (Run makes it), or deleted: Run's to restore
	}
	eps, err := sliceLister.EndpointSlices(metav1.NamespaceDefault).List(labels.Everything())
	if err != nil {
		return err
	}
	live := apilb.Servers(eps)
	named, err := clusterInfoServer(cm)
	if err != nil {
		return err
	}
	me, _ := serverOf(self)
	if len(live) == 0 || slices.Contains(live, named) || !slices.Contains(live, me) {
		return nil
	}
	kubeconfig, err := clientcmd.Load([]byte(cm.Data[bootstrapapi.KubeConfigKey]))
	if err != nil {
		return err
	}
	for _, c := range kubeconfig.Clusters {
		c.Server = self
	}
	data, err := clientcmd.Write(*kubeconfig)
	if err != nil {
		return err
	}
	cm = cm.DeepCopy()
	cm.Data[bootstrapapi.KubeConfigKey] = string(data)
	if _, err := client.CoreV1().ConfigMaps(metav1.NamespacePublic).Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("update ConfigMap %s/%s: %w", metav1.NamespacePublic, cm.Name, err)
	}
	klog.FromContext(ctx).Info("kube-public/cluster-info named a server that is gone: it names this one now", "was", named, "now", self)
	return nil
}

// clusterInfoServer returns HOST:PORT of the server cluster-info's
// kubeconfig names (kubeadm's: one cluster).
func clusterInfoServer(cm *corev1.ConfigMap) (string, error) {
	kubeconfig, err := clientcmd.Load([]byte(cm.Data[bootstrapapi.KubeConfigKey]))
	if err != nil {
		return "", fmt.Errorf("ConfigMap %s/%s: %w", cm.Namespace, cm.Name, err)
	}
	if len(kubeconfig.Clusters) != 1 {
		return "", fmt.Errorf("ConfigMap %s/%s holds %d clusters, want one", cm.Namespace, cm.Name, len(kubeconfig.Clusters))
	}
	for _, c := range kubeconfig.Clusters {
		return serverOf(c.Server)
	}
	return "", nil
}

// serverOf returns HOST:PORT of an https URL with a port.
func serverOf(server string) (string, error) {
	u, err := url.Parse(server)
	if err != nil || u.Scheme != "https" || u.Port() == "" {
		return "", fmt.Errorf("server %q: want https://HOST:PORT", server)
	}
	return u.Host, nil
}
