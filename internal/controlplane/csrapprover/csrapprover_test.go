package csrapprover

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"net"
	"testing"

	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/klog/v2/ktesting"
)

func servingCSR(t *testing.T, user string, groups []string, cn string, dns []string, ips ...string) *certificatesv1.CertificateSigningRequest {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn, Organization: []string{"system:nodes"}}, DNSNames: dns}
	for _, ip := range ips {
		tmpl.IPAddresses = append(tmpl.IPAddresses, net.ParseIP(ip))
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		t.Fatal(err)
	}
	return &certificatesv1.CertificateSigningRequest{
		ObjectMeta: metav1.ObjectMeta{Name: "csr-1"},
		Spec: certificatesv1.CertificateSigningRequestSpec{
			Request:    pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}),
			SignerName: certificatesv1.KubeletServingSignerName,
			Usages:     []certificatesv1.KeyUsage{certificatesv1.UsageDigitalSignature, certificatesv1.UsageServerAuth},
			Username:   user,
			Groups:     groups,
		},
	}
}

var node = &corev1.Node{
	ObjectMeta: metav1.ObjectMeta{Name: "n1"},
	Status: corev1.NodeStatus{Addresses: []corev1.NodeAddress{
		{Type: corev1.NodeInternalIP, Address: "192.0.2.7"},
		{Type: corev1.NodeHostName, Address: "n1"},
	}},
}

func getNode(name string) (*corev1.Node, error) {
	if name == node.Name {
		return node, nil
	}
	return nil, apierrors.NewNotFound(schema.GroupResource{Resource: "nodes"}, name)
}

func TestCheck(t *testing.T) {
	nodes := []string{"system:nodes", "system:authenticated"}
	for _, tt := range []struct {
		name    string
		csr     *certificatesv1.CertificateSigningRequest
		approve bool
		noNode  bool
	}{
		{"the Node's own addresses", servingCSR(t, "system:node:n1", nodes, "system:node:n1", []string{"n1"}, "192.0.2.7"), true, false},
		{"an address the Node does not have", servingCSR(t, "system:node:n1", nodes, "system:node:n1", []string{"n1"}, "192.0.2.7", "192.0.2.8"), false, false},
		{"a name the Node does not have", servingCSR(t, "system:node:n1", nodes, "system:node:n1", []string{"n1", "kubernetes.default"}, "192.0.2.7"), false, false},
		{"fewer names than the Node's", servingCSR(t, "system:node:n1", nodes, "system:node:n1", nil, "192.0.2.7"), false, false},
		{"another node's subject", servingCSR(t, "system:node:n1", nodes, "system:node:n2", []string{"n1"}, "192.0.2.7"), false, false},
		{"not in system:nodes", servingCSR(t, "system:node:n1", []string{"system:authenticated"}, "system:node:n1", []string{"n1"}, "192.0.2.7"), false, false},
		{"not a node", servingCSR(t, "alice", []string{"system:nodes"}, "system:node:n1", []string{"n1"}, "192.0.2.7"), false, false},
		{"no Node yet", servingCSR(t, "system:node:n3", nodes, "system:node:n3", []string{"n3"}, "192.0.2.9"), false, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Check(tt.csr, getNode)
			if tt.approve != (err == nil) || tt.approve && got != "n1" {
				t.Errorf("Check = %q, %v; want approval %v", got, err, tt.approve)
			}
			if errors.Is(err, errNoNode) != tt.noNode {
				t.Errorf("Check error %v: a missing Node %v, want %v", err, errors.Is(err, errNoNode), tt.noNode)
			}
		})
	}
}

// TestHandle approves through the API what Check accepts, and nothing else.
func TestHandle(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	good := servingCSR(t, "system:node:n1", []string{"system:nodes"}, "system:node:n1", []string{"n1"}, "192.0.2.7")
	bad := servingCSR(t, "system:node:n1", []string{"system:nodes"}, "system:node:n1", []string{"n1"}, "198.51.100.1")
	bad.Name = "csr-2"
	client := fake.NewClientset(good, bad)
	for _, csr := range []*certificatesv1.CertificateSigningRequest{good, bad} {
		if err := handle(ctx, client, csr, getNode); err != nil {
			t.Fatal(err)
		}
	}
	for name, want := range map[string]bool{"csr-1": true, "csr-2": false} {
		got, err := client.CertificatesV1().CertificateSigningRequests().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		approved := false
		for _, c := range got.Status.Conditions {
			approved = approved || c.Type == certificatesv1.CertificateApproved && c.Reason == Reason
		}
		if approved != want || len(got.Status.Conditions) > 1 {
			t.Errorf("%s: conditions %+v, want approved %v", name, got.Status.Conditions, want)
		}
	}
}
