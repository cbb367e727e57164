package bootstrap

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"reflect"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"

	"github.com/pocketkube/pocketkube/internal/keeper"
)

// The Service that publishes the cluster DNS server, named as kubeadm names
// CoreDNS's.
const (
	metaSystemNamespace = metav1.NamespaceSystem
	kubeDNSName         = "kube-dns"
	// ManagedBy is the endpointslice.kubernetes.io/managed-by value of the
	// EndpointSlice ensureDNSService writes; the EndpointSlice controller
	// leaves slices of other managers alone.
	ManagedBy = "pocketkube"
)

// ErrClusterIPMismatch is returned by Run when kube-system/kube-dns
// exists with another ClusterIP. A ClusterIP is immutable, and pods already
// have the old one in their resolv.conf, so Run does not replace the
// Service; an operator deletes it if the change is meant.
var ErrClusterIPMismatch = errors.New("kube-dns Service has another ClusterIP")

// ensureDNSService publishes the DNS server of d, listening on
// d.Endpoint port 53, as the Service kube-system/kube-dns with ClusterIP
// d.ServiceIP: a Service without a selector carrying kubeadm's labels and
// ports (dns 53/UDP, dns-tcp 53/TCP, metrics 9153/TCP), and an
// EndpointSlice "kube-dns-pocketkube" owned by it with the dns and dns-tcp
// ports at d.Endpoint (with several servers, KeepDNSEndpoints writes it). The
// EndpointSlice lists no metrics port because the server has no metrics
// endpoint.
//
// ensureDNSService is idempotent: it creates what is missing, updates the
// EndpointSlice when its endpoints changed and restores the Service's
// labels and ports, and it makes no write when everything is in place. It
// returns ErrClusterIPMismatch when the Service has another ClusterIP.
func ensureDNSService(ctx context.Context, client kubernetes.Interface, d DNS) error {
	svc, err := ensureService(ctx, client, d.ServiceIP)
	if err != nil || d.Several {
		return err // several servers: KeepDNSEndpoints publishes the endpoints
	}
	return ensureEndpointSlice(ctx, client, svc, func(got *discoveryv1.EndpointSlice) []discoveryv1.Endpoint {
		return endpointsFor(d, got, nil)
	})
}

// ipFamily is the IP family of ip. An EndpointSlice's AddressType has the
// same values (upstream's EndpointSlice controller converts one to the
// other).
func ipFamily(ip net.IP) corev1.IPFamily {
	if ip.To4() == nil {
		return corev1.IPv6Protocol
	}
	return corev1.IPv4Protocol
}

func desiredService(clusterIP net.IP) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{
			Name:      kubeDNSName,
			Namespace: metaSystemNamespace,
			Labels: map[string]string{
				"k8s-app":                       "kube-dns",
				"kubernetes.io/cluster-service": "true",
				"kubernetes.io/name":            "CoreDNS",
			},
		},
		Spec: corev1.ServiceSpec{
			Type:       corev1.ServiceTypeClusterIP,
			ClusterIP:  clusterIP.String(),
			ClusterIPs: []string{clusterIP.String()},
			IPFamilies: []corev1.IPFamily{ipFamily(clusterIP)},
			Ports: []corev1.ServicePort{
				{Name: "dns", Port: 53, Protocol: corev1.ProtocolUDP, TargetPort: intstr.FromInt32(53)},
				{Name: "dns-tcp", Port: 53, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(53)},
				{Name: "metrics", Port: 9153, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(9153)},
			},
		},
	}
}

