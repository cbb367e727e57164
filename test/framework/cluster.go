package framework

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// ClusterConfig says how to run `pocketkube up`.
type ClusterConfig struct {
	// Binary is the pocketkube binary. Required.
	Binary string
	// DataDir is the cluster's --data-dir. Required.
	DataDir string
	// Host is the address the API server listens on (--listen). Empty
	// means 127.0.0.1, which pods cannot reach: see ListenAddress.
	Host string
	// Port is the API server's port; 0 means a free port of Host.
	Port int
	// KubeletPort is the node agent's --kubelet-port; 0 means a free
	// port, so that the cluster never takes the machine's 10250.
	KubeletPort int
	// MetricsPort is `up`'s --metrics-port; 0 means a free port, so that
	// the cluster never takes the machine's 4443.
	MetricsPort int
	// Args are more flags of `up`.
	Args []string
	// Timeout bounds the wait for "pocketkube is up"; 0 means 2 minutes.
	Timeout time.Duration
	// NetNS runs the cluster in a network namespace of its own (see
	// NetNS), with a --cgroup-root of its own, so that its node can run
	// beside another cluster's: the bridge, kube-proxy's table, the
	// kubelet and DNS ports are per namespace, the pods' cgroups per
	// root. Host then defaults to the namespace's address, Port to 6443
	// and KubeletPort to 10250. Cleanup removes the namespace.
	NetNS bool
	// Segment, with NetNS, attaches the namespace to this L2 segment when
	// it makes it; Host then defaults to the namespace's address on the
	// segment, which becomes the node's address (the advertise address).
	Segment *Segment

	netns *NetNS // the namespace made for NetNS, kept across Restart
}

// Cluster is a running `pocketkube up`.
type Cluster struct {
	DataDir     string
	Kubeconfig  string
	Server      string // https://HOST:PORT
	Host        string // the --listen address
	Port        int
	KubeletPort int
	MetricsPort int
	// NetNS is the cluster's network namespace (ClusterConfig.NetNS), or
	// nil.
	NetNS *NetNS
	// Started is when the process was started; Up is when it printed
	// that it is up.
	Started, Up time.Time

	cfg     ClusterConfig
	chain   *restartChain
	binary  string
	cmd     *exec.Cmd
	done    chan struct{}
	err     error // the process's exit, once done is closed
	stopped bool  // Stop or Kill was called: an exit is expected

	mu  sync.Mutex
	out bytes.Buffer // stdout and stderr, interleaved
}

// FreePort returns a TCP port of host (all addresses if host is empty)
// that nothing listens on now, below the kernel's ephemeral range
// (net.ipv4.ip_local_port_range, 32768 and up): tests restart clusters on
// the same port, and an ephemeral port can be taken meanwhile by any
// outgoing connection on the machine. Probe the address the port will be
// bound on: a port free on 127.0.0.1 may be taken on another address.
func FreePort(host string) (int, error) {
	for range 100 {
		port := 20000 + rand.IntN(12000)
		l, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
		if err != nil {
			continue
		}
		l.Close()
		return port, nil
	}
	return 0, fmt.Errorf("no free port of %q below the ephemeral range", host)
}

// restartChain knows the newest Cluster of those Restart made from one
// StartCluster, the one Cleanup stops.
type restartChain struct {
	mu     sync.Mutex
	newest *Cluster
}

