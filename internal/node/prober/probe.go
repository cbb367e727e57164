package prober

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/component-base/version"
	remote "k8s.io/cri-client/pkg"
	"k8s.io/klog/v2"
	"k8s.io/kubernetes/pkg/probe"
	execprobe "k8s.io/kubernetes/pkg/probe/exec"
	grpcprobe "k8s.io/kubernetes/pkg/probe/grpc"
	httpprobe "k8s.io/kubernetes/pkg/probe/http"
	tcpprobe "k8s.io/kubernetes/pkg/probe/tcp"
	"k8s.io/kubernetes/third_party/forked/golang/expansion"
	utilexec "k8s.io/utils/exec"
)

// Executor runs a command in a running container; the agent passes the
// runtime's exec. output is stdout and stderr combined and exitCode is the
// command's exit code. err is for failing to run the command at all, not
// for a non-zero exit. ExecSync must return when ctx is done; timeout is
// also given so that a runtime can enforce it itself (0 means none).
type Executor interface {
	ExecSync(ctx context.Context, containerID string, cmd []string, timeout time.Duration) (output []byte, exitCode int, err error)
}

// probeType is one of kubelet's three probe kinds.
type probeType int

const (
	liveness probeType = iota
	readiness
	startup
)

// String returns the name kubelet uses in events ("Liveness probe failed: …").
func (t probeType) String() string {
	switch t {
	case readiness:
		return "Readiness"
	case liveness:
		return "Liveness"
	case startup:
		return "Startup"
	default:
		return "UNKNOWN"
	}
}

// maxProbeRetries is how often kubelet retries a probe that errors (as
// opposed to one that fails) before it gives up for this period.
const maxProbeRetries = 3

// probers holds upstream's probe implementations. They are stateless apart
// from the HTTP transport, so one set serves every worker.
type probers struct {
	exec execprobe.Prober
	http httpprobe.Prober
	tcp  tcpprobe.Prober
	grpc grpcprobe.Prober
}

func newProbers() probers {
	// kubelet never follows redirects to other hosts: they are a warning.
	const followNonLocalRedirects = false
	return probers{
		exec: execprobe.New(),
		http: httpprobe.New(followNonLocalRedirects),
		tcp:  tcpprobe.New(),
		grpc: grpcprobe.New(),
	}
}

// target is what one probe runs against.
type target struct {
	pod         *v1.Pod
	container   *v1.Container
	containerID string
	podIP       string
}

// runProbe runs p once, retrying errors as kubelet's runProbeWithRetries
// does, and returns upstream's result and output.
func (pb probers) runProbe(ctx context.Context, ex Executor, p *v1.Probe, t target) (probe.Result, string, error) {
	var (
		result probe.Result
		output string
		err    error
	)
	for range maxProbeRetries {
		result, output, err = pb.runProbeOnce(ctx, ex, p, t)
		if err == nil {
			return result, output, nil
		}
		if ctx.Err() != nil {
			break
		}
	}
	return result, output, err
}

func (pb probers) runProbeOnce(ctx context.Context, ex Executor, p *v1.Probe, t target) (probe.Result, string, error) {
	logger := klog.FromContext(ctx)
	timeout := time.Duration(p.TimeoutSeconds) * time.Second
	switch {
	case p.Exec != nil:
		command := expandCommand(p.Exec.Command, t.container.Env)
		logger.V(4).Info("Exec-Probe runProbe", "pod", klog.KObj(t.pod), "containerName", t.container.Name, "execCommand", command)
		return pb.exec.Probe(&execCmd{ctx: ctx, exec: ex, containerID: t.containerID, cmd: command, timeout: timeout})

	case p.HTTPGet != nil:
		req, err := newHTTPRequest(p.HTTPGet, t.container, t.podIP, "probe")
		if err != nil {
			return probe.Unknown, "", err
		}
		logger.V(4).Info("HTTP-Probe", "url", req.URL.String(), "timeout", timeout)
		return pb.http.Probe(req.WithContext(ctx), timeout)

	case p.TCPSocket != nil:
		port, err := probe.ResolveContainerPort(p.TCPSocket.Port, t.container)
		if err != nil {
			return probe.Unknown, "", err
		}
		host := p.TCPSocket.Host
		if host == "" {
			host = t.podIP
		}
		logger.V(4).Info("TCP-Probe", "host", host, "port", port, "timeout", timeout)
		return pb.tcp.Probe(host, port, timeout)

	case p.GRPC != nil:
		service := ""
		if p.GRPC.Service != nil {
			service = *p.GRPC.Service
		}
		logger.V(4).Info("GRPC-Probe", "host", t.podIP, "service", service, "port", p.GRPC.Port, "timeout", timeout)
		return pb.grpc.Probe(t.podIP, service, int(p.GRPC.Port), timeout, grpcprobe.ProbeOptions{})

	default:
		return probe.Unknown, "", fmt.Errorf("missing probe handler for %s:%s", podDesc(t.pod), t.container.Name)
	}
}

