// Package csrapprover approves kubelet serving certificates: the
// kubernetes.io/kubelet-serving CSRs that a node's kubelet certificate
// manager posts (pocketkube agent; kubelet's serverTLSBootstrap), which
// the controller-manager's csrapproving never approves (upstream leaves
// them to the cluster; kubeadm documents a manual `kubectl certificate
// approve`, k3s signs them itself).
//
// The rule: a CSR is approved when, and only when,
//
//   - its signer is kubernetes.io/kubelet-serving and it is neither
//     approved nor denied yet;
//   - it was posted by system:node:NAME in group system:nodes (the node's
//     own client certificate), and its subject is CN=system:node:NAME,
//     O=system:nodes, with the usages of a kubelet serving certificate
//     (upstream's ValidateKubeletServingCSR: no email or URI SANs);
//   - the Node NAME exists, and the CSR's SANs are exactly its addresses:
//     every DNS SAN is one of its Hostname, InternalDNS or ExternalDNS
//     addresses, every IP SAN one of its InternalIP or ExternalIP
//     addresses, and every such address of the Node is in the CSR.
//
// Anything else is left alone (neither approved nor denied), for an admin
// to decide. A node can set its own addresses in its status, so the rule
// proves that the certificate names what the Node says it is, not that
// the node owns those addresses: the same trust the API server already
// puts in Node addresses when it dials a kubelet.
package csrapprover

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"
	"k8s.io/kubernetes/pkg/apis/certificates"
)

// Reason is the reason of the Approved condition this package sets.
const Reason = "PocketkubeKubeletServing"

const nodeUserPrefix = "system:node:"

// Run approves kubelet serving CSRs that follow the rule until ctx is
// done.
func Run(ctx context.Context, client kubernetes.Interface) error {
	logger := klog.FromContext(ctx)
	factory := informers.NewSharedInformerFactory(client, 0)
	csrs := factory.Certificates().V1().CertificateSigningRequests()
	nodes := factory.Core().V1().Nodes()
	queue := workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[string]())
	defer queue.ShutDown()
	enqueue := func(obj any) {
		if csr, ok := obj.(*certificatesv1.CertificateSigningRequest); ok && csr.Spec.SignerName == certificatesv1.KubeletServingSignerName {
			queue.Add(csr.Name)
		}
	}
	if _, err := csrs.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    enqueue,
		UpdateFunc: func(_, obj any) { enqueue(obj) },
	}); err != nil {
		return err
	}
	// A CSR may come before its Node or its Node's addresses: look at the
	// node's CSRs again when its Node changes.
	nodeChanged := func(obj any) {
		node, ok := obj.(*corev1.Node)
		if !ok {
			return
		}
		for _, obj := range csrs.Informer().GetStore().List() {
			if csr, ok := obj.(*certificatesv1.CertificateSigningRequest); ok && csr.Spec.Username == nodeUserPrefix+node.Name {
				enqueue(obj)
			}
		}
	}
	if _, err := nodes.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    nodeChanged,
		UpdateFunc: func(_, obj any) { nodeChanged(obj) },
	}); err != nil {
		return err
	}
	factory.Start(ctx.Done())
	defer factory.Shutdown()
	if !cache.WaitForCacheSync(ctx.Done(), csrs.Informer().HasSynced, nodes.Informer().HasSynced) {
		return ctx.Err()
	}
	go func() {
		<-ctx.Done()
		queue.ShutDown()
	}()
	for {
		name, quit := queue.Get()
		if quit {
			return nil
		}
		err := func() error {
			csr, err := csrs.Lister().Get(name)
			if apierrors.IsNotFound(err) {
				return nil
			}
			if err != nil {
				return err
			}
			return handle(ctx, client, csr, func(n string) (*corev1.Node, error) { return nodes.Lister().Get(n) })
		}()
		if err != nil {
			logger.V(2).Info("Kubelet serving CSR not handled yet", "csr", name, "err", err)
			queue.AddRateLimited(name)
		} else {
			queue.Forget(name)
		}
		queue.Done(name)
	}
}

// errNoNode is a CSR whose Node does not exist (yet).
var errNoNode = errors.New("no such Node")