type lockedWriter struct {
	mu  *sync.Mutex
	buf *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

// StartCluster runs `pocketkube up` as cfg says and waits until it
// prints that it is up.
func StartCluster(cfg ClusterConfig) (*Cluster, error) {
	if cfg.Binary == "" || cfg.DataDir == "" {
		return nil, errors.New("start cluster: Binary and DataDir are required")
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 2 * time.Minute
	}
	// The test binary runs under `flock /tmp/pk-e2e.lock`, whose open
	// lock file it inherited; without close-on-exec the cluster inherits
	// it too, and a cluster a crashed test leaves running holds every
	// other run's lock.
	if err := unix.CloseRange(3, math.MaxUint32, unix.CLOSE_RANGE_CLOEXEC); err != nil {
		return nil, fmt.Errorf("start cluster: close-on-exec: %w", err)
	}
	var err error
	if cfg.NetNS {
		newNS := cfg.netns == nil
		if newNS {
			if cfg.netns, err = newNetNS(); err != nil {
				return nil, err
			}
			if cfg.Segment != nil {
				if cfg.Host, err = cfg.Segment.Attach(cfg.netns); err != nil {
					cfg.netns.remove()
					return nil, err
				}
			}
		}
		c, err := startCluster(cfg)
		if err != nil && newNS {
			cfg.netns.remove()
		}
		return c, err
	}
	return startCluster(cfg)
}

func startCluster(cfg ClusterConfig) (*Cluster, error) {
	var err error
	if ns := cfg.netns; ns != nil {
		// Nothing else listens in the namespace: the usual ports are free.
		cfg.Host = cmp.Or(cfg.Host, ns.Addr)
		cfg.Port = cmp.Or(cfg.Port, 6443)
		cfg.KubeletPort = cmp.Or(cfg.KubeletPort, 10250)
		cfg.MetricsPort = cmp.Or(cfg.MetricsPort, 4443)
	}
	if cfg.Host == "" {
		cfg.Host = "127.0.0.1"
	}
	if cfg.Port == 0 {
		if cfg.Port, err = FreePort(cfg.Host); err != nil {
			return nil, err
		}
	}
	if cfg.KubeletPort == 0 {
		// The agent serves the kubelet API on every address.
		if cfg.KubeletPort, err = FreePort(""); err != nil {
			return nil, err
		}
	}
	if cfg.MetricsPort == 0 {
		if cfg.MetricsPort, err = FreePort(""); err != nil {
			return nil, err
		}
	}
	c := &Cluster{
		DataDir: cfg.DataDir, Host: cfg.Host, Port: cfg.Port, KubeletPort: cfg.KubeletPort, MetricsPort: cfg.MetricsPort,
		NetNS: cfg.netns, cfg: cfg, done: make(chan struct{}),
	}
	args := []string{"up", "--data-dir", cfg.DataDir,
		"--listen", net.JoinHostPort(c.Host, strconv.Itoa(c.Port)),
		"--kubelet-port", strconv.Itoa(c.KubeletPort),
		"--metrics-port", strconv.Itoa(c.MetricsPort)}
	if c.NetNS != nil {
		args = append(args, "--cgroup-root", c.NetNS.CgroupRoot)
	}
	args = append(args, cfg.Args...)
	if c.NetNS != nil {
		// nsenter enters the network namespace only and execs: the
		// process keeps the host's mount namespace, so its mounts are
		// the host's to see (`ip netns exec` would give it a private
		// one, lost with the process after a kill -9), and Pid is
		// pocketkube's.
		c.cmd = exec.Command("nsenter", append([]string{"--net=" + c.NetNS.Path(), "--", cfg.Binary}, args...)...)
	} else {
		c.cmd = exec.Command(cfg.Binary, args...)
	}
	stdout, err := c.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	c.cmd.Stderr = lockedWriter{&c.mu, &c.out}
	c.Started = time.Now()
	if err := c.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", cfg.Binary, err)
	}
	upLine := make(chan string, 1)
	go func() {
		s := bufio.NewScanner(stdout)
		for s.Scan() {
			line := s.Text()
			lockedWriter{&c.mu, &c.out}.Write([]byte(line + "\n"))
			if strings.HasPrefix(line, "pocketkube is up") {
				select {
				case upLine <- line:
				default:
				}
			}
		}
	}()
	go func() {
		c.err = c.cmd.Wait()
		close(c.done)
	}()
	select {
	case <-upLine:
		c.Up = time.Now()
	case <-c.done:
		return nil, fmt.Errorf("pocketkube up exited before it was up: %v\n%s", c.err, c.Output())
	case <-time.After(cfg.Timeout):
		c.Kill()
		return nil, fmt.Errorf("pocketkube up not up after %s\n%s", cfg.Timeout, c.Output())
	}
	c.chain = &restartChain{newest: c}
	c.Kubeconfig = filepath.Join(cfg.DataDir, "kubeconfig")
	c.Server = "https://" + net.JoinHostPort(c.Host, strconv.Itoa(c.Port))
	return c, nil
}

