package kubeletapi

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apiserver/pkg/authentication/authenticator"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	"k8s.io/apiserver/pkg/server/dynamiccertificates"
	"k8s.io/apiserver/pkg/server/healthz"
	"k8s.io/client-go/kubernetes"
	"k8s.io/cri-streaming/pkg/streaming/remotecommand"
	"k8s.io/klog/v2"
	k8sv1 "k8s.io/kubernetes/pkg/apis/core/v1"
)

// Defaults that New fills in, as kubelet's.
const (
	DefaultAddr                  = ":10250"
	DefaultStreamIdleTimeout     = 4 * time.Hour
	DefaultStreamCreationTimeout = remotecommand.DefaultStreamCreationTimeout
)

// TerminalSize is a terminal resize event of a TTY exec or attach session.
type TerminalSize = remotecommand.TerminalSize

// Streams are the client's streams of one exec or attach session. A stream
// the client did not ask for is nil.
type Streams struct {
	// Stdin is the client's input (query input=1); it returns io.EOF when the
	// client closes it.
	Stdin io.Reader
	// Stdout receives the container's output (query output=1).
	Stdout io.WriteCloser
	// Stderr receives the container's error output (query error=1); always
	// nil when TTY is set, since a terminal merges both.
	Stderr io.WriteCloser
	// TTY is set when the client asked for a terminal (query tty=1).
	TTY bool
	// Resize delivers terminal size changes while TTY is set; it is closed
	// when the client goes away.
	Resize <-chan TerminalSize
}

// Provider is what the node agent implements. Every method may be called
// concurrently; ctx is cancelled when the client goes away.
type Provider interface {
	// ContainerLogPath returns the CRI-format log file of the container's
	// current attempt, or with previous=true the one before it, and a
	// function that reports whether that attempt is still running (it ends
	// a follow). When there is no such file it returns an error whose text
	// is upstream's (`previous terminated container "c" in pod "p" not
	// found`, `container "c" in pod "p" is waiting to start:
	// ContainerCreating`, ...): the client gets it with 400, or with 404 for
	// a *NotFoundError.
	ContainerLogPath(ctx context.Context, namespace, pod, container string, previous bool) (path string, running func() bool, err error)
	// Exec runs cmd in the container and returns its exit code once it has
	// exited and its output has been written. err is for failures to run it.
	Exec(ctx context.Context, namespace, pod string, uid types.UID, container string, cmd []string, s Streams) (exitCode int, err error)
	// Attach connects s to the container's main process until it exits or
	// ctx is done.
	Attach(ctx context.Context, namespace, pod string, uid types.UID, container string, s Streams) error
	// PortForward copies data between stream and port of the pod, dialled
	// inside the pod's network namespace, until either side closes.
	PortForward(ctx context.Context, namespace, pod string, uid types.UID, port int32, stream io.ReadWriteCloser) error
	// RunningPods returns the pods this node runs (what kubelet's /pods
	// lists). It is also how requests find their pod, so it should be
	// cheap (an informer cache).
	RunningPods(ctx context.Context) ([]*v1.Pod, error)
}

// Config configures a Server. Provider, NodeName and, unless Insecure,
// Client, CertFile, KeyFile and ClientCAFile are required.
type Config struct {
	// Addr is the listen address of Run; default ":10250".
	Addr string
	// CertFile and KeyFile are the serving certificate (signed by the
	// cluster CA) and its key.
	CertFile, KeyFile string
	// GetCertificate, when set, serves the certificate it returns instead
	// of CertFile and KeyFile (a kubelet certificate manager's Current,
	// which changes as it rotates).
	GetCertificate func() *tls.Certificate
	// ClientCAFile verifies client certificates, such as the API server's
	// kubelet client certificate (CN=kube-apiserver-kubelet-client,
	// O=system:masters). It is re-read when it changes while Run runs.
	ClientCAFile string
	// Client sends TokenReviews and SubjectAccessReviews.
	Client kubernetes.Interface
	// NodeName is the node's name, used in SubjectAccessReviews.
	NodeName string
	// Provider serves the pods.
	Provider Provider
	// Stats reads the cgroups /metrics/resource and /metrics/cadvisor
	// report; without it those paths are not served.
	Stats StatsProvider
	// Summary builds /stats/summary; without it that path is not served.
	Summary SummaryProvider
	// StreamIdleTimeout ends an exec, attach or port-forward session that
	// has moved no data for this long; default 4h, as kubelet.
	StreamIdleTimeout time.Duration
	// StreamCreationTimeout bounds how long a client may take to open its
	// streams after the upgrade; default 30s, as kubelet.
	StreamCreationTimeout time.Duration
	// AuthCacheTTL, AuthorizedCacheTTL and UnauthorizedCacheTTL are how long
	// TokenReview and SubjectAccessReview answers are cached; defaults 2m,
	// 5m and 30s, as kubelet. Tests set them to a nanosecond.
	AuthCacheTTL, AuthorizedCacheTTL, UnauthorizedCacheTTL time.Duration
}

