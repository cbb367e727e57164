//go:build e2e

package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	keyutil "k8s.io/client-go/util/keyutil"

	"github.com/pocketkube/pocketkube/test/framework"
)

// joinedNode is a `pocketkube agent` in a network namespace of its own
// (veth to the host, own --cgroup-root and data dir), joined to a cluster.
type joinedNode struct {
	ns      *framework.NetNS
	dataDir string
	name    string
	ip      string // --node-ip
	args    []string
	proc    *framework.Process
}

// newJoinedNode makes the namespace and data dir of an agent named name;
// the test's cleanup stops the agent, deletes its Node and removes the
// namespace.
func newJoinedNode(t *testing.T, c *framework.Cluster, name string) *joinedNode {
	t.Helper()
	return newJoinedNodeOn(t, c, name, nil)
}

// newJoinedNodeOn is newJoinedNode with the namespace also attached to
// seg (when not nil), whose address is then the node's.
func newJoinedNodeOn(t *testing.T, c *framework.Cluster, name string, seg *framework.Segment) *joinedNode {
	t.Helper()
	ns, err := framework.NewNetNS()
	if err != nil {
		t.Fatal(err)
	}
	n := &joinedNode{ns: ns, dataDir: filepath.Join(t.TempDir(), "agent"), name: name, ip: ns.Addr}
	if seg != nil {
		if n.ip, err = seg.Attach(ns); err != nil {
			ns.Remove("")
			t.Fatal(err)
		}
	}
	n.args = []string{"agent", "--server", c.Server, "--data-dir", n.dataDir, "--node-name", name,
		"--node-ip", n.ip, "--cgroup-root", ns.CgroupRoot}
	t.Cleanup(func() {
		if n.proc != nil {
			if t.Failed() {
				t.Logf("agent output:\n%s", framework.Tail(n.proc.Output(), 80))
			}
			if err := n.proc.Stop(15 * time.Second); err != nil {
				t.Errorf("stop the agent: %v", err)
			}
		}
		if err := c.Client(t).CoreV1().Nodes().Delete(context.Background(), name, metav1.DeleteOptions{}); err != nil {
			t.Logf("delete Node %s: %v", name, err)
		}
		if err := ns.Remove(n.dataDir); err != nil {
			t.Errorf("clean up the agent's namespace: %v", err)
		}
	})
	return n
}

// run runs the agent with more flags and returns its exit and output
// once it exits by itself within timeout.
func (n *joinedNode) run(t *testing.T, timeout time.Duration, extra ...string) (string, error) {
	t.Helper()
	p, err := framework.StartIn(n.ns, Binary, append(append([]string(nil), n.args...), extra...)...)
	if err != nil {
		t.Fatal(err)
	}
	err = p.Wait(timeout)
	return p.Output(), err
}

// start starts the agent with more flags.
func (n *joinedNode) start(t *testing.T, extra ...string) {
	t.Helper()
	p, err := framework.StartIn(n.ns, Binary, append(append([]string(nil), n.args...), extra...)...)
	if err != nil {
		t.Fatal(err)
	}
	n.proc = p
}

