package agent

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"

	"github.com/pocketkube/pocketkube/internal/node/prober"
	"github.com/pocketkube/pocketkube/internal/node/runtime"
)

// execer is the part of the runtime probes and hooks need.
type execer interface {
	Exec(ctx context.Context, id string, cmd []string, s runtime.Streams) (int, error)
}

// execSync runs a command in a container and collects its output, for
// exec probes and hooks (the CRI's ExecSync).
type execSync struct{ rt execer }

var (
	_ prober.Executor       = execSync{}
	_ prober.StreamExecutor = execSync{}
)

func (e execSync) ExecSync(ctx context.Context, id string, cmd []string, _ time.Duration) ([]byte, int, error) {
	buf := lockedBuffer{remain: maxExecSyncOutput}
	code, err := e.rt.Exec(ctx, id, cmd, runtime.Streams{Stdout: &buf, Stderr: &buf})
	return buf.Bytes(), code, err
}

// ExecStream runs a command in a container with its output written to
// out as it comes: exec probes keep 10 KiB of it and drop the rest.
func (e execSync) ExecStream(ctx context.Context, id string, cmd []string, _ time.Duration, out io.Writer) (int, error) {
	return e.rt.Exec(ctx, id, cmd, runtime.Streams{Stdout: out, Stderr: out})
}

// maxExecSyncOutput is how much of a probe's or hook's output execSync
// keeps, as containerd's ExecSync keeps 16 MiB (maxStreamSize): the rest
// is read and dropped, so that a command writing without end (`cat
// /dev/zero`) cannot grow this process. Probes stream instead
// (ExecStream); hooks collect, since their failure message holds the
// output, as kubelet's does.
const maxExecSyncOutput = 16 << 20

// lockedBuffer takes stdout and stderr, written concurrently, and keeps
// the first remain bytes.
type lockedBuffer struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	remain int
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	keep := p[:min(len(p), b.remain)]
	b.remain -= len(keep)
	b.buf.Write(keep)
	return len(p), nil
}

func (b *lockedBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return bytes.Clone(b.buf.Bytes())
}

// updateProbes hands the pod's running containers to the prober, and kills
// those whose liveness probe failed, as kubelet's SyncPod does; they then
// restart per the pod's restartPolicy.
func (a *Agent) updateProbes(ctx context.Context, pod *v1.Pod, st *podState, containers []*runtime.ContainerStatus) {
	if a.prober == nil {
		return
	}
	running := map[string]prober.RunningContainer{}
	for name, cs := range latestByName(containers) {
		if cs.State == runtime.StateRunning {
			running[name] = prober.RunningContainer{ID: cs.ID, StartedAt: cs.StartedAt}
		}
	}
	podIP := ""
	if len(st.podIPs) > 0 {
		podIP = st.podIPs[0]
	}
	a.prober.Update(ctx, pod, podIP, running)
	uid := string(pod.UID)
	for _, c := range allContainers(pod) {
		rc, ok := running[c.Name]
		if !ok {
			continue
		}
		if failed, _ := a.prober.Liveness(uid, c.Name); failed {
			a.recordContainer(pod, c, v1.EventTypeNormal, "Killing", "Container %s failed liveness probe, will be restarted", c.Name)
			grace := gracePeriod(pod)
			if g := a.prober.TerminationGracePeriod(uid, c.Name); g != nil {
				grace = time.Duration(*g) * time.Second
			}
			if err := a.stopContainer(ctx, pod, c, rc.ID, grace); err != nil {
				klog.FromContext(ctx).Error(err, "Killing container that failed its liveness probe", "pod", klog.KObj(pod), "container", c.Name)
			}
		}
	}
}

// stopContainer runs the container's preStop hook within grace, then
// stops it with what is left of grace (kubelet's killContainer). c is nil
// for a pod known only from leftovers, which has no spec and so no hook.
func (a *Agent) stopContainer(ctx context.Context, pod *v1.Pod, c *v1.Container, id string, grace time.Duration) error {
	return a.stopInTurn(ctx, pod, c, id, grace, nil)
}

// stopInTurn is stopContainer for a pod with sidecars: after the preStop
// hook, the container waits for its turn in order (nil: no waiting), and
// what is left of grace after both is its stop timeout, as in kubelet's
// killContainer.
func (a *Agent) stopInTurn(ctx context.Context, pod *v1.Pod, c *v1.Container, id string, grace time.Duration, order *terminationOrder) error {
	start := a.cfg.Clock.Now()
	if c != nil && c.Lifecycle != nil && c.Lifecycle.PreStop != nil && grace > 0 {
		hctx, cancel := context.WithTimeout(ctx, grace)
		msg, err := prober.RunHandler(hctx, execSync{a.cfg.Runtime}, pod, c, firstIP(a, pod), id, c.Lifecycle.PreStop)
		cancel()
		if err != nil {
			a.recordContainer(pod, c, v1.EventTypeWarning, "FailedPreStopHook", "%s", msg)
		}
	}
	left := grace - a.cfg.Clock.Since(start)
	if c != nil && left > 0 {
		left -= order.waitForTurn(c.Name, left)
	}
	if left < 2*time.Second && grace >= 2*time.Second {
		left = 2 * time.Second // kubelet's minimumGracePeriodInSeconds after a hook
	}
	if err := a.cfg.Runtime.StopContainer(ctx, id, max(left, 0)); err != nil {
		return fmt.Errorf("stop container %s of pod %s: %w", id, klog.KObj(pod), err)
	}
	if c != nil {
		order.stopped(c.Name)
	}
	return nil
}

// runPostStart runs the container's postStart hook; a failure kills the
// container, as kubelet does, and is reported as FailedPostStartHook.
func (a *Agent) runPostStart(ctx context.Context, pod *v1.Pod, c *v1.Container, id string) {
	if c.Lifecycle == nil || c.Lifecycle.PostStart == nil {
		return
	}
	msg, err := prober.RunHandler(ctx, execSync{a.cfg.Runtime}, pod, c, firstIP(a, pod), id, c.Lifecycle.PostStart)
	if err != nil {
		a.recordContainer(pod, c, v1.EventTypeWarning, "FailedPostStartHook", "%s", msg)
		if err := a.stopContainer(ctx, pod, c, id, gracePeriod(pod)); err != nil {
			klog.FromContext(ctx).Error(err, "Killing container whose postStart hook failed", "pod", klog.KObj(pod), "container", c.Name)
		}
	}
}

func firstIP(a *Agent, pod *v1.Pod) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if st := a.states[string(pod.UID)]; st != nil && len(st.podIPs) > 0 {
		return st.podIPs[0]
	}
	return ""
}

// specContainer finds the init, app or ephemeral container called name.
func specContainer(pod *v1.Pod, name string) *v1.Container {
	for _, c := range allContainers(pod) {
		if c.Name == name {
			return c
		}
	}
	if ec := ephemeralSpec(pod, name); ec != nil {
		return ephemeralContainer(ec)
	}
	return nil
}
