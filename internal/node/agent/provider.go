package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"

	"github.com/containernetworking/plugins/pkg/ns"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"

	"github.com/pocketkube/pocketkube/internal/node/kubeletapi"
	"github.com/pocketkube/pocketkube/internal/node/runtime"
)

// Streamer is the part of the runtime the kubelet API needs.
type Streamer interface {
	Exec(ctx context.Context, id string, cmd []string, s runtime.Streams) (int, error)
	Attach(ctx context.Context, id string, s runtime.Streams) error
	ContainerStatus(ctx context.Context, id string) (*runtime.ContainerStatus, error)
}

// Provider serves the kubelet API (internal/node/kubeletapi) from the
// agent's pods and the runtime.
type Provider struct {
	agent    *Agent
	streamer Streamer
}

var _ kubeletapi.Provider = (*Provider)(nil)

// Provider returns the agent's kubelet API provider.
func (a *Agent) Provider(s Streamer) *Provider { return &Provider{agent: a, streamer: s} }

// RunningPods returns the pods bound to this node, from the informer.
func (p *Provider) RunningPods(ctx context.Context) ([]*v1.Pod, error) {
	return p.agent.podLister.List(labels.Everything())
}

func (p *Provider) pod(namespace, name string) (*v1.Pod, error) {
	pod, err := p.agent.podLister.Pods(namespace).Get(name)
	if err != nil {
		return nil, &kubeletapi.NotFoundError{Namespace: namespace, Pod: name}
	}
	return pod, nil
}

// containers returns the attempts of one container of the pod, latest
// last.
func (p *Provider) attempts(ctx context.Context, pod *v1.Pod, container string) (latest, previous *runtime.ContainerStatus, err error) {
	all, err := p.agent.cfg.Runtime.ListContainers(ctx, string(pod.UID))
	if err != nil {
		return nil, nil, err
	}
	for _, c := range all {
		if c.Name != container {
			continue
		}
		switch {
		case latest == nil || c.Attempt > latest.Attempt:
			previous, latest = latest, c
		case previous == nil || c.Attempt > previous.Attempt:
			previous = c
		}
	}
	return latest, previous, nil
}

// ContainerLogPath finds the log of the container's current or previous
// attempt, with kubelet's messages (validateContainerLogStatus) when
// there is none.
func (p *Provider) ContainerLogPath(ctx context.Context, namespace, name, container string, previous bool) (string, func() bool, error) {
	pod, err := p.pod(namespace, name)
	if err != nil {
		return "", nil, err
	}
	if !hasContainerSpec(pod, container) {
		return "", nil, fmt.Errorf("container %s is not valid for pod %s", container, name)
	}
	latest, prev, err := p.attempts(ctx, pod, container)
	if err != nil {
		return "", nil, err
	}
	c := latest
	if previous {
		c = prev
		if c == nil {
			return "", nil, fmt.Errorf("previous terminated container %q in pod %q not found", container, name)
		}
	}
	if c == nil {
		reason := reasonContainerCreating
		if cs := statusOf(pod, container); cs != nil && cs.State.Waiting != nil {
			reason = cs.State.Waiting.Reason
		}
		return "", nil, fmt.Errorf("container %q in pod %q is waiting to start: %s", container, name, reason)
	}
	id := c.ID
	running := func() bool {
		s, err := p.streamer.ContainerStatus(context.Background(), id)
		return err == nil && (s.State == runtime.StateRunning || s.State == runtime.StateCreated)
	}
	return c.LogPath, running, nil
}

func hasContainerSpec(pod *v1.Pod, name string) bool {
	return specContainer(pod, name) != nil
}

func statusOf(pod *v1.Pod, name string) *v1.ContainerStatus {
	for _, list := range [][]v1.ContainerStatus{pod.Status.InitContainerStatuses, pod.Status.ContainerStatuses, pod.Status.EphemeralContainerStatuses} {
		for i := range list {
			if list[i].Name == name {
				return &list[i]
			}
		}
	}
	return nil
}