// Restart starts the cluster again on the same data dir, address, ports
// and flags; c must have exited (Stop or Kill).
func (c *Cluster) Restart() (*Cluster, error) {
	return c.RestartWith(c.cfg.Args...)
}

// RestartWith is Restart with args as the extra flags of `up` instead.
func (c *Cluster) RestartWith(args ...string) (*Cluster, error) {
	select {
	case <-c.done:
	default:
		return nil, errors.New("restart cluster: it still runs")
	}
	cfg := c.cfg
	cfg.Args = args
	cfg.Port, cfg.KubeletPort, cfg.MetricsPort = c.Port, c.KubeletPort, c.MetricsPort
	n, err := StartCluster(cfg)
	if err != nil {
		return nil, err
	}
	n.chain = c.chain
	n.chain.mu.Lock()
	n.chain.newest = n
	n.chain.mu.Unlock()
	return n, nil
}

// Cleanup stops the cluster if it runs (Ctrl-C, then kill), then removes
// what is left of it outside its data dir: with NetNS, processes in the
// namespace or its cgroup root, mounts under the data dir, the namespace
// with its veth pair, and the cgroup root. It reports what it had to
// kill or unmount, or could not remove, as an error: a cluster stopped
// cleanly leaves nothing. Any Cluster of a Restart chain may be given:
// Cleanup acts on the newest.
func (c *Cluster) Cleanup() error {
	c = c.Current()
	var stopErr error
	select {
	case <-c.done:
	default:
		const timeout = 15 * time.Second
		if took, err := c.Stop(timeout); err != nil && took >= timeout {
			stopErr = fmt.Errorf("Ctrl-C at clean-up (after %s): %w", took.Round(time.Millisecond), err)
		}
	}
	if c.NetNS == nil {
		return nil
	}
	var errs []error
	killed, err := c.NetNS.remove()
	for _, k := range killed {
		errs = append(errs, fmt.Errorf("killed process left: %s", k))
	}
	for _, m := range unmountUnder(c.DataDir) {
		errs = append(errs, fmt.Errorf("unmounted mount left: %s", m))
	}
	errs = append(errs, err)
	for _, l := range c.NetNS.Leftovers() {
		errs = append(errs, errors.New(l))
	}
	// A stop that timed out (then killed, its goroutines dumped) explains
	// leftovers; alone it is no failure: some tests end clusters that
	// cannot stop cleanly (servers without quorum).
	if err := errors.Join(errs...); err != nil && stopErr != nil {
		return errors.Join(err, stopErr) // last: a CI excerpt shows the end
	}
	return errors.Join(errs...)
}

// unmountUnder lazily unmounts every mount point under dir, deepest
// first, and returns them.
func unmountUnder(dir string) []string {
	data, _ := os.ReadFile("/proc/self/mountinfo")
	var points []string
	for _, line := range strings.Split(string(data), "\n") {
		// id parent maj:min root mountpoint ...
		if f := strings.Fields(line); len(f) > 4 && strings.HasPrefix(f[4], dir+"/") {
			points = append(points, f[4])
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(points)))
	for _, p := range points {
		syscall.Unmount(p, syscall.MNT_DETACH)
	}
	return points
}

// Current is the newest Cluster that Restart made from c, or c.
func (c *Cluster) Current() *Cluster {
	c.chain.mu.Lock()
	defer c.chain.mu.Unlock()
	return c.chain.newest
}

// Output returns what the process printed so far.
func (c *Cluster) Output() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.out.String()
}

// Pid is the process id of `pocketkube up`.
func (c *Cluster) Pid() int { return c.cmd.Process.Pid }

// Done is closed when the process has exited.
func (c *Cluster) Done() <-chan struct{} { return c.done }

// Exited returns nil while the process runs, and else an error that says
// how it ended.
func (c *Cluster) Exited() error {
	select {
	case <-c.done:
	default:
		return nil
	}
	if c.err == nil {
		return fmt.Errorf("pocketkube up (pid %d) exited with status 0", c.Pid())
	}
	return fmt.Errorf("pocketkube up (pid %d) exited: %w", c.Pid(), c.err)
}

