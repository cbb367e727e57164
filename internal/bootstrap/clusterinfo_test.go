package bootstrap

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	bootstrapapi "k8s.io/cluster-bootstrap/token/api"
	"k8s.io/klog/v2/ktesting"
	"k8s.io/utils/ptr"
)

// TestKeepClusterInfo runs the keepers of three servers on one fake API:
// cluster-info stays on its server while that one is among the
// `kubernetes` endpoints, and names a live server, with the CA and the
// signature key left as they were, once it is not; a server that is not
// among the endpoints itself never writes.
func TestKeepClusterInfo(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	info, err := clientcmd.Write(clientcmdapi.Config{Clusters: map[string]*clientcmdapi.Cluster{
		"": {Server: "https://192.0.2.1:6443", CertificateAuthorityData: []byte("CA")},
	}})
	if err != nil {
		t.Fatal(err)
	}
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: metav1.NamespacePublic, Name: bootstrapapi.ConfigMapClusterInfo},
		Data:       map[string]string{bootstrapapi.KubeConfigKey: string(info), bootstrapapi.JWSSignatureKeyPrefix + "abcdef": "sig"},
	}
	apiSlice := func(ips ...string) *discoveryv1.EndpointSlice {
		s := &discoveryv1.EndpointSlice{
			ObjectMeta:  metav1.ObjectMeta{Namespace: metav1.NamespaceDefault, Name: "kubernetes", Labels: map[string]string{discoveryv1.LabelServiceName: "kubernetes"}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("https"), Port: ptr.To[int32](6443)}},
		}
		for _, ip := range ips {
			s.Endpoints = append(s.Endpoints, discoveryv1.Endpoint{Addresses: []string{ip}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}})
		}
		return s
	}
	client := fake.NewClientset(cm, apiSlice("192.0.2.1", "192.0.2.2"))
	errs := make(chan error, 3)
	for _, self := range []string{"https://192.0.2.1:6443", "https://192.0.2.2:6443", "https://192.0.2.3:6443"} {
		go func() { errs <- KeepClusterInfo(ctx, client, self) }()
	}
	named := func() (string, *corev1.ConfigMap) {
		got, err := client.CoreV1().ConfigMaps(metav1.NamespacePublic).Get(ctx, bootstrapapi.ConfigMapClusterInfo, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		s, err := clusterInfoServer(got)
		if err != nil {
			t.Fatal(err)
		}
		return s, got
	}
	time.Sleep(500 * time.Millisecond) // the keepers' first passes
	if s, _ := named(); s != "192.0.2.1:6443" {
		t.Fatalf("with its server live, cluster-info was rewritten to %s", s)
	}

	// Server 1 stops: its endpoint goes; 2 writes itself, 3 (not among
	// the endpoints) does not.
	if _, err := client.DiscoveryV1().EndpointSlices(metav1.NamespaceDefault).Update(ctx, apiSlice("192.0.2.2"), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	var s string
	var got *corev1.ConfigMap
	err = wait.PollUntilContextTimeout(ctx, 10*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		s, got = named()
		return s != "192.0.2.1:6443", nil
	})
	if err != nil || s != "192.0.2.2:6443" {
		t.Fatalf("with server 1 gone, cluster-info names %s (%v), want 192.0.2.2:6443", s, err)
	}
	kc, err := clientcmd.Load([]byte(got.Data[bootstrapapi.KubeConfigKey]))
	if err != nil || len(kc.Clusters) != 1 || string(kc.Clusters[""].CertificateAuthorityData) != "CA" {
		t.Errorf("rewritten cluster-info: %v %v, want one cluster with the CA kept", kc, err)
	}
	if got.Data[bootstrapapi.JWSSignatureKeyPrefix+"abcdef"] != "sig" {
		t.Errorf("the signature key went: %v (the bootstrapsigner replaces it)", got.Data)
	}

	time.Sleep(300 * time.Millisecond) // any other write
	var updates int
	for _, a := range client.Actions() {
		if a.GetVerb() == "update" && a.GetResource().Resource == "configmaps" {
			updates++
		}
	}
	if updates != 1 {
		t.Errorf("%d updates of cluster-info, want 1 (server 2's; server 3 is not among the endpoints)", updates)
	}

	// No endpoint at all: left alone.
	if _, err := client.DiscoveryV1().EndpointSlices(metav1.NamespaceDefault).Update(ctx, apiSlice(), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if s, _ := named(); s != "192.0.2.2:6443" {
		t.Errorf("with no endpoint, cluster-info was rewritten to %s", s)
	}
	cancel()
	for range 3 {
		if err := <-errs; err != nil {
			t.Errorf("KeepClusterInfo: %v", err)
		}
	}
}
