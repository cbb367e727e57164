package kubeletapi

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

const testNode = "node-1"

// testCA is a certificate authority for one test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t testing.TB, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue returns a PEM certificate and key signed by ca.
func (ca *testCA) issue(t testing.TB, cn string, orgs []string, server bool) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn, Organization: orgs},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
}

// fakeProvider is a Provider whose pods are fixed and whose containers are
// Go functions.
type fakeProvider struct {
	pods []*v1.Pod
	// logs maps namespace/pod/container (with "/previous" appended for
	// previous=true) to a log file.
	logs    map[string]string
	running func() bool
	// echo is the address PortForward dials, whatever the port.
	echo string

	mu       sync.Mutex
	forwards []int32
}

var _ Provider = (*fakeProvider)(nil)

func (f *fakeProvider) ContainerLogPath(_ context.Context, namespace, pod, container string, previous bool) (string, func() bool, error) {
	key := namespace + "/" + pod + "/" + container
	if previous {
		key += "/previous"
	}
	path, ok := f.logs[key]
	if !ok {
		if previous {
			return "", nil, fmt.Errorf("previous terminated container %q in pod %q not found", container, pod)
		}
		return "", nil, fmt.Errorf("container %q in pod %q is waiting to start: ContainerCreating", container, pod)
	}
	return path, f.running, nil
}

// Exec runs the fake command cmd[0]:
//   - cat: copies stdin to stdout
//   - exit N: exits with N after writing "bye" to stderr
//   - size: writes the first terminal size it gets
//   - fail: fails to start
func (f *fakeProvider) Exec(_ context.Context, _, _ string, _ types.UID, _ string, cmd []string, s Streams) (int, error) {
	switch cmd[0] {
	case "cat":
		_, err := io.Copy(s.Stdout, s.Stdin)
		return 0, err
	case "exit":
		if s.Stderr != nil {
			_, _ = io.WriteString(s.Stderr, "bye")
		}
		return strconv.Atoi(cmd[1])
	case "size":
		size, ok := <-s.Resize
		if !ok {
			return 0, errors.New("no terminal size")
		}
		_, err := fmt.Fprintf(s.Stdout, "%dx%d", size.Width, size.Height)
		return 0, err
	default:
		return 0, fmt.Errorf("executable file not found in $PATH: %q", cmd[0])
	}
}

// Attach echoes stdin to stdout, as a container running cat.
func (f *fakeProvider) Attach(_ context.Context, _, _ string, _ types.UID, _ string, s Streams) error {
	_, err := io.Copy(s.Stdout, s.Stdin)
	return err
}

func (f *fakeProvider) PortForward(ctx context.Context, _, _ string, _ types.UID, port int32, stream io.ReadWriteCloser) error {
	f.mu.Lock()
	f.forwards = append(f.forwards, port)
	f.mu.Unlock()
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", f.echo)
	if err != nil {
		return err
	}
	defer conn.Close()
	done := make(chan struct{})
	go func() {
		_, _ = io.Copy(stream, conn)
		close(done)
	}()
	_, _ = io.Copy(conn, stream)
	_ = conn.(*net.TCPConn).CloseWrite()
	<-done
	return nil
}

func (f *fakeProvider) RunningPods(context.Context) ([]*v1.Pod, error) { return f.pods, nil }

func testPod() *v1.Pod {
	return &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web", UID: "uid-1"},
		Spec: v1.PodSpec{
			NodeName:       testNode,
			Containers:     []v1.Container{{Name: "app", Image: "busybox"}},
			InitContainers: []v1.Container{{Name: "init", Image: "busybox"}},
		},
	}
}

// testEnv is a Server behind httptest's TLS server, with a CA that signs
// client certificates and a fake API server that answers SubjectAccessReviews
// with allow.
type testEnv struct {
	t        testing.TB
	url      string
	ca       *testCA
	provider *fakeProvider

	mu   sync.Mutex
	sars []authorizationv1.SubjectAccessReviewSpec
}