// importBusybox imports the busybox image into the agent's own image
// store, before it starts.
func (n *joinedNode) importBusybox(t *testing.T) {
	t.Helper()
	tarPath := filepath.Join(t.TempDir(), "busybox.tar")
	if err := framework.BusyboxTar(tarPath, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := framework.Run(t.Context(), nil, Binary, "images", "import", "--data-dir", n.dataDir, "--name", "busybox", tarPath); err != nil {
		t.Fatal(err)
	}
}

// nodeToken reads DIR/node-token of cluster c: the token and the CA hash.
func nodeToken(t *testing.T, c *framework.Cluster) (token, hash string) {
	t.Helper()
	file := filepath.Join(c.DataDir, "node-token")
	var flags []string
	err := wait.PollUntilContextTimeout(t.Context(), 100*time.Millisecond, framework.PodTimeout, true, func(context.Context) (bool, error) {
		data, err := os.ReadFile(file)
		flags = strings.Fields(string(data))
		return err == nil && len(flags) == 4, nil
	})
	if err != nil {
		t.Fatalf("%s: %q (%v)", file, flags, err)
	}
	return flags[1], flags[3]
}

// waitNodeReady waits until Node name is Ready and its Lease was renewed
// after since, and returns it.
func waitNodeReady(t *testing.T, c kubernetes.Interface, name string, since time.Time) *corev1.Node {
	t.Helper()
	var node *corev1.Node
	err := wait.PollUntilContextTimeout(t.Context(), 100*time.Millisecond, 2*framework.PodTimeout, true, func(ctx context.Context) (bool, error) {
		n, err := c.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		node = n
		// The Node's Lease has microseconds; its conditions' times have
		// seconds, too coarse to tell a restarted agent's heartbeat.
		lease, err := c.CoordinationV1().Leases(corev1.NamespaceNodeLease).Get(ctx, name, metav1.GetOptions{})
		if err != nil || lease.Spec.RenewTime == nil || !lease.Spec.RenewTime.Time.After(since) {
			return false, nil
		}
		for _, cond := range n.Status.Conditions {
			if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("Node %s not Ready with a heartbeat since %s: %+v", name, since.Format(time.RFC3339), node)
	}
	return node
}

// nodeCSRs counts the CSRs of each signer that node name's join made:
// client certificates requested with the bootstrap token, serving
// certificates by the node.
func nodeCSRs(t *testing.T, c kubernetes.Interface, name, tokenID string) (client, serving []certificatesv1.CertificateSigningRequest) {
	t.Helper()
	csrs, err := c.CertificatesV1().CertificateSigningRequests().List(t.Context(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, csr := range csrs.Items {
		switch {
		case csr.Spec.SignerName == certificatesv1.KubeAPIServerClientKubeletSignerName && csr.Spec.Username == "system:bootstrap:"+tokenID:
			client = append(client, csr)
		case csr.Spec.SignerName == certificatesv1.KubeletServingSignerName && csr.Spec.Username == "system:node:"+name:
			serving = append(serving, csr)
		}
	}
	return client, serving
}

func dirEntries(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// TestAgentJoin joins a second node to a cluster, as on a second machine:
// `pocketkube agent` in a network namespace of its own with the token and
// CA hash of DIR/node-token. A wrong token or CA hash is refused with a
// clear message and writes nothing; the right ones make a Ready node that
// runs a pod pinned to it, whose logs and exec go through the API server
// to the agent's kubelet API (a serving certificate from a
// kubernetes.io/kubelet-serving CSR that the server approved); a restart
// on the same data dir comes back Ready with the same certificates, no new
// CSR; and a client certificate near its expiry is rotated with kubelet's
// certificate manager while the agent runs.
func TestAgentJoin(t *testing.T) {
	c := startNodeCluster(t)
	admin := c.Client(t)
	tok, hash := nodeToken(t, c)
	id, _, _ := strings.Cut(tok, ".")
	n := newJoinedNode(t, c, "agent-join-"+strconv.Itoa(os.Getpid()))

	// Refused: a wrong CA hash, then a wrong token secret.
	out, err := n.run(t, framework.PodTimeout, "--token", tok, "--discovery-token-ca-cert-hash", "sha256:"+strings.Repeat("0", 64))
	if err == nil || !strings.Contains(out, "refused to join") || !strings.Contains(out, "none of the public keys") {
		t.Errorf("agent with a wrong CA hash: %v, output:\n%s\nwant a refusal naming the CA hash", err, framework.Tail(out, 20))
	}
	if got := dirEntries(t, n.dataDir); len(got) != 0 {
		t.Errorf("agent with a wrong CA hash wrote %v in its data dir", got)
	}
	out, err = n.run(t, framework.PodTimeout, "--token", id+".0123456789abcdef", "--discovery-token-ca-cert-hash", hash)
	if err == nil || !strings.Contains(out, "refused to join") || !strings.Contains(out, "failed to verify JWS signature") {
		t.Errorf("agent with a wrong token: %v, output:\n%s\nwant a refusal naming the signature", err, framework.Tail(out, 20))
	}
	if got := dirEntries(t, n.dataDir); len(got) != 0 {
		t.Errorf("agent with a wrong token wrote %v in its data dir", got)
	}
	if _, err := admin.CoreV1().Nodes().Get(t.Context(), n.name, metav1.GetOptions{}); err == nil {
		t.Errorf("a refused agent registered Node %s", n.name)
	}

	// Joined: the busybox image is imported into the agent's own store.
	n.importBusybox(t)
	joinFlags := []string{"--token", tok, "--discovery-token-ca-cert-hash", hash}
	started := time.Now()
	n.start(t, joinFlags...)
	node := waitNodeReady(t, admin, n.name, started)
	t.Logf("node %s Ready %s after the agent started", n.name, time.Since(started).Round(time.Millisecond))
	if node.Spec.PodCIDR == "" {
		t.Errorf("Node %s has no podCIDR", n.name)
	}

	ns := framework.NewNamespace(t, admin, "agent-join")
	pod := busyboxSleeper(ns, "pinned")
	pod.Spec.NodeName = n.name
	pod.Spec.Containers[0].Command = []string{"sh", "-c", "echo hello from $(hostname); exec sleep 3600"}
	running := framework.RunPods(t, admin, pod)["pinned"]
	if _, cidr, err := net.ParseCIDR(node.Spec.PodCIDR); err != nil || !cidr.Contains(net.ParseIP(running.Status.PodIP)) {
		t.Errorf("pod IP %s not in the joined node's podCIDR %s (%v)", running.Status.PodIP, node.Spec.PodCIDR, err)
	}

	kubectl := func(args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(t.Context(), framework.PodTimeout)
		defer cancel()
		return c.Kubectl(ctx, framework.Newest(), args...)
	}
	checkLogsExec := func(when string) {
		t.Helper()
		if out, err := kubectl("logs", "-n", ns, "pinned"); err != nil || !strings.Contains(out, "hello from pinned") {
			t.Errorf("%s: kubectl logs of a pod on the joined node: %q, %v", when, out, err)
		}
		if out, err := kubectl("exec", "-n", ns, "pinned", "--", "hostname"); err != nil || strings.TrimSpace(out) != "pinned" {
			t.Errorf("%s: kubectl exec in a pod on the joined node: %q, %v", when, out, err)
		}
	}
	checkLogsExec("after the join")

	// The joined node's Service proxy routes the kubernetes Service to
	// the API server. (Pods across nodes, Services and DNS:
	// TestAgentPodNetwork.)
	if out, err := c.PodExec(t.Context(), ns, "pinned", "sh", "-c", "nc -w 5 10.96.0.1 443 </dev/null && echo connected"); err != nil || !strings.Contains(out, "connected") {
		t.Errorf("pod on the joined node to the kubernetes Service: %q, %v", out, err)
	}

	clientCSRs, servingCSRs := nodeCSRs(t, admin, n.name, id)
	if len(clientCSRs) != 1 || len(servingCSRs) != 1 {
		t.Fatalf("%d client and %d serving CSRs of the join, want one each", len(clientCSRs), len(servingCSRs))
	}
	approvedBy := func(csr certificatesv1.CertificateSigningRequest) string {
		for _, c := range csr.Status.Conditions {
			if c.Type == certificatesv1.CertificateApproved && c.Status == corev1.ConditionTrue {
				return c.Reason
			}
		}
		return ""
	}
	if r := approvedBy(clientCSRs[0]); r != "AutoApproved" {
		t.Errorf("client CSR approved with reason %q, want the controller-manager's AutoApproved", r)
	}
	if r := approvedBy(servingCSRs[0]); r != "PocketkubeKubeletServing" {
		t.Errorf("serving CSR approved with reason %q, want pocketkube's csrapprover", r)
	}

	// Restart on the same data dir: the same credentials, no new CSR.
	if err := n.proc.Stop(15 * time.Second); err != nil {
		t.Fatalf("stop the agent: %v\n%s", err, framework.Tail(n.proc.Output(), 40))
	}
	restarted := time.Now()
	n.start(t, joinFlags...)
	waitNodeReady(t, admin, n.name, restarted)
	// The agent stopped its pods when it stopped; the restarted one
	// starts the pod's container again.
	if _, err := framework.WaitPodIn(t.Context(), admin, ns, "pinned", framework.PodTimeout, func(p *corev1.Pod) (bool, error) {
		for _, cs := range p.Status.ContainerStatuses {
			if r := cs.State.Running; r != nil && !r.StartedAt.Time.Before(restarted.Truncate(time.Second)) {
				return framework.Ready(p), nil
			}
		}
		return false, nil
	}); err != nil {
		t.Errorf("pod on the restarted node not running again: %v", err)
	}
	checkLogsExec("after a restart")
	if !strings.Contains(n.proc.Output(), "with the certificates of an earlier join") {
		t.Errorf("restarted agent did not say it used its earlier credentials:\n%s", framework.Tail(n.proc.Output(), 40))
	}
	if c2, s2 := nodeCSRs(t, admin, n.name, id); len(c2) != 1 || len(s2) != 1 {
		t.Errorf("after a restart: %d client and %d serving CSRs, want still one each", len(c2), len(s2))
	}

	// Client certificate rotation, as kubelet's: restarted with a client
	// certificate past 70 % of its lifetime that expires in 45 s, the
	// agent requests a new one with a CSR of its own (the
	// controller-manager approves a node's renewal), and keeps renewing
	// its Lease after the old one expired.
	if err := n.proc.Stop(15 * time.Second); err != nil {
		t.Fatalf("stop the agent: %v\n%s", err, framework.Tail(n.proc.Output(), 40))
	}
	notAfter := shortClientCert(t, c, n, 45*time.Second)
	n.start(t, joinFlags...)
	err = wait.PollUntilContextTimeout(t.Context(), 200*time.Millisecond, framework.PodTimeout, true, func(ctx context.Context) (bool, error) {
		csrs, err := admin.CertificatesV1().CertificateSigningRequests().List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, nil
		}
		for _, csr := range csrs.Items {
			if csr.Spec.SignerName == certificatesv1.KubeAPIServerClientKubeletSignerName && csr.Spec.Username == "system:node:"+n.name &&
				len(csr.Status.Certificate) > 0 && approvedBy(csr) == "AutoApproved" {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("no renewal CSR of system:node:%s approved and signed: %v\n%s", n.name, err, framework.Tail(n.proc.Output(), 40))
	}
	time.Sleep(time.Until(notAfter.Add(time.Second)))
	waitNodeReady(t, admin, n.name, notAfter.Add(time.Second))
	if got := currentClientCert(t, n); !got.NotAfter.After(time.Now().Add(time.Hour)) {
		t.Errorf("current client certificate expires %s, want a renewed one", got.NotAfter)
	}
	select {
	case <-n.proc.Done():
		t.Fatalf("agent exited:\n%s", framework.Tail(n.proc.Output(), 40))
	default:
	}

	if err := admin.CoreV1().Pods(ns).Delete(t.Context(), "pinned", metav1.DeleteOptions{}); err != nil {
		t.Error(err)
	}
	if err := wait.PollUntilContextTimeout(t.Context(), 100*time.Millisecond, framework.PodTimeout, true, func(ctx context.Context) (bool, error) {
		_, err := admin.CoreV1().Pods(ns).Get(ctx, "pinned", metav1.GetOptions{})
		return err != nil, nil
	}); err != nil {
		t.Errorf("pod on the joined node not deleted: %v", err)
	}
}

// shortClientCert replaces the joined node's current client certificate
// (kubelet's kubelet-client-current.pem) by one the cluster CA issues for
// system:node:NAME, issued 10 min ago and expiring in d, and returns its
// expiry.
func shortClientCert(t *testing.T, c *framework.Cluster, n *joinedNode, d time.Duration) time.Time {
	t.Helper()
	caCert, err := os.ReadFile(filepath.Join(c.DataDir, "pki", "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	caKeyPEM, err := os.ReadFile(filepath.Join(c.DataDir, "pki", "ca.key"))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(caCert)
	ca, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	caKey, err := keyutil.ParsePrivateKeyPEM(caKeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(now.UnixNano()),
		Subject:      pkix.Name{CommonName: "system:node:" + n.name, Organization: []string{"system:nodes"}},
		NotBefore:    now.Add(-10 * time.Minute),
		NotAfter:     now.Add(d),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(n.dataDir, "agent", "pki")
	file := filepath.Join(dir, "kubelet-client-short.pem")
	data := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})...)
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}
	current := filepath.Join(dir, "kubelet-client-current.pem")
	if err := os.Remove(current); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(file, current); err != nil {
		t.Fatal(err)
	}
	return tmpl.NotAfter.Truncate(time.Second)
}

// currentClientCert is the joined node's current client certificate.
func currentClientCert(t *testing.T, n *joinedNode) *x509.Certificate {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(n.dataDir, "agent", "pki", "kubelet-client-current.pem"))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		t.Fatal("no PEM in kubelet-client-current.pem")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// sourceIPPod is a pod pinned to node whose busybox httpd answers
// /cgi-bin/ip on :8080 with the address the request came from, ready once
// the port is open.
func sourceIPPod(ns, name, node string) *corev1.Pod {
	p := busyboxSleeper(ns, name)
	p.Labels = map[string]string{"app": name}
	p.Spec.NodeName = node
	p.Spec.Containers[0].Command = []string{"sh", "-c", `mkdir -p /www/cgi-bin && printf '#!/bin/sh\necho Content-Type: text/plain\necho\necho $REMOTE_ADDR\n' > /www/cgi-bin/ip && chmod +x /www/cgi-bin/ip && exec httpd -f -p 8080 -h /www`}
	p.Spec.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: 8080}}
	p.Spec.Containers[0].ReadinessProbe = &corev1.Probe{
		ProbeHandler:  corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(8080)}},
		PeriodSeconds: 1,
	}
	return p
}

// TestAgentPodNetwork checks the pod network across nodes: a server
// (`up`) and two joined agents, each in a network namespace of its own,
// whose node addresses are on one L2 segment (a bridge the test makes).
// Pods on any two nodes reach each other by pod IP, and the peer sees the
// pod's IP (no SNAT); a pod reaches a ClusterIP Service whose endpoint is on the
// other node, with its own IP as the source, both ways; a NodePort
// Service answers on the joined node's address for an endpoint on the
// server node; cluster DNS answers a pod of the joined node. Each node
// holds a route (protocol 112) to the others' podCIDRs via their
// addresses; a stopped agent leaves none, and the other nodes' routes to
// a deleted Node go away.
func TestAgentPodNetwork(t *testing.T) {
	seg, err := framework.NewSegment()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := seg.Remove(); err != nil {
			t.Error(err)
		}
	})
	c := startNodeClusterConfig(t, framework.ClusterConfig{Segment: seg})
	c.ImportBusybox(t, "busybox")
	admin := c.Client(t)
	tok, hash := nodeToken(t, c)
	n := newJoinedNodeOn(t, c, "agent-net-"+strconv.Itoa(os.Getpid()), seg)
	n2 := newJoinedNodeOn(t, c, "agent-net2-"+strconv.Itoa(os.Getpid()), seg)
	for _, a := range []*joinedNode{n, n2} {
		a.importBusybox(t)
	}
	// Leftovers of an earlier run that the agent corrects: a route of
	// ours to no Node's pods, and a masquerade exception for an address
	// that is no Node's.
	for _, args := range [][]string{
		{"ip", "route", "add", "10.244.99.0/24", "via", seg.HostAddr, "proto", "112"},
		{"iptables", "-t", "nat", "-N", "PK-HOSTGW"},
		{"iptables", "-t", "nat", "-A", "PK-HOSTGW", "-d", "203.0.113.9/32", "-j", "ACCEPT"},
	} {
		if _, err := n.ns.Exec(args...); err != nil {
			t.Fatal(err)
		}
	}
	started := time.Now()
	n.start(t, "--token", tok, "--discovery-token-ca-cert-hash", hash)
	n2.start(t, "--token", tok, "--discovery-token-ca-cert-hash", hash)
	waitNodeReady(t, admin, n.name, started)
	waitNodeReady(t, admin, n2.name, started)
	// Ready may come before the node-ipam controller's podCIDR.
	var nodes *corev1.NodeList
	if err := wait.PollUntilContextTimeout(t.Context(), 100*time.Millisecond, framework.PodTimeout, true, func(ctx context.Context) (bool, error) {
		nodes, err = admin.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil || len(nodes.Items) != 3 {
			return false, nil
		}
		for _, node := range nodes.Items {
			if node.Spec.PodCIDR == "" {
				return false, nil
			}
		}
		return true, nil
	}); err != nil {
		t.Fatalf("not three Nodes with a podCIDR: %v", err)
	}
	podCIDR := map[string]string{}
	var server *corev1.Node
	for i, node := range nodes.Items {
		podCIDR[node.Name] = node.Spec.PodCIDR
		if node.Name != n.name && node.Name != n2.name {
			server = &nodes.Items[i]
		}
	}
	if server == nil {
		t.Fatalf("no server Node among %v", podCIDR)
	}
	nodeIP := map[string]string{server.Name: c.Host, n.name: n.ip, n2.name: n2.ip}
	t.Logf("nodes' podCIDRs %v, addresses %v", podCIDR, nodeIP)

	// Each node's routes to the other nodes' pods.
	routes := func(where string, exec func(...string) (string, error)) string {
		t.Helper()
		out, err := exec("ip", "-4", "route", "show", "proto", "112")
		if err != nil {
			t.Fatalf("routes of %s: %v", where, err)
		}
		var lines []string
		for l := range strings.Lines(out) {
			if l = strings.TrimSpace(l); l != "" {
				lines = append(lines, l)
			}
		}
		return strings.Join(lines, "\n")
	}
	// wantRoutes is what `ip route` shows of the routes to the pods of
	// nodes, in its order (by destination).
	wantRoutes := func(nodes ...string) string {
		var lines []string
		for _, name := range nodes {
			lines = append(lines, podCIDR[name]+" via "+nodeIP[name]+" dev seg0")
		}
		slices.Sort(lines)
		return strings.Join(lines, "\n")
	}
	waitRoutes := func(where string, exec func(...string) (string, error), want string) {
		t.Helper()
		var got string
		err := wait.PollUntilContextTimeout(t.Context(), 100*time.Millisecond, framework.PodTimeout, true, func(context.Context) (bool, error) {
			got = routes(where, exec)
			return got == want, nil
		})
		if err != nil {
			t.Errorf("pod routes of %s: %q, want %q", where, got, want)
		}
	}
	waitRoutes("the joined node", n.ns.Exec, wantRoutes(server.Name, n2.name))
	waitRoutes("the second joined node", n2.ns.Exec, wantRoutes(server.Name, n.name))
	waitRoutes("the server node", c.NetNS.Exec, wantRoutes(n.name, n2.name))
	if out, err := n.ns.Exec("iptables", "-t", "nat", "-S", "PK-HOSTGW"); err != nil || strings.Contains(out, "203.0.113.9") || !strings.Contains(out, c.Host+"/32") {
		t.Errorf("masquerade exceptions of the joined node (%v):\n%s\nwant the server's address and no leftover", err, out)
	}

	ns := framework.NewNamespace(t, admin, "agent-net")
	pods := framework.RunPods(t, admin, sourceIPPod(ns, "on-server", server.Name), sourceIPPod(ns, "on-agent", n.name), sourceIPPod(ns, "on-agent2", n2.name))
	serverIP, agentIP, agent2IP := pods["on-server"].Status.PodIP, pods["on-agent"].Status.PodIP, pods["on-agent2"].Status.PodIP
	// fetch gets url from pod from, retrying while the rules of a new
	// Service are being written, until it gets want.
	fetch := func(what, from, url, want string) {
		t.Helper()
		var out string
		var err error
		werr := wait.PollUntilContextTimeout(t.Context(), 200*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
			// Not wget -T: Debian's busybox 1.35 wget crashes with it.
			out, err = c.PodExec(ctx, ns, from, "timeout", "3", "wget", "-qO-", url)
			out = remoteAddr(out)
			return err == nil && out == want, nil
		})
		if werr != nil {
			t.Errorf("%s: wget %s from %s: %q, %v; want %q", what, url, from, out, err, want)
		}
	}
	fetch("pod on the joined node to a pod on the server node", "on-agent", "http://"+serverIP+":8080/cgi-bin/ip", agentIP)
	fetch("pod on the server node to a pod on the joined node", "on-server", "http://"+agentIP+":8080/cgi-bin/ip", serverIP)
	fetch("pod on a joined node to a pod on another joined node", "on-agent", "http://"+agent2IP+":8080/cgi-bin/ip", agentIP)
	fetch("pod on a joined node to a pod on another joined node, back", "on-agent2", "http://"+agentIP+":8080/cgi-bin/ip", agent2IP)

	// Services whose endpoint is on the other node.
	svc := func(name string, typ corev1.ServiceType) *corev1.Service {
		s, err := admin.CoreV1().Services(ns).Create(t.Context(), &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: corev1.ServiceSpec{
				Type: typ, Selector: map[string]string{"app": name},
				Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}},
			},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	toServer, toAgent := svc("on-server", corev1.ServiceTypeNodePort), svc("on-agent", corev1.ServiceTypeClusterIP)
	fetch("pod on the joined node to a ClusterIP with its endpoint on the server node", "on-agent", "http://"+toServer.Spec.ClusterIP+"/cgi-bin/ip", agentIP)
	fetch("pod on the server node to a ClusterIP with its endpoint on the joined node", "on-server", "http://"+toAgent.Spec.ClusterIP+"/cgi-bin/ip", serverIP)

	// NodePort on the joined node's address (from the host, on the
	// segment), endpoint on the server node: kube-proxy masquerades the
	// outside client as the joined node.
	nodePort := "http://" + net.JoinHostPort(n.ip, strconv.Itoa(int(toServer.Spec.Ports[0].NodePort))) + "/cgi-bin/ip"
	var body string
	err = wait.PollUntilContextTimeout(t.Context(), 200*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		body, err = httpGet(ctx, nodePort)
		return err == nil, nil
	})
	if err != nil || remoteAddr(body) != n.ip {
		t.Errorf("NodePort on the joined node: GET %s: %q, %v; want the joined node's address %s as the source", nodePort, body, err, n.ip)
	}
	// The same NodePort from the endpoint's own node (here the endpoint
	// pod itself): in to the joined node, back to the server node,
	// masqueraded as the joined node.
	fetch("pod on the server node to the joined node's NodePort, endpoint on the server node", "on-server", nodePort, n.ip)

	// Cluster DNS from a pod of the joined node, by the kube-dns Service
	// (busybox nslookup applies no search domain: full names).
	for name, want := range map[string]string{
		"kubernetes.default.svc.cluster.local":   "10.96.0.1",
		"on-server." + ns + ".svc.cluster.local": toServer.Spec.ClusterIP,
	} {
		out, err := c.PodExec(t.Context(), ns, "on-agent", "nslookup", "-type=a", name)
		if err != nil || !strings.Contains(out, "Address: "+want) {
			t.Errorf("nslookup %s in a pod on the joined node: %q, %v; want %s", name, out, err, want)
		}
	}
	fetch("pod on the joined node to a Service by name", "on-agent", "http://on-server/cgi-bin/ip", agentIP)

	// A clean stop removes the agent's routes and masquerade exceptions;
	// the server drops its route to the Node once it is deleted.
	if err := n.proc.Stop(15 * time.Second); err != nil {
		t.Fatalf("stop the agent: %v\n%s", err, framework.Tail(n.proc.Output(), 40))
	}
	if got := routes("the stopped joined node", n.ns.Exec); got != "" {
		t.Errorf("routes left by the stopped agent: %q", got)
	}
	if out, err := n.ns.Exec("iptables", "-t", "nat", "-S"); err != nil || strings.Contains(out, "PK-HOSTGW") {
		t.Errorf("nat rules left by the stopped agent (%v):\n%s", err, out)
	}
	if err := admin.CoreV1().Nodes().Delete(t.Context(), n.name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitRoutes("the server node after the Node's deletion", c.NetNS.Exec, wantRoutes(n2.name))
	waitRoutes("the second joined node after the Node's deletion", n2.ns.Exec, wantRoutes(server.Name))
}

// remoteAddr is the address sourceIPPod answered, without the brackets
// and IPv4-mapped prefix of httpd's IPv6 socket ("[::ffff:10.244.1.2]").
func remoteAddr(body string) string {
	s := strings.TrimSpace(body)
	s = strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")
	return strings.TrimPrefix(s, "::ffff:")
}

// httpGet returns the body of a GET of url.
func httpGet(ctx context.Context, url string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("%s", resp.Status)
	}
	return string(b), err
}