// Server is the kubelet API server of one node.
type Server struct {
	cfg      Config
	authn    authenticator.Request
	authz    authorizer.Authorizer
	clientCA *dynamiccertificates.DynamicFileCAContent
	codecs   serializer.CodecFactory
	params   runtime.ParameterCodec
	handler  http.Handler
}

// New checks cfg, fills in its defaults and builds the server's
// authenticator and authorizer.
func New(cfg Config) (*Server, error) {
	if cfg.Provider == nil {
		return nil, errors.New("config has no Provider")
	}
	if cfg.NodeName == "" {
		return nil, errors.New("config has no NodeName")
	}
	if cfg.Client == nil {
		return nil, errors.New("config has no Client")
	}
	if cfg.ClientCAFile == "" {
		return nil, errors.New("config has no ClientCAFile")
	}
	if cfg.Addr == "" {
		cfg.Addr = DefaultAddr
	}
	if cfg.StreamIdleTimeout == 0 {
		cfg.StreamIdleTimeout = DefaultStreamIdleTimeout
	}
	if cfg.StreamCreationTimeout == 0 {
		cfg.StreamCreationTimeout = DefaultStreamCreationTimeout
	}
	if cfg.AuthCacheTTL == 0 {
		cfg.AuthCacheTTL = 2 * time.Minute
	}
	if cfg.AuthorizedCacheTTL == 0 {
		cfg.AuthorizedCacheTTL = 5 * time.Minute
	}
	if cfg.UnauthorizedCacheTTL == 0 {
		cfg.UnauthorizedCacheTTL = 30 * time.Second
	}

	scheme := runtime.NewScheme()
	// The v1 types with upstream's conversions (url.Values → PodLogOptions)
	// and defaults, in a scheme of our own rather than legacyscheme's global.
	if err := k8sv1.AddToScheme(scheme); err != nil {
		return nil, fmt.Errorf("build scheme: %w", err)
	}
	s := &Server{
		cfg:    cfg,
		codecs: serializer.NewCodecFactory(scheme),
		params: runtime.NewParameterCodec(scheme),
	}
	var err error
	if s.authn, s.clientCA, err = buildAuthn(cfg); err != nil {
		return nil, err
	}
	if s.authz, err = buildAuthz(cfg); err != nil {
		return nil, err
	}
	s.handler = s.withAuth(s.routes())
	return s, nil
}

// Handler returns the server's handler, authentication and authorization
// included. Its TLS listener must ask for client certificates
// (tls.RequestClientCert); the authenticator verifies them.
func (s *Server) Handler() http.Handler { return s.handler }

// Run serves HTTPS on cfg.Addr until ctx is done, then shuts the server
// down. Upgraded streams are not waited for: they end with their clients or
// at the stream idle timeout.
func (s *Server) Run(ctx context.Context) error {
	logger := klog.FromContext(ctx)
	if s.cfg.GetCertificate == nil && (s.cfg.CertFile == "" || s.cfg.KeyFile == "") {
		return errors.New("config has no CertFile or KeyFile")
	}
	go s.clientCA.Run(ctx, 1)
	srv := &http.Server{
		Addr:    s.cfg.Addr,
		Handler: s.handler,
		TLSConfig: &tls.Config{
			MinVersion: tls.VersionTLS12,
			// The authenticator verifies client certificates against the
			// (reloadable) client CA, so the handshake only asks for them.
			ClientAuth: tls.RequestClientCert,
		},
		BaseContext: func(net.Listener) context.Context { return ctx },
		// As kubelet's server.
		IdleTimeout:    90 * time.Second,
		ReadTimeout:    4 * 60 * time.Minute,
		WriteTimeout:   4 * 60 * time.Minute,
		MaxHeaderBytes: 1 << 20,
	}
	errCh := make(chan error, 1)
	go func() {
		logger.Info("Starting kubelet API server", "address", s.cfg.Addr)
		if get := s.cfg.GetCertificate; get != nil {
			srv.TLSConfig.GetCertificate = func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
				if c := get(); c != nil {
					return c, nil
				}
				return nil, errors.New("no serving certificate yet")
			}
			errCh <- srv.ListenAndServeTLS("", "")
			return
		}
		errCh <- srv.ListenAndServeTLS(s.cfg.CertFile, s.cfg.KeyFile)
	}()
	select {
	case err := <-errCh:
		return fmt.Errorf("serve kubelet API on %s: %w", s.cfg.Addr, err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		_ = srv.Close()
		return fmt.Errorf("shut down kubelet API server: %w", err)
	}
	return nil
}

