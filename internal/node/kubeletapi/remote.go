package kubeletapi

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apiserver/pkg/util/proxy"
	"k8s.io/cri-streaming/pkg/streaming/portforward"
	"k8s.io/cri-streaming/pkg/streaming/remotecommand"
	"k8s.io/klog/v2"
	"k8s.io/streaming/pkg/httpstream/wsstream"
	utilexec "k8s.io/utils/exec"
)

// getExec serves /exec: SPDY v1–v4 and WebSocket v4 through cri-streaming's
// ServeExec, WebSocket v5 through serveV5.
func (s *Server) getExec(w http.ResponseWriter, r *http.Request) {
	pod, opts, ok := s.prepareRemoteCommand(w, r)
	if !ok {
		return
	}
	e := executor{p: s.cfg.Provider, namespace: pod.Namespace}
	container := r.PathValue("container")
	cmd := r.URL.Query()["command"]
	if wsstream.IsWebSocketRequestWithStreamCloseProtocol(r) {
		s.serveV5(w, r, opts, func(ctx context.Context, st Streams) error {
			return e.ExecInContainer(ctx, pod.Name, string(pod.UID), container, cmd, st.Stdin, st.Stdout, st.Stderr, st.TTY, st.Resize, 0)
		})
		return
	}
	remotecommand.ServeExec(w, r, e, pod.Name, string(pod.UID), container, cmd, opts,
		s.cfg.StreamIdleTimeout, s.cfg.StreamCreationTimeout, remotecommand.SupportedStreamingProtocols)
}

// getAttach serves /attach like getExec.
func (s *Server) getAttach(w http.ResponseWriter, r *http.Request) {
	pod, opts, ok := s.prepareRemoteCommand(w, r)
	if !ok {
		return
	}
	a := attacher{p: s.cfg.Provider, namespace: pod.Namespace}
	container := r.PathValue("container")
	if wsstream.IsWebSocketRequestWithStreamCloseProtocol(r) {
		s.serveV5(w, r, opts, func(ctx context.Context, st Streams) error {
			if err := a.AttachContainer(ctx, pod.Name, string(pod.UID), container, st.Stdin, st.Stdout, st.Stderr, st.TTY, st.Resize); err != nil {
				return fmt.Errorf("error attaching to container: %v", err)
			}
			return nil
		})
		return
	}
	remotecommand.ServeAttach(w, r, a, pod.Name, string(pod.UID), container, opts,
		s.cfg.StreamIdleTimeout, s.cfg.StreamCreationTimeout, remotecommand.SupportedStreamingProtocols)
}

// prepareRemoteCommand parses the stream options and finds the pod of an
// exec or attach request, answering 400 or 404 itself.
func (s *Server) prepareRemoteCommand(w http.ResponseWriter, r *http.Request) (*v1.Pod, *remotecommand.Options, bool) {
	opts, err := remotecommand.NewOptions(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return nil, nil, false
	}
	pod, ok := s.podForStream(w, r)
	return pod, opts, ok
}

// podForStream finds the pod of a streaming request: 404 "pod does not
// exist" when it is not here, 404 "pod not found" when the URL's UID is
// another incarnation's, as upstream.
func (s *Server) podForStream(w http.ResponseWriter, r *http.Request) (*v1.Pod, bool) {
	pod, err := s.findPod(r.Context(), r.PathValue("namespace"), r.PathValue("pod"))
	if err != nil {
		if statusFor(err) == http.StatusNotFound {
			writeError(w, http.StatusNotFound, "pod does not exist")
		} else {
			writeError(w, http.StatusInternalServerError, err.Error())
		}
		return nil, false
	}
	if uid := types.UID(r.PathValue("uid")); uid != "" && uid != pod.UID {
		writeError(w, http.StatusNotFound, "pod not found")
		return nil, false
	}
	return pod, true
}