// handle approves csr if it follows the rule.
func handle(ctx context.Context, client kubernetes.Interface, csr *certificatesv1.CertificateSigningRequest, getNode func(string) (*corev1.Node, error)) error {
	if csr.Spec.SignerName != certificatesv1.KubeletServingSignerName || len(csr.Status.Certificate) > 0 {
		return nil
	}
	for _, c := range csr.Status.Conditions {
		if c.Type == certificatesv1.CertificateApproved || c.Type == certificatesv1.CertificateDenied || c.Type == certificatesv1.CertificateFailed {
			return nil
		}
	}
	nodeName, err := Check(csr, getNode)
	if errors.Is(err, errNoNode) {
		return err // the Node may come
	}
	if err != nil {
		klog.FromContext(ctx).Info("Not approving a kubelet serving CSR", "csr", csr.Name, "user", csr.Spec.Username, "reason", err)
		return nil
	}
	csr = csr.DeepCopy()
	csr.Status.Conditions = append(csr.Status.Conditions, certificatesv1.CertificateSigningRequestCondition{
		Type:           certificatesv1.CertificateApproved,
		Status:         corev1.ConditionTrue,
		Reason:         Reason,
		Message:        "pocketkube approved the serving certificate of node " + nodeName + ": its names are the Node's addresses",
		LastUpdateTime: metav1.Now(),
	})
	_, err = client.CertificatesV1().CertificateSigningRequests().UpdateApproval(ctx, csr.Name, csr, metav1.UpdateOptions{})
	if err == nil {
		klog.FromContext(ctx).Info("Approved a kubelet serving CSR", "csr", csr.Name, "node", nodeName)
	}
	return err
}

// Check returns the node a kubelet serving CSR is for if it follows the
// rule of the package doc, or why not.
func Check(csr *certificatesv1.CertificateSigningRequest, getNode func(string) (*corev1.Node, error)) (string, error) {
	user := csr.Spec.Username
	nodeName, ok := strings.CutPrefix(user, nodeUserPrefix)
	if !ok || nodeName == "" || !slices.Contains(csr.Spec.Groups, "system:nodes") {
		return "", fmt.Errorf("requested by %s %v, not by a node (system:node:NAME in system:nodes)", user, csr.Spec.Groups)
	}
	block, _ := pem.Decode(csr.Spec.Request)
	if block == nil || block.Type != "CERTIFICATE REQUEST" {
		return "", errors.New("no PEM certificate request")
	}
	req, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return "", err
	}
	usages := sets.NewString()
	for _, u := range csr.Spec.Usages {
		usages.Insert(string(u))
	}
	if err := certificates.ValidateKubeletServingCSR(req, usages); err != nil {
		return "", err
	}
	if req.Subject.CommonName != user {
		return "", fmt.Errorf("subject %s, requested by %s", req.Subject.CommonName, user)
	}
	node, err := getNode(nodeName)
	if apierrors.IsNotFound(err) {
		return "", fmt.Errorf("%w: %s", errNoNode, nodeName)
	}
	if err != nil {
		return "", err
	}
	wantDNS, wantIPs := sets.New[string](), sets.New[string]()
	for _, a := range node.Status.Addresses {
		switch a.Type {
		case corev1.NodeHostName, corev1.NodeInternalDNS, corev1.NodeExternalDNS:
			wantDNS.Insert(a.Address)
		case corev1.NodeInternalIP, corev1.NodeExternalIP:
			if ip := net.ParseIP(a.Address); ip != nil {
				wantIPs.Insert(ip.String())
			}
		}
	}
	gotDNS, gotIPs := sets.New(req.DNSNames...), sets.New[string]()
	for _, ip := range req.IPAddresses {
		gotIPs.Insert(ip.String())
	}
	if !gotDNS.Equal(wantDNS) || !gotIPs.Equal(wantIPs) {
		return "", fmt.Errorf("%w: names %v %v, the Node's addresses are %v %v", errNotAddresses, sets.List(gotDNS), sets.List(gotIPs), sets.List(wantDNS), sets.List(wantIPs))
	}
	return nodeName, nil
}

// errNotAddresses is a CSR whose names are not its Node's addresses.
var errNotAddresses = errors.New("not the Node's addresses")

// RunUntil runs Run again after a failure, until ctx is done.
func RunUntil(ctx context.Context, client kubernetes.Interface) {
	wait.UntilWithContext(ctx, func(ctx context.Context) {
		if err := Run(ctx, client); err != nil && ctx.Err() == nil {
			klog.FromContext(ctx).Error(err, "Kubelet serving CSR approver")
		}
	}, 5*time.Second)
}
