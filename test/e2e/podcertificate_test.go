//go:build e2e

package e2e

import (
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"strings"
	"testing"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/kubernetes/test/utils/hermeticpodcertificatesigner"
	"k8s.io/utils/clock"

	"github.com/pocketkube/pocketkube/test/framework"
)

// podCertPod is a busybox pod with a projected podCertificate source
// (ED25519, the credential bundle and the key and chain files) under
// /var/run/pc, and maxExpirationSeconds when set.
func podCertPod(ns, name, signer string, maxExpiration *int32) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: corev1.PodSpec{TerminationGracePeriodSeconds: new(int64),
			Containers: []corev1.Container{{Name: "main", Image: e2eBusybox, ImagePullPolicy: corev1.PullIfNotPresent,
				Command:      []string{"sleep", "3600"},
				VolumeMounts: []corev1.VolumeMount{{Name: "certs", MountPath: "/var/run/pc"}}}},
			Volumes: []corev1.Volume{{Name: "certs", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
				Sources: []corev1.VolumeProjection{{PodCertificate: &corev1.PodCertificateProjection{
					SignerName: signer, KeyType: "ED25519", MaxExpirationSeconds: maxExpiration,
					CredentialBundlePath: "bundle.pem", KeyPath: "key.pem", CertificateChainPath: "chain.pem"}}}}}}}}}
}