// getPortForward serves /portForward: SPDY and the WebSocket channel
// protocol through cri-streaming's ServePortForward, and SPDY tunnelled in
// WebSocket (SPDY/3.1+portforward.k8s.io, kubectl's default since 1.31)
// through apiserver's TunnelingHandler around the same.
func (s *Server) getPortForward(w http.ResponseWriter, r *http.Request) {
	tunnel := wsstream.IsWebSocketRequestWithTunnelingProtocol(r)
	opts := &portforward.V4Options{}
	if !tunnel {
		var err error
		if opts, err = portforward.NewV4Options(r); err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
	}
	pod, ok := s.podForStream(w, r)
	if !ok {
		return
	}
	f := forwarder{p: s.cfg.Provider, namespace: pod.Namespace}
	var h http.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		portforward.ServePortForward(w, r, f, pod.Name, string(pod.UID), opts,
			s.cfg.StreamIdleTimeout, s.cfg.StreamCreationTimeout, portforward.SupportedProtocols)
	})
	if tunnel {
		h = proxy.NewTunnelingHandler(upgradeOnHijack(h))
	}
	h.ServeHTTP(w, r)
}

// executor adapts Provider.Exec to cri-streaming's Executor.
type executor struct {
	p         Provider
	namespace string
}

func (e executor) ExecInContainer(ctx context.Context, name, uid, container string, cmd []string, in io.Reader, out, errw io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize, _ time.Duration) error {
	code, err := e.p.Exec(ctx, e.namespace, name, types.UID(uid), container, cmd, newStreams(in, out, errw, tty, resize))
	if err != nil {
		return err
	}
	if code != 0 {
		// ServeExec and serveV5 turn an ExitError into the NonZeroExitCode
		// status that clients report as "command terminated with exit code N".
		return utilexec.CodeExitError{Err: fmt.Errorf("command terminated with exit code %d", code), Code: code}
	}
	return nil
}

// attacher adapts Provider.Attach to cri-streaming's Attacher.
type attacher struct {
	p         Provider
	namespace string
}

func (a attacher) AttachContainer(ctx context.Context, name, uid, container string, in io.Reader, out, errw io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize) error {
	return a.p.Attach(ctx, a.namespace, name, types.UID(uid), container, newStreams(in, out, errw, tty, resize))
}

// forwarder adapts Provider.PortForward to cri-streaming's PortForwarder.
type forwarder struct {
	p         Provider
	namespace string
}

func (f forwarder) PortForward(ctx context.Context, name, uid string, port int32, stream io.ReadWriteCloser) error {
	return f.p.PortForward(ctx, f.namespace, name, types.UID(uid), port, stream)
}

// newStreams builds Streams, keeping absent streams nil interfaces rather
// than typed nils.
func newStreams(in io.Reader, out, errw io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize) Streams {
	st := Streams{TTY: tty, Resize: resize}
	if in != nil {
		st.Stdin = in
	}
	if out != nil {
		st.Stdout = out
	}
	if errw != nil && !tty {
		st.Stderr = errw
	}
	return st
}