// routes returns the endpoints, without authentication.
func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	healthz.InstallHandler(mux, healthz.PingHealthz, healthz.LogHealthz)

	mux.HandleFunc("/pods", getOnly(s.getPods))
	mux.HandleFunc("/runningpods/", getOnly(s.getPods))
	mux.Handle("/metrics", metricsHandler(newMetricsRegistry()))
	if s.cfg.Stats != nil {
		mux.Handle("/metrics/resource", s.resourceMetricsHandler())
		mux.Handle("/metrics/cadvisor", s.cadvisorMetricsHandler())
	}
	if s.cfg.Summary != nil {
		mux.HandleFunc("/stats/summary", getOnly(s.getSummary))
	}
	mux.HandleFunc("/containerLogs/{namespace}/{pod}/{container}", getOnly(s.getContainerLogs))
	for _, m := range []string{http.MethodGet, http.MethodPost} {
		mux.HandleFunc(m+" /exec/{namespace}/{pod}/{container}", s.getExec)
		mux.HandleFunc(m+" /exec/{namespace}/{pod}/{uid}/{container}", s.getExec)
		mux.HandleFunc(m+" /attach/{namespace}/{pod}/{container}", s.getAttach)
		mux.HandleFunc(m+" /attach/{namespace}/{pod}/{uid}/{container}", s.getAttach)
		mux.HandleFunc(m+" /portForward/{namespace}/{pod}", s.getPortForward)
		mux.HandleFunc(m+" /portForward/{namespace}/{pod}/{uid}", s.getPortForward)
	}
	return mux
}

// getOnly answers 405 to anything but GET, as upstream's GETOnlyRestfulFilter.
func getOnly(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			w.Header().Set("Allow", http.MethodGet)
			writeError(w, http.StatusMethodNotAllowed, "Method Not Allowed")
			return
		}
		h(w, r)
	}
}

// writeError writes msg as the plain body of a code response, as go-restful's
// WriteErrorString and WriteError do for kubelet.
func writeError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(code)
	_, _ = io.WriteString(w, msg)
}

// getPods serves /pods and /runningpods/ as a v1 PodList.
func (s *Server) getPods(w http.ResponseWriter, r *http.Request) {
	logger := klog.FromContext(r.Context())
	pods, err := s.cfg.Provider.RunningPods(r.Context())
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	list := &v1.PodList{}
	for _, pod := range pods {
		list.Items = append(list.Items, *pod)
	}
	data, err := runtime.Encode(s.codecs.LegacyCodec(v1.SchemeGroupVersion), list)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	if _, err := w.Write(data); err != nil {
		logger.Error(err, "Error writing response")
	}
}

// NotFoundError reports that the pod, or the container in it, named by a
// request is not on this node. Handlers answer it with 404.
type NotFoundError struct {
	Namespace, Pod, Container string
}

func (e *NotFoundError) Error() string {
	if e.Container == "" {
		return fmt.Sprintf("pod %q does not exist", e.Pod)
	}
	return fmt.Sprintf("container %q not found in pod %q", e.Container, e.Pod)
}

// findPod returns the pod namespace/name among the provider's pods, or a
// *NotFoundError.
func (s *Server) findPod(ctx context.Context, namespace, name string) (*v1.Pod, error) {
	pods, err := s.cfg.Provider.RunningPods(ctx)
	if err != nil {
		return nil, fmt.Errorf("list pods: %w", err)
	}
	for _, pod := range pods {
		if pod.Namespace == namespace && pod.Name == name {
			return pod, nil
		}
	}
	return nil, &NotFoundError{Namespace: namespace, Pod: name}
}

// hasContainer reports whether pod's spec has a container, init container or
// ephemeral container called name, as kubecontainer.GetContainerSpec.
func hasContainer(pod *v1.Pod, name string) bool {
	for _, c := range pod.Spec.Containers {
		if c.Name == name {
			return true
		}
	}
	for _, c := range pod.Spec.InitContainers {
		if c.Name == name {
			return true
		}
	}
	for _, c := range pod.Spec.EphemeralContainers {
		if c.Name == name {
			return true
		}
	}
	return false
}