// TestProjectedPodCertificate is upstream's projected PodCertificate
// conformance (test/e2e/auth/projected_podcertificate.go) with its
// in-process signer (test/utils/hermeticpodcertificatesigner, a CA made
// here): the node agent's podcertificate manager (kubelet's) creates a
// PodCertificateRequest for the pod with the node's credentials; until it
// is issued the pod stays ContainerCreating with kubelet's FailedMount
// error; once the signer issues it the pod starts without waiting out a
// long back-off, and its files hold a key that matches the issued
// certificate, in kubelet's layout and modes (0644; 0600 and the user's
// for a pod with runAsUser). A denied request keeps its pod from starting
// with kubelet's Denied event and error. A maxExpirationSeconds above 91
// days is refused by the API server.
func TestProjectedPodCertificate(t *testing.T) {
	t.Parallel()
	c, ns := busyboxNamespace(t, "projected-podcert-")
	signer := "example.com/pocketkube-test-" + ns

	framework.CreatePod(t, c, podCertPod(ns, "pc", signer, nil))

	// No signer yet: the request waits, and so does the pod.
	var pcr *certificatesv1.PodCertificateRequest
	if err := wait.PollUntilContextTimeout(t.Context(), 100*time.Millisecond, framework.PodTimeout, true, func(ctx context.Context) (bool, error) {
		list, err := c.CertificatesV1().PodCertificateRequests(ns).List(ctx, metav1.ListOptions{})
		if err != nil || len(list.Items) == 0 {
			return false, nil
		}
		pcr = &list.Items[0]
		return true, nil
	}); err != nil {
		t.Fatalf("no PodCertificateRequest for the pod: %v", err)
	}
	if pcr.Spec.PodName != "pc" || pcr.Spec.SignerName != signer || pcr.Spec.NodeName == "" || len(pcr.OwnerReferences) != 1 || pcr.OwnerReferences[0].Name != "pc" {
		t.Errorf("PodCertificateRequest spec %+v, owners %+v", pcr.Spec, pcr.OwnerReferences)
	}
	waitEvent(t, c, ns, "pc", "FailedMount", framework.PodTimeout, func(e *corev1.Event) bool {
		return e.Message == `MountVolume.SetUp failed for volume "certs" : credential bundle is not issued yet`
	})
	waitContainerWaiting(t, c, ns, "pc", "ContainerCreating")

	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	caKeys, caCerts, err := hermeticpodcertificatesigner.GenerateCAHierarchy(1)
	if err != nil {
		t.Fatal(err)
	}
	go hermeticpodcertificatesigner.New(clock.RealClock{}, signer, "cluster.local", caKeys, caCerts, c).Run(ctx)
	signing := time.Now()

	if _, err := framework.WaitPodIn(t.Context(), c, ns, "pc", framework.PodTimeout, func(p *corev1.Pod) (bool, error) {
		return p.Status.Phase == corev1.PodRunning, nil
	}); err != nil {
		t.Fatalf("pod never ran once its certificate was issued: %v", err)
	}
	t.Logf("pod running %s after the signer started", time.Since(signing).Round(time.Millisecond))
	issued, err := c.CertificatesV1().PodCertificateRequests(ns).Get(t.Context(), pcr.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}

	cat := func(file string) string {
		t.Helper()
		out, err := shared.PodExec(t.Context(), ns, "pc", "cat", "/var/run/pc/"+file)
		if err != nil {
			t.Fatalf("cat %s: %v: %s", file, err, out)
		}
		return out
	}
	keyPEM, chainPEM, bundle := cat("key.pem"), cat("chain.pem"), cat("bundle.pem")
	if bundle != keyPEM+chainPEM {
		t.Errorf("bundle.pem is not key.pem then chain.pem:\n%s", bundle)
	}
	if chainPEM != issued.Status.CertificateChain {
		t.Errorf("chain.pem = %q, want the issued chain %q", chainPEM, issued.Status.CertificateChain)
	}
	kb, _ := pem.Decode([]byte(keyPEM))
	if kb == nil || kb.Type != "PRIVATE KEY" {
		t.Fatalf("key.pem holds no PKCS#8 private key: %q", keyPEM)
	}
	key, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	leaf := leafOf(t, chainPEM)
	priv, ok := key.(ed25519.PrivateKey)
	if !ok {
		t.Fatalf("key.pem holds a %T, want an ED25519 key", key)
	}
	if !priv.Public().(ed25519.PublicKey).Equal(leaf.PublicKey) {
		t.Error("key.pem does not match the issued certificate's public key")
	}
	if want := "spiffe://cluster.local/ns/" + ns + "/sa/default"; len(leaf.URIs) != 1 || leaf.URIs[0].String() != want {
		t.Errorf("certificate URIs %v, want %s", leaf.URIs, want)
	}
	out, err := shared.PodExec(t.Context(), ns, "pc", "stat", "-L", "-c", "%n %a", "/var/run/pc/key.pem", "/var/run/pc/chain.pem", "/var/run/pc/bundle.pem")
	if want := "/var/run/pc/key.pem 644\n/var/run/pc/chain.pem 644\n/var/run/pc/bundle.pem 644\n"; err != nil || out != want {
		t.Errorf("modes: %q (%v), want %q", out, err, want)
	}

	// As in upstream's mTLS spec, a pod that runs as a non-root user:
	// kubelet makes the files 0600 and that user's.
	t.Run("files are the pod's runAsUser's, 0600", func(t *testing.T) {
		p := podCertPod(ns, "pc-user", signer, nil)
		p.Spec.SecurityContext = &corev1.PodSecurityContext{RunAsUser: ptrTo(int64(1000)), RunAsNonRoot: ptrTo(true)}
		framework.RunPods(t, c, p)
		out, err := shared.PodExec(t.Context(), ns, "pc-user", "stat", "-L", "-c", "%n %a %u", "/var/run/pc/key.pem", "/var/run/pc/chain.pem", "/var/run/pc/bundle.pem")
		if want := "/var/run/pc/key.pem 600 1000\n/var/run/pc/chain.pem 600 1000\n/var/run/pc/bundle.pem 600 1000\n"; err != nil || out != want {
			t.Errorf("modes: %q (%v), want %q", out, err, want)
		}
		if out, err := shared.PodExec(t.Context(), ns, "pc-user", "cat", "/var/run/pc/key.pem"); err != nil || !strings.HasPrefix(out, "-----BEGIN PRIVATE KEY-----") {
			t.Errorf("cat key.pem as user 1000: %q (%v)", out, err)
		}
	})

	// A denied request is final: the manager records kubelet's Denied
	// event and the volume fails with its reason, the pod never starts.
	t.Run("a denied request keeps the pod from starting", func(t *testing.T) {
		other := "example.com/pocketkube-deny-" + ns
		framework.CreatePod(t, c, podCertPod(ns, "pc-denied", other, nil))
		var req *certificatesv1.PodCertificateRequest
		if err := wait.PollUntilContextTimeout(t.Context(), 100*time.Millisecond, framework.PodTimeout, true, func(ctx context.Context) (bool, error) {
			list, err := c.CertificatesV1().PodCertificateRequests(ns).List(ctx, metav1.ListOptions{})
			if err != nil {
				return false, nil
			}
			for i := range list.Items {
				if list.Items[i].Spec.SignerName == other {
					req = &list.Items[i]
					return true, nil
				}
			}
			return false, nil
		}); err != nil {
			t.Fatalf("no PodCertificateRequest for pc-denied: %v", err)
		}
		req.Status.Conditions = []metav1.Condition{{Type: certificatesv1.PodCertificateRequestConditionTypeDenied, Status: metav1.ConditionTrue,
			Reason: "NotForTests", Message: "denied by the test", LastTransitionTime: metav1.Now()}}
		if _, err := c.CertificatesV1().PodCertificateRequests(ns).UpdateStatus(t.Context(), req, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		waitEvent(t, c, ns, "pc-denied", certificatesv1.PodCertificateRequestConditionTypeDenied, framework.PodTimeout, func(e *corev1.Event) bool {
			return e.Type == corev1.EventTypeWarning && strings.Contains(e.Message, "was denied")
		})
		waitEvent(t, c, ns, "pc-denied", "FailedMount", framework.PodTimeout, func(e *corev1.Event) bool {
			return e.Message == `MountVolume.SetUp failed for volume "certs" : PodCertificateRequest was permanently denied: reason="NotForTests" message="denied by the test"`
		})
		waitContainerWaiting(t, c, ns, "pc-denied", "ContainerCreating")
	})

	t.Run("should reject pod creation when MaxExpirationSeconds exceeds maximum (91d)", func(t *testing.T) {
		_, err := c.CoreV1().Pods(ns).Create(t.Context(), podCertPod(ns, "too-long", signer, ptrTo(int32(91*24*60*60+1))), metav1.CreateOptions{})
		if err == nil || !strings.Contains(err.Error(), "if provided, maxExpirationSeconds must be <= 7862400") {
			t.Errorf("create: %v, want maxExpirationSeconds must be <= 7862400", err)
		}
	})
}

// TestPodCertificateAcrossRestart: the pod certificate manager keeps its
// keys in memory, as kubelet's does, so after `up` is stopped and started
// again the restarted pod gets a new PodCertificateRequest, a new key and
// the certificate issued for it.
func TestPodCertificateAcrossRestart(t *testing.T) {
	c := startNodeCluster(t)
	client := c.Client(t)
	c.ImportBusybox(t, e2eBusybox)
	framework.WaitServiceAccount(t, client, "default")
	signer := "example.com/pocketkube-restart"
	caKeys, caCerts, err := hermeticpodcertificatesigner.GenerateCAHierarchy(1)
	if err != nil {
		t.Fatal(err)
	}
	startSigner := func(client kubernetes.Interface) context.CancelFunc {
		ctx, stop := context.WithCancel(context.Background())
		go hermeticpodcertificatesigner.New(clock.RealClock{}, signer, "cluster.local", caKeys, caCerts, client).Run(ctx)
		return stop
	}
	stopSigner := startSigner(client)
	framework.RunPods(t, client, podCertPod("default", "pc", signer, nil))
	// key returns the pod's key and the public key of its certificate.
	key := func(c *framework.Cluster) (string, ed25519.PublicKey) {
		t.Helper()
		keyPEM, err := c.PodExec(t.Context(), "default", "pc", "cat", "/var/run/pc/key.pem")
		if err != nil {
			t.Fatalf("cat key.pem: %v", err)
		}
		chainPEM, err := c.PodExec(t.Context(), "default", "pc", "cat", "/var/run/pc/chain.pem")
		if err != nil {
			t.Fatalf("cat chain.pem: %v", err)
		}
		pub, _ := leafOf(t, chainPEM).PublicKey.(ed25519.PublicKey)
		return keyPEM, pub
	}
	before, _ := key(c)
	stopSigner()
	stopCleanly(t, c)

	restarted := time.Now().Truncate(time.Second)
	c = restartNode(t, c)
	client = c.Client(t)
	stopSigner = startSigner(client)
	defer stopSigner()
	// The status from before the stop says Running too: wait for the
	// container the new agent started.
	if _, err := framework.WaitPodIn(t.Context(), client, "default", "pc", framework.PodTimeout, func(p *corev1.Pod) (bool, error) {
		cs := p.Status.ContainerStatuses
		return framework.Running(p) && len(cs) == 1 && cs[0].State.Running != nil && !cs[0].State.Running.StartedAt.Time.Before(restarted), nil
	}); err != nil {
		t.Fatalf("pod never ran again after the restart: %v", err)
	}
	after, pub := key(c)
	kb, _ := pem.Decode([]byte(after))
	if kb == nil {
		t.Fatalf("key.pem after the restart: %q", after)
	}
	k, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if priv, ok := k.(ed25519.PrivateKey); !ok || !priv.Public().(ed25519.PublicKey).Equal(pub) {
		t.Error("key.pem after the restart does not match chain.pem's certificate")
	}
	if after == before {
		t.Error("the restarted pod kept its key: want a new key and certificate, as kubelet's in-memory manager issues")
	}
	pcrs, err := client.CertificatesV1().PodCertificateRequests("default").List(t.Context(), metav1.ListOptions{})
	if err != nil || len(pcrs.Items) != 2 {
		t.Errorf("PodCertificateRequests after the restart: %d (%v), want 2", len(pcrs.Items), err)
	}
	// The signer's watch would hold the API server's shutdown up.
	stopSigner()
	stopCleanly(t, c)
}

// leafOf parses the first certificate of a chain.pem.
func leafOf(t *testing.T, chainPEM string) *x509.Certificate {
	t.Helper()
	cb, _ := pem.Decode([]byte(chainPEM))
	if cb == nil {
		t.Fatalf("chain.pem holds no certificate: %q", chainPEM)
	}
	leaf, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return leaf
}
