package join

import (
	"context"
	"crypto/tls"
	"fmt"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/util/certificate"
	"k8s.io/klog/v2"
	kubeletcertificate "k8s.io/kubernetes/pkg/kubelet/certificate"
)

// RotatingClient returns the node's client configuration with its client
// certificate rotated by kubelet's certificate manager, as kubelet runs
// with rotateCertificates (cmd/kubelet/app's buildClientCertificateManager
// and UpdateTransport): the manager renews the certificate in CertDir at
// 70-90 % of its lifetime with a kubernetes.io/kube-apiserver-client-kubelet
// CSR of the node's own (auto-approved by the controller-manager: the
// kubeadm:node-autoapprove-certificate-rotation binding), and the returned
// configuration's connections use the current certificate, closed when it
// changes. The manager runs until ctx is done.
func RotatingClient(ctx context.Context, creds *Credentials, nodeName string) (*rest.Config, certificate.Manager, error) {
	logger := klog.FromContext(ctx)
	clientConfig, err := clientcmd.BuildConfigFromFlags("", creds.Kubeconfig)
	if err != nil {
		return nil, nil, fmt.Errorf("load %s: %w", creds.Kubeconfig, err)
	}
	newClientset := func(*tls.Certificate) (kubernetes.Interface, error) {
		return kubernetes.NewForConfig(clientConfig)
	}
	m, err := kubeletcertificate.NewKubeletClientCertificateManager(creds.CertDir, types.NodeName(nodeName),
		clientConfig.CertData, clientConfig.KeyData, clientConfig.CertFile, clientConfig.KeyFile, newClientset)
	if err != nil {
		return nil, nil, err
	}
	// The rotating transport uses the manager's certificate instead of the
	// files. No exit when the certificate has expired (kubelet's
	// exitAfter): a restart bootstraps again.
	transportConfig := rest.AnonymousClientConfig(clientConfig)
	if _, err := kubeletcertificate.UpdateTransport(logger, ctx.Done(), transportConfig, m, 0); err != nil {
		return nil, nil, err
	}
	m.Start()
	go func() {
		<-ctx.Done()
		m.Stop()
	}()
	return transportConfig, m, nil
}