func ensureService(ctx context.Context, client kubernetes.Interface, clusterIP net.IP) (*corev1.Service, error) {
	logger := klog.FromContext(ctx)
	want := desiredService(clusterIP)
	services := client.CoreV1().Services(metaSystemNamespace)
	svc, err := services.Get(ctx, kubeDNSName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		svc, err = services.Create(ctx, want, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) { // created meanwhile; check it below
			svc, err = services.Get(ctx, kubeDNSName, metav1.GetOptions{})
		} else if err == nil {
			logger.Info("Created Service", "service", klog.KObj(svc), "clusterIP", clusterIP.String())
			return svc, nil
		}
	}
	if err != nil {
		return nil, fmt.Errorf("ensure Service %s/%s: %w", metaSystemNamespace, kubeDNSName, err)
	}
	if got := net.ParseIP(svc.Spec.ClusterIP); got == nil || !got.Equal(clusterIP) {
		return nil, fmt.Errorf("ensure Service %s: has %s, want %s: %w",
			klog.KObj(svc), svc.Spec.ClusterIP, clusterIP, ErrClusterIPMismatch)
	}
	upd := svc.DeepCopy()
	changed := false
	for k, v := range want.Labels {
		if upd.Labels[k] != v {
			if upd.Labels == nil {
				upd.Labels = map[string]string{}
			}
			upd.Labels[k] = v
			changed = true
		}
	}
	if !portsEqual(upd.Spec.Ports, want.Spec.Ports) {
		upd.Spec.Ports = want.Spec.Ports
		changed = true
	}
	if !changed {
		return svc, nil
	}
	svc, err = services.Update(ctx, upd, metav1.UpdateOptions{})
	if err != nil {
		return nil, fmt.Errorf("update Service %s: %w", klog.KObj(upd), err)
	}
	logger.Info("Updated Service", "service", klog.KObj(svc))
	return svc, nil
}

// portsEqual compares the fields ensureDNSService sets; the API server fills in
// others (NodePort, AppProtocol) that do not matter here.
func portsEqual(a, b []corev1.ServicePort) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Name != b[i].Name || a[i].Port != b[i].Port || a[i].Protocol != b[i].Protocol || a[i].TargetPort != b[i].TargetPort {
			return false
		}
	}
	return true
}

// endpointSliceName is fixed, so ensureDNSService finds its slice without a
// list.
const endpointSliceName = kubeDNSName + "-" + ManagedBy

func desiredEndpointSlice(svc *corev1.Service, family corev1.IPFamily, endpoints []discoveryv1.Endpoint) *discoveryv1.EndpointSlice {
	return &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			Name:      endpointSliceName,
			Namespace: svc.Namespace,
			Labels: map[string]string{
				discoveryv1.LabelServiceName: svc.Name,
				discoveryv1.LabelManagedBy:   ManagedBy,
			},
			// Owned by the Service, so the garbage collector deletes it
			// with the Service.
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(svc, corev1.SchemeGroupVersion.WithKind("Service"))},
		},
		AddressType: discoveryv1.AddressType(family),
		Endpoints:   endpoints,
		Ports: []discoveryv1.EndpointPort{
			{Name: ptr.To("dns"), Port: ptr.To[int32](53), Protocol: ptr.To(corev1.ProtocolUDP)},
			{Name: ptr.To("dns-tcp"), Port: ptr.To[int32](53), Protocol: ptr.To(corev1.ProtocolTCP)},
		},
	}
}

// ensureEndpointSlice makes the kube-dns EndpointSlice of svc hold the
// endpoints endpoints returns for the slice there is (nil when there is
// none). An update carries the resourceVersion read: a Conflict (another
// server wrote meanwhile) is returned, for the caller to try again.
func ensureEndpointSlice(ctx context.Context, client kubernetes.Interface, svc *corev1.Service, endpoints func(got *discoveryv1.EndpointSlice) []discoveryv1.Endpoint) error {
	logger := klog.FromContext(ctx)
	api := client.DiscoveryV1().EndpointSlices(svc.Namespace)
	got, err := api.Get(ctx, endpointSliceName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		got = nil
	} else if err != nil {
		return fmt.Errorf("get EndpointSlice %s/%s: %w", svc.Namespace, endpointSliceName, err)
	}
	eps := endpoints(got)
	if len(eps) == 0 {
		return nil // nothing to publish (KeepDNSEndpoints before its node registered)
	}
	want := desiredEndpointSlice(svc, ipFamily(net.ParseIP(eps[0].Addresses[0])), eps)
	endpoint := strings.Join(addresses(eps), ",")
	switch {
	case got == nil:
		if _, err := api.Create(ctx, want, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("create EndpointSlice %s: %w", klog.KObj(want), err)
		}
		logger.Info("Created EndpointSlice", "endpointSlice", klog.KObj(want), "endpoint", endpoint)
		return nil
	}
	if got.AddressType != want.AddressType {
		// AddressType is immutable: replace the slice.
		if err := api.Delete(ctx, got.Name, metav1.DeleteOptions{
			Preconditions: &metav1.Preconditions{UID: &got.UID},
		}); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete EndpointSlice %s: %w", klog.KObj(got), err)
		}
		if _, err := api.Create(ctx, want, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("create EndpointSlice %s: %w", klog.KObj(want), err)
		}
		logger.Info("Replaced EndpointSlice", "endpointSlice", klog.KObj(want), "endpoint", endpoint)
		return nil
	}
	if maps.Equal(got.Labels, want.Labels) && reflect.DeepEqual(got.Endpoints, want.Endpoints) &&
		reflect.DeepEqual(got.Ports, want.Ports) && reflect.DeepEqual(got.OwnerReferences, want.OwnerReferences) {
		return nil
	}
	upd := got.DeepCopy()
	upd.Labels = want.Labels
	upd.OwnerReferences = want.OwnerReferences
	upd.Endpoints = want.Endpoints
	upd.Ports = want.Ports
	if _, err := api.Update(ctx, upd, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("update EndpointSlice %s: %w", klog.KObj(upd), err)
	}
	logger.Info("Updated EndpointSlice", "endpointSlice", klog.KObj(upd), "endpoint", endpoint)
	return nil
}