// newHTTPRequest builds the request kubelet sends for an httpGet probe or
// hook, with upstream's URL, headers and User-Agent.
func newHTTPRequest(get *v1.HTTPGetAction, c *v1.Container, podIP, purpose string) (*http.Request, error) {
	req, err := httpprobe.NewRequestForHTTPGetAction(get, c, podIP, purpose)
	if err != nil {
		return nil, err
	}
	// A binary built without the Makefile's -ldflags (tests, go run) has no
	// Kubernetes version, and upstream would send "kube-probe/."; send the
	// version this component-base belongs to instead.
	if v := version.Get(); v.Major == "" && req.Header.Get("User-Agent") == "kube-"+purpose+"/." {
		req.Header.Set("User-Agent", "kube-"+purpose+"/"+version.DefaultKubeBinaryVersion)
	}
	return req, nil
}

// expandCommand expands $(VAR) references to the container's static
// environment, as kubelet's ExpandContainerCommandOnlyStatic does: exec
// probes see neither the Downward API nor other dynamic values.
func expandCommand(cmd []string, env []v1.EnvVar) []string {
	vars := make(map[string]string, len(env))
	for _, e := range env {
		vars[e.Name] = e.Value
	}
	mapping := expansion.MappingFuncFor(vars)
	var out []string
	for _, c := range cmd {
		out = append(out, expansion.Expand(c, mapping))
	}
	return out
}

// execCmd adapts an Executor to the k8s.io/utils/exec.Cmd that upstream's
// exec prober drives, with the errors kubelet's CRI client returns: a
// CodeExitError for a non-zero exit and remote.ErrCommandTimedOut when the
// timeout passes.
type execCmd struct {
	ctx         context.Context
	exec        Executor
	containerID string
	cmd         []string
	timeout     time.Duration
	out         io.Writer
}

var _ utilexec.Cmd = (*execCmd)(nil)

func (e *execCmd) run() ([]byte, error) {
	ctx := e.ctx
	if e.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, e.timeout)
		defer cancel()
	}
	out, code, err := e.execOutput(ctx)
	if e.timeout > 0 && errors.Is(ctx.Err(), context.DeadlineExceeded) && e.ctx.Err() == nil {
		return nil, fmt.Errorf("%w: %q timed out after %s", remote.ErrCommandTimedOut, strings.Join(e.cmd, " "), e.timeout)
	}
	if err != nil {
		return out, fmt.Errorf("exec in container %s: %w", e.containerID, err)
	}
	if code != 0 {
		return out, utilexec.CodeExitError{
			Err:  fmt.Errorf("command '%s' exited with %d: %s", strings.Join(e.cmd, " "), code, out),
			Code: code,
		}
	}
	return out, nil
}

func (e *execCmd) Start() error {
	out, err := e.run()
	if e.out != nil {
		_, _ = e.out.Write(out)
	}
	return err
}

func (e *execCmd) CombinedOutput() ([]byte, error) { return e.run() }
func (e *execCmd) Run() error                      { return e.Start() }
func (e *execCmd) Wait() error                     { return nil }
func (e *execCmd) Output() ([]byte, error)         { return nil, errors.New("unimplemented") }
func (e *execCmd) SetDir(string)                   {}
func (e *execCmd) SetStdin(io.Reader)              {}
func (e *execCmd) SetStdout(w io.Writer)           { e.out = w }
func (e *execCmd) SetStderr(w io.Writer)           { e.out = w }
func (e *execCmd) SetEnv([]string)                 {}
func (e *execCmd) Stop()                           {}
func (e *execCmd) StdoutPipe() (io.ReadCloser, error) {
	return nil, errors.New("unimplemented")
}
func (e *execCmd) StderrPipe() (io.ReadCloser, error) {
	return nil, errors.New("unimplemented")
}

// podDesc is kubelet's format.Pod: name_namespace(uid).
func podDesc(pod *v1.Pod) string {
	if pod == nil {
		return "<nil>"
	}
	return fmt.Sprintf("%s_%s(%s)", pod.Name, pod.Namespace, pod.UID)
}