// runningContainer returns the ID of the container's running attempt.
func (p *Provider) runningContainer(ctx context.Context, namespace, name string, uid types.UID, container string) (string, error) {
	pod, err := p.pod(namespace, name)
	if err != nil {
		return "", err
	}
	if uid != "" && pod.UID != uid {
		return "", &kubeletapi.NotFoundError{Namespace: namespace, Pod: name}
	}
	latest, _, err := p.attempts(ctx, pod, container)
	if err != nil {
		return "", err
	}
	if latest == nil || latest.State != runtime.StateRunning {
		return "", fmt.Errorf("container %s is not running", container)
	}
	return latest.ID, nil
}

func toRuntimeStreams(s kubeletapi.Streams) (runtime.Streams, func()) {
	rs := runtime.Streams{Stdin: s.Stdin, TTY: s.TTY}
	if s.Stdout != nil {
		rs.Stdout = s.Stdout
	}
	if s.Stderr != nil {
		rs.Stderr = s.Stderr
	}
	if s.Resize == nil {
		return rs, func() {}
	}
	resize := make(chan runtime.TerminalSize)
	done := make(chan struct{})
	go func() {
		defer close(resize)
		for {
			select {
			case sz, ok := <-s.Resize:
				if !ok {
					return
				}
				select {
				case resize <- runtime.TerminalSize{Width: sz.Width, Height: sz.Height}:
				case <-done:
					return
				}
			case <-done:
				return
			}
		}
	}()
	rs.Resize = resize
	var once sync.Once
	return rs, func() { once.Do(func() { close(done) }) }
}

// Exec runs cmd in the container's running attempt.
func (p *Provider) Exec(ctx context.Context, namespace, name string, uid types.UID, container string, cmd []string, s kubeletapi.Streams) (int, error) {
	id, err := p.runningContainer(ctx, namespace, name, uid, container)
	if err != nil {
		return 0, err
	}
	rs, stop := toRuntimeStreams(s)
	defer stop()
	return p.streamer.Exec(ctx, id, cmd, rs)
}

// Attach connects to the container's running attempt.
func (p *Provider) Attach(ctx context.Context, namespace, name string, uid types.UID, container string, s kubeletapi.Streams) error {
	id, err := p.runningContainer(ctx, namespace, name, uid, container)
	if err != nil {
		return err
	}
	rs, stop := toRuntimeStreams(s)
	defer stop()
	return p.streamer.Attach(ctx, id, rs)
}

// PortForward dials port on the pod's loopback inside its network
// namespace, as containerd's CRI does, and copies both ways.
func (p *Provider) PortForward(ctx context.Context, namespace, name string, uid types.UID, port int32, stream io.ReadWriteCloser) error {
	pod, err := p.pod(namespace, name)
	if err != nil {
		return err
	}
	if uid != "" && pod.UID != uid {
		return &kubeletapi.NotFoundError{Namespace: namespace, Pod: name}
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(int(port)))
	var conn net.Conn
	dial := func(ns.NetNS) error {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp4", addr)
		conn = c
		return err
	}
	if pod.Spec.HostNetwork {
		err = dial(nil)
	} else {
		p.agent.mu.Lock()
		st := p.agent.states[string(pod.UID)]
		p.agent.mu.Unlock()
		if st == nil || st.netns == "" {
			return fmt.Errorf("pod %s/%s has no network namespace", namespace, name)
		}
		err = ns.WithNetNSPath(st.netns, dial)
	}
	if err != nil {
		return fmt.Errorf("failed to connect to localhost:%d inside namespace of pod %s/%s: %w", port, namespace, name, err)
	}
	defer conn.Close()
	errc := make(chan error, 2)
	go func() {
		_, err := io.Copy(conn, stream)
		if tc, ok := conn.(*net.TCPConn); ok {
			tc.CloseWrite()
		}
		errc <- err
	}()
	go func() {
		_, err := io.Copy(stream, conn)
		errc <- err
	}()
	select {
	case err = <-errc:
	case <-ctx.Done():
	}
	if errors.Is(err, net.ErrClosed) || errors.Is(err, io.EOF) {
		err = nil
	}
	return err
}