// serveV5 serves remote command protocol v5.channel.k8s.io over WebSocket,
// which cri-streaming does not offer: the framing and the CLOSE signal are
// wsstream's, the channels and status are what apiserver's stream
// translator serves for kubelet (apiserver/pkg/util/proxy/websocket.go).
func (s *Server) serveV5(w http.ResponseWriter, r *http.Request, opts *remotecommand.Options, run func(context.Context, Streams) error) {
	logger := klog.FromContext(r.Context())
	channels := []wsstream.ChannelType{
		remotecommand.StreamStdIn:  wsstream.IgnoreChannel,
		remotecommand.StreamStdOut: wsstream.IgnoreChannel,
		remotecommand.StreamStdErr: wsstream.IgnoreChannel,
		remotecommand.StreamErr:    wsstream.WriteChannel,
		remotecommand.StreamResize: wsstream.ReadChannel,
	}
	if opts.Stdin {
		channels[remotecommand.StreamStdIn] = wsstream.ReadChannel
	}
	if opts.Stdout {
		channels[remotecommand.StreamStdOut] = wsstream.WriteChannel
	}
	if opts.Stderr {
		channels[remotecommand.StreamStdErr] = wsstream.WriteChannel
	}
	conn := wsstream.NewConn(map[string]wsstream.ChannelProtocolConfig{
		remotecommand.StreamProtocolV5Name: {Binary: true, Channels: channels},
	})
	conn.SetIdleTimeout(s.cfg.StreamIdleTimeout)
	_, streams, err := conn.Open(w, r)
	if err != nil {
		logger.Error(err, "Unable to upgrade websocket connection")
		return
	}
	defer func() { _ = conn.Close() }()

	// Tell the client the connection is up with an empty message on the
	// lowest writable channel, as upstream.
	switch {
	case opts.Stdout:
		_, _ = streams[remotecommand.StreamStdOut].Write(nil)
	case opts.Stderr:
		_, _ = streams[remotecommand.StreamStdErr].Write(nil)
	default:
		_, _ = streams[remotecommand.StreamErr].Write(nil)
	}

	var st Streams
	if opts.Stdin {
		st.Stdin = streams[remotecommand.StreamStdIn]
	}
	if opts.Stdout {
		st.Stdout = streams[remotecommand.StreamStdOut]
	}
	if opts.Stderr && !opts.TTY {
		st.Stderr = streams[remotecommand.StreamStdErr]
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	if opts.TTY {
		st.TTY = true
		resize := make(chan TerminalSize)
		st.Resize = resize
		go handleResizeEvents(ctx, streams[remotecommand.StreamResize], resize)
	}

	status := &metav1.Status{Status: metav1.StatusSuccess}
	if err := run(ctx, st); err != nil {
		var exitErr utilexec.ExitError
		if errors.As(err, &exitErr) && exitErr.Exited() {
			status = &metav1.Status{
				Status: metav1.StatusFailure,
				Reason: remotecommand.NonZeroExitCodeReason,
				Details: &metav1.StatusDetails{Causes: []metav1.StatusCause{{
					Type:    remotecommand.ExitCodeCauseType,
					Message: fmt.Sprintf("%d", exitErr.ExitStatus()),
				}}},
				Message: fmt.Sprintf("command terminated with non-zero exit code: %v", exitErr),
			}
		} else {
			logger.Error(err, "Error in remote command")
			status = &apierrors.NewInternalError(err).ErrStatus
		}
	}
	bs, err := json.Marshal(status)
	if err == nil {
		_, err = streams[remotecommand.StreamErr].Write(bs)
	}
	if err != nil {
		logger.Error(err, "Unable to write remote command status")
	}
}

// handleResizeEvents decodes TerminalSize messages from stream into ch until
// the stream ends or ctx is done, then closes ch.
func handleResizeEvents(ctx context.Context, stream io.Reader, ch chan<- TerminalSize) {
	defer close(ch)
	dec := json.NewDecoder(stream)
	for {
		var size TerminalSize
		if err := dec.Decode(&size); err != nil {
			return
		}
		select {
		case ch <- size:
		case <-ctx.Done():
			return
		}
	}
}

// upgradeOnHijack lets a handler that upgrades in place (SPDY's
// ResponseUpgrader: WriteHeader(101), then Hijack) run behind apiserver's
// TunnelingHandler, which expects a proxy that writes the upstream's raw
// 101 response into the hijacked connection.
func upgradeOnHijack(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(&hijackUpgrader{ResponseWriter: w, header: http.Header{}}, r)
	})
}

type hijackUpgrader struct {
	http.ResponseWriter
	header   http.Header
	upgraded bool
}

func (u *hijackUpgrader) Header() http.Header { return u.header }

func (u *hijackUpgrader) WriteHeader(code int) {
	if code == http.StatusSwitchingProtocols {
		u.upgraded = true
		return
	}
	u.copyHeader()
	u.ResponseWriter.WriteHeader(code)
}

func (u *hijackUpgrader) Write(p []byte) (int, error) {
	u.copyHeader()
	return u.ResponseWriter.Write(p)
}

func (u *hijackUpgrader) copyHeader() {
	for k, v := range u.header {
		u.ResponseWriter.Header()[k] = v
	}
}

func (u *hijackUpgrader) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	hj, ok := u.ResponseWriter.(http.Hijacker)
	if !ok || !u.upgraded {
		return nil, nil, errors.New("hijack before upgrade")
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		return nil, nil, err
	}
	resp := &http.Response{
		StatusCode: http.StatusSwitchingProtocols,
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     u.header,
	}
	bw := bufio.NewWriter(conn)
	if err := resp.Write(bw); err != nil {
		_ = conn.Close()
		return nil, nil, fmt.Errorf("write upgrade response: %w", err)
	}
	if err := bw.Flush(); err != nil {
		_ = conn.Close()
		return nil, nil, fmt.Errorf("write upgrade response: %w", err)
	}
	return conn, bufio.NewReadWriter(bufio.NewReader(conn), bufio.NewWriter(conn)), nil
}