// allowUser is the SubjectAccessReview policy of the tests: the API
// server's kubelet client (system:masters) may do anything, "reader" only
// nodes/proxy get, "token-user" anything.
func allowUser(spec authorizationv1.SubjectAccessReviewSpec) bool {
	switch {
	case slices.Contains(spec.Groups, "system:masters"), spec.User == "token-user":
		return true
	case spec.User == "reader":
		return spec.ResourceAttributes.Verb == "get" && spec.ResourceAttributes.Subresource == "proxy"
	}
	return false
}

func newTestEnv(t testing.TB, p *fakeProvider) *testEnv {
	t.Helper()
	env := &testEnv{t: t, ca: newTestCA(t, "cluster-ca"), provider: p}
	dir := t.TempDir()
	caFile := filepath.Join(dir, "client-ca.crt")
	if err := os.WriteFile(caFile, env.ca.pem, 0o600); err != nil {
		t.Fatal(err)
	}

	// The delegating authenticator and authorizer post reviews through the
	// clientset's REST client, which client-go's fake clientset lacks, so
	// the fake API server is an HTTP handler behind a real clientset.
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var obj any
		switch r.URL.Path {
		case "/apis/authorization.k8s.io/v1/subjectaccessreviews":
			sar := &authorizationv1.SubjectAccessReview{}
			if err := json.NewDecoder(r.Body).Decode(sar); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			env.mu.Lock()
			env.sars = append(env.sars, sar.Spec)
			env.mu.Unlock()
			sar.Status.Allowed = allowUser(sar.Spec)
			obj = sar
		case "/apis/authentication.k8s.io/v1/tokenreviews":
			tr := &authenticationv1.TokenReview{}
			if err := json.NewDecoder(r.Body).Decode(tr); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			if tr.Spec.Token == "good-token" {
				tr.Status.Authenticated = true
				tr.Status.User = authenticationv1.UserInfo{Username: "token-user"}
			}
			obj = tr
		default:
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(obj)
	}))
	t.Cleanup(api.Close)
	client, err := kubernetes.NewForConfig(&rest.Config{Host: api.URL})
	if err != nil {
		t.Fatal(err)
	}

	srv, err := New(Config{
		ClientCAFile:         caFile,
		Client:               client,
		NodeName:             testNode,
		Provider:             p,
		AuthCacheTTL:         time.Nanosecond,
		AuthorizedCacheTTL:   time.Nanosecond,
		UnauthorizedCacheTTL: time.Nanosecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM := env.ca.issue(t, testNode, nil, true)
	serving, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewUnstartedServer(srv.Handler())
	hs.EnableHTTP2 = false
	hs.TLS = &tls.Config{Certificates: []tls.Certificate{serving}, ClientAuth: tls.RequestClientCert}
	hs.StartTLS()
	t.Cleanup(hs.Close)
	env.url = hs.URL
	return env
}

// restConfig returns a client config for a user with a client certificate
// signed by the env's CA (cn == "" means no certificate).
func (env *testEnv) restConfig(cn string, orgs ...string) *rest.Config {
	cfg := &rest.Config{Host: env.url, TLSClientConfig: rest.TLSClientConfig{CAData: env.ca.pem}}
	if cn != "" {
		cfg.CertData, cfg.KeyData = env.ca.issue(env.t, cn, orgs, false)
	}
	return cfg
}

// apiServer is the API server's kubelet client identity.
func (env *testEnv) apiServer() *rest.Config {
	return env.restConfig("kube-apiserver-kubelet-client", "system:masters")
}

// httpClient returns a plain HTTP client for cfg's TLS identity.
func (env *testEnv) httpClient(cfg *rest.Config) *http.Client {
	env.t.Helper()
	rt, err := rest.TransportFor(cfg)
	if err != nil {
		env.t.Fatal(err)
	}
	return &http.Client{Transport: rt}
}

// get does GET path as cfg's user and returns the status and body.
func (env *testEnv) get(cfg *rest.Config, path string) (int, string) {
	env.t.Helper()
	resp, err := env.httpClient(cfg).Get(env.url + path)
	if err != nil {
		env.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		env.t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}