// CheckAlive fails t at once, with the end of the cluster's output, when
// the process died while nobody stopped it: every test after a crash then
// fails with that one reason instead of its own timeouts. A cluster that
// was stopped (Stop, Kill) passes: a test may still hold it after starting
// it again on the same data dir and port (Restart), whose kubeconfig and
// address are the same.
func (c *Cluster) CheckAlive(t testing.TB) {
	t.Helper()
	if err := c.Exited(); err != nil && !c.stopped {
		t.Fatalf("the cluster at %s died: %v\nits last output:\n%s", c.Server, err, Tail(c.Output(), 40))
	}
}

// Stop sends SIGINT, as Ctrl-C does, and waits up to timeout for the
// process to exit. It returns how long the exit took and the exit error.
func (c *Cluster) Stop(timeout time.Duration) (time.Duration, error) {
	c.stopped = true
	start := time.Now()
	if err := c.cmd.Process.Signal(syscall.SIGINT); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return 0, err
	}
	select {
	case <-c.done:
		return time.Since(start), c.err
	case <-time.After(timeout):
		return time.Since(start), fmt.Errorf("pocketkube up still running %s after SIGINT%s", timeout, c.dumpStuck())
	}
}

// dumpStuck ends a process that did not stop: SIGQUIT makes the Go
// runtime print every goroutine's stack before it exits, which says where
// the stop hangs. The whole output goes to a file (thousands of
// goroutines), whose name it returns for the error.
func (c *Cluster) dumpStuck() string {
	c.cmd.Process.Signal(syscall.SIGQUIT)
	select {
	case <-c.done:
	case <-time.After(10 * time.Second):
		c.Kill()
	}
	f, err := os.CreateTemp("", "pk-stuck-*.log")
	if err != nil {
		return ""
	}
	defer f.Close()
	if _, err := f.WriteString(c.Output()); err != nil {
		return ""
	}
	return "; its goroutines at SIGQUIT are in " + f.Name()
}

// Kill kills the process and waits for it.
func (c *Cluster) Kill() {
	c.stopped = true
	c.cmd.Process.Kill()
	<-c.done
}

// RESTConfig is the admin client configuration of the cluster.
func (c *Cluster) RESTConfig() (*rest.Config, error) {
	return clientcmd.BuildConfigFromFlags("", c.Kubeconfig)
}

// Client returns an admin client of the cluster; it fails t if the
// cluster died (CheckAlive).
func (c *Cluster) Client(t testing.TB) kubernetes.Interface {
	t.Helper()
	c.CheckAlive(t)
	cfg, err := c.RESTConfig()
	if err != nil {
		t.Fatal(err)
	}
	return kubernetes.NewForConfigOrDie(cfg)
}

// Kubectl runs the kubectl of minor version v against the cluster and
// returns its stdout; the error carries stderr.
func (c *Cluster) Kubectl(ctx context.Context, v string, args ...string) (string, error) {
	return Run(ctx, nil, Kubectl(v), append([]string{"--kubeconfig", c.Kubeconfig}, args...)...)
}

// KubectlStdin is Kubectl with stdin.
func (c *Cluster) KubectlStdin(ctx context.Context, v string, stdin string, args ...string) (string, error) {
	return Run(ctx, strings.NewReader(stdin), Kubectl(v), append([]string{"--kubeconfig", c.Kubeconfig}, args...)...)
}

// PollKubectl runs kubectl v with args against the cluster every 100 ms
// until done accepts its stdout and error, or timeout passes. It returns
// the last stdout, and nil once done accepted, else the last kubectl
// error, or the poll's when kubectl itself succeeded.
func (c *Cluster) PollKubectl(ctx context.Context, v string, timeout time.Duration, done func(out string, err error) bool, args ...string) (string, error) {
	var out string
	var err error
	pollErr := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		out, err = c.Kubectl(ctx, v, args...)
		return done(out, err), nil
	})
	switch {
	case pollErr == nil:
		return out, nil
	case err != nil:
		return out, err
	}
	return out, pollErr
}

// PodExec runs args in the container "main" of pod ns/pod with the newest
// kubectl and returns stdout; the error carries stderr.
func (c *Cluster) PodExec(ctx context.Context, ns, pod string, args ...string) (string, error) {
	return c.Kubectl(ctx, Newest(), append([]string{"-n", ns, "exec", pod, "-c", "main", "--"}, args...)...)
}