// serverEndpoint is the endpoint of the DNS server of d, ready or not.
func serverEndpoint(d DNS, ready bool) discoveryv1.Endpoint {
	ep := discoveryv1.Endpoint{
		Addresses:  []string{d.Endpoint.String()},
		Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(ready), Serving: ptr.To(ready), Terminating: ptr.To(false)},
	}
	if d.NodeName != "" {
		ep.NodeName = ptr.To(d.NodeName)
	}
	return ep
}

// endpointsFor returns the endpoints the kube-dns EndpointSlice should
// hold, given the slice there is (nil: none) and, with several servers,
// the cluster's Nodes by name.
//
// One server (d.Several unset): its own endpoint, ready, alone, whatever
// the slice held.
//
// Several servers, each serving cluster DNS at its own address: each
// server's endpoint names its node, and the slice holds one per server.
// A server adds its own and keeps the others' (KeepDNSEndpoints on every
// server), so that pods' DNS queries are spread over the servers as
// kube-proxy spreads them over CoreDNS pods, and a server that stopped
// drops out as a CoreDNS pod on a failed node does: its endpoint is not
// ready while its Node's Ready condition is False or Unknown (the node
// lifecycle controller sets Unknown when the node stops reporting), and
// is removed once its Node is deleted. Endpoints that name no node (a
// single server's, before --cluster-init) or another family are dropped.
// A server publishes its endpoint only once its Node exists, so that
// another server does not remove it for want of one.
func endpointsFor(d DNS, got *discoveryv1.EndpointSlice, nodes map[string]*corev1.Node) []discoveryv1.Endpoint {
	if !d.Several {
		return []discoveryv1.Endpoint{serverEndpoint(d, true)}
	}
	self, ok := nodes[d.NodeName]
	if !ok {
		return nil // not registered yet: nothing to publish until then
	}
	eps := []discoveryv1.Endpoint{serverEndpoint(d, keeper.NodeReady(self))}
	family := discoveryv1.AddressType(ipFamily(d.Endpoint))
	if got != nil && got.AddressType == family {
		for _, ep := range got.Endpoints {
			if ep.NodeName == nil || *ep.NodeName == d.NodeName || slices.Contains(ep.Addresses, d.Endpoint.String()) {
				continue
			}
			node, ok := nodes[*ep.NodeName]
			if !ok {
				continue // its Node was deleted
			}
			ready := keeper.NodeReady(node)
			ep.Conditions = discoveryv1.EndpointConditions{Ready: ptr.To(ready), Serving: ptr.To(ready), Terminating: ptr.To(false)}
			eps = append(eps, ep)
		}
	}
	slices.SortFunc(eps, func(a, b discoveryv1.Endpoint) int { return strings.Compare(*a.NodeName, *b.NodeName) })
	return eps
}

func addresses(eps []discoveryv1.Endpoint) []string {
	var out []string
	for _, ep := range eps {
		out = append(out, ep.Addresses...)
	}
	return out
}
