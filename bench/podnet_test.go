//go:build bench

package bench

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/pocketkube/pocketkube/test/framework"
)

// BenchmarkPodNetwork measures a TCP round trip (64 bytes each way), and
// then the throughput of one connection (256 MB), between pods on two nodes of one L2 segment (host-gw routes,
// internal/node/hostgw) against two pods on the same node (one bridge).
// The cluster is an `up` in a network namespace of its own plus a
// `pocketkube agent` in another, both attached to a bridge the benchmark
// makes (framework.Segment), as TestAgentPodNetwork. The pods are busybox
// sleepers; the echo server and the client are this process's sockets,
// made in the pods' network namespaces, so that a round trip costs the
// kernel's path only: veth, bridge, routing, the other node's veth and
// bridge, and back. Each iteration is one round trip on each path; the
// throughput is measured once per path, after the loop.
func BenchmarkPodNetwork(b *testing.B) {
	stopPodsCluster()
	seg, err := framework.NewSegment()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { seg.Remove() })
	c, err := framework.StartCluster(framework.ClusterConfig{
		Binary: binary, DataDir: filepath.Join(b.TempDir(), "data"), NetNS: true, Segment: seg,
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		stopCluster(b, c)
		c.Cleanup()
	})
	c.ImportBusybox(b, "busybox")
	client := c.Client(b)
	ctx := b.Context()
	var flags []string
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
		data, err := os.ReadFile(filepath.Join(c.DataDir, "node-token"))
		flags = strings.Fields(string(data))
		return err == nil && len(flags) == 4, nil
	})
	if err != nil {
		b.Fatalf("node-token: %q, %v", flags, err)
	}

	// The agent, on the segment.
	name := fmt.Sprintf("bench-podnet-%d", os.Getpid())
	ns, err := framework.NewNetNS()
	if err != nil {
		b.Fatal(err)
	}
	agentDir := filepath.Join(b.TempDir(), "agent")
	nodeIP, err := seg.Attach(ns)
	if err != nil {
		b.Fatal(err)
	}
	tarPath := filepath.Join(b.TempDir(), "busybox.tar")
	if err := framework.BusyboxTar(tarPath, nil); err != nil {
		b.Fatal(err)
	}
	if _, err := framework.Run(ctx, nil, binary, "images", "import", "--data-dir", agentDir, "--name", "busybox", tarPath); err != nil {
		b.Fatal(err)
	}
	agent, err := framework.StartIn(ns, binary, append([]string{"agent", "--server", c.Server, "--data-dir", agentDir, "--node-name", name,
		"--node-ip", nodeIP, "--cgroup-root", ns.CgroupRoot}, flags...)...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := agent.Stop(15 * time.Second); err != nil {
			b.Errorf("stop agent: %v", err)
		}
		client.CoreV1().Nodes().Delete(context.Background(), name, metav1.DeleteOptions{})
		if err := ns.Remove(agentDir); err != nil {
			b.Errorf("clean up agent: %v", err)
		}
	})

	// Three pods: the server and a client on the server node, a client
	// on the agent's.
	nodes, err := waitNodes(ctx, client, 2)
	if err != nil {
		b.Fatalf("%v\n%s", err, framework.Tail(agent.Output(), 40))
	}
	serverNode := nodes[0]
	if serverNode == name {
		serverNode = nodes[1]
	}
	pod := func(podName, node string) *corev1.Pod {
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: podName, Namespace: "default"},
			Spec: corev1.PodSpec{
				NodeName: node, TerminationGracePeriodSeconds: new(int64),
				Containers: []corev1.Container{{Name: "main", Image: "busybox", ImagePullPolicy: corev1.PullIfNotPresent,
					Command: []string{"sleep", "3600"}}},
			},
		}
	}
	pods := framework.RunPods(b, client, pod("echo", serverNode), pod("same-node", serverNode), pod("other-node", name))
	netnsOf := func(dataDir, podName string) string {
		return filepath.Join(dataDir, "node", "network", "netns", string(pods[podName].UID))
	}
	echoIP := pods["echo"].Status.PodIP

	// The echo server in the echo pod, and a second one in the server
	// node's own namespace at its segment address: node to node is the
	// "wire" between the two nodes on this one machine (veth, the
	// segment's bridge, veth), which a cross-node round trip crosses on
	// top of what pocketkube adds (the pods' veths, bridges and routes).
	echo := listenEcho(b, netnsOf(c.DataDir, "echo"), echoIP)
	wire := listenEcho(b, c.NetNS.Path(), c.Host)
	dial := func(ln net.Listener, netns string) net.Conn {
		var conn net.Conn
		if err := inNetNS(netns, func() (err error) {
			conn, err = net.DialTimeout("tcp", ln.Addr().String(), 5*time.Second)
			return err
		}); err != nil {
			b.Fatalf("dial %s from %s: %v", ln.Addr(), netns, err)
		}
		conn.(*net.TCPConn).SetNoDelay(true)
		return conn
	}
	same, other := dial(echo, netnsOf(c.DataDir, "same-node")), dial(echo, netnsOf(agentDir, "other-node"))
	nodes2 := dial(wire, ns.Path())
	defer same.Close()
	defer other.Close()
	defer nodes2.Close()
	msg, buf := make([]byte, 64), make([]byte, 64)
	roundTrip := func(conn net.Conn) time.Duration {
		start := time.Now()
		if _, err := conn.Write(msg); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(conn, buf); err != nil {
			b.Fatal(err)
		}
		return time.Since(start)
	}
	for range 100 { // warm up the paths (ARP, conntrack, caches)
		roundTrip(same)
		roundTrip(other)
		roundTrip(nodes2)
	}
	var sameRTT, otherRTT, wireRTT []time.Duration
	for b.Loop() {
		sameRTT = append(sameRTT, roundTrip(same))
		otherRTT = append(otherRTT, roundTrip(other))
		wireRTT = append(wireRTT, roundTrip(nodes2))
	}
	b.StopTimer()
	sameMBps, otherMBps := throughput(b, same), throughput(b, other)
	noNsPerOp(b)
	b.ReportMetric(sameMBps, "same-node-MB/s")
	b.ReportMetric(otherMBps, "cross-node-MB/s")
	us := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
	for _, m := range []struct {
		name string
		d    []time.Duration
	}{{"same-node-rtt", sameRTT}, {"cross-node-rtt", otherRTT}, {"node-to-node-rtt", wireRTT}} {
		b.ReportMetric(us(quantile(m.d, 0.5)), m.name+"-p50-us")
		b.ReportMetric(us(quantile(m.d, 0.99)), m.name+"-p99-us")
	}
	sameP50, crossP50, wireP50 := quantile(sameRTT, 0.5), quantile(otherRTT, 0.5), quantile(wireRTT, 0.5)
	b.ReportMetric(float64(crossP50)/float64(sameP50), "cross/same-p50")
	// A cross-node round trip against the nodes' own one on the same
	// wire: what the pod network (pods' veths, bridges, routes) adds
	// across nodes, whatever the wire between them costs.
	b.ReportMetric(float64(crossP50)/float64(wireP50), "cross/node-to-node-p50")
}

// listenEcho listens on addr, port 0, in the network namespace mounted at
// netns and serves serveEcho on every connection until the benchmark ends.
func listenEcho(b *testing.B, netns, addr string) net.Listener {
	b.Helper()
	var ln net.Listener
	if err := inNetNS(netns, func() (err error) {
		ln, err = net.Listen("tcp", net.JoinHostPort(addr, "0"))
		return err
	}); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				conn.(*net.TCPConn).SetNoDelay(true)
				serveEcho(conn)
			}()
		}
	}()
	return ln
}

// streamBytes is what throughput sends through a connection.
const streamBytes = 256 << 20

// serveEcho answers each 64-byte message with itself; a message starting
// with 's' is followed by streamBytes that it reads to the end and
// acknowledges with one byte.
func serveEcho(conn net.Conn) {
	msg := make([]byte, 64)
	for {
		if _, err := io.ReadFull(conn, msg); err != nil {
			return
		}
		if msg[0] == 's' {
			if _, err := io.CopyN(io.Discard, conn, streamBytes); err != nil {
				return
			}
			msg = msg[:1]
		}
		if _, err := conn.Write(msg); err != nil {
			return
		}
		msg = msg[:64]
	}
}

// throughput sends streamBytes through conn to serveEcho and returns the
// rate, in MB/s, up to its acknowledgement.
func throughput(b *testing.B, conn net.Conn) float64 {
	b.Helper()
	head := make([]byte, 64)
	head[0] = 's'
	chunk := make([]byte, 256<<10)
	start := time.Now()
	if _, err := conn.Write(head); err != nil {
		b.Fatal(err)
	}
	for sent := 0; sent < streamBytes; sent += len(chunk) {
		if _, err := conn.Write(chunk); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := io.ReadFull(conn, head[:1]); err != nil {
		b.Fatal(err)
	}
	return float64(streamBytes) / 1e6 / time.Since(start).Seconds()
}

// waitNodes waits for want Ready Nodes and returns their names.
func waitNodes(ctx context.Context, client kubernetes.Interface, want int) ([]string, error) {
	var names []string
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		list, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, nil
		}
		names = names[:0]
		for _, n := range list.Items {
			for _, cond := range n.Status.Conditions {
				if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue && n.Spec.PodCIDR != "" {
					names = append(names, n.Name)
				}
			}
		}
		return len(names) == want, nil
	})
	if err != nil {
		return nil, fmt.Errorf("%d Ready Nodes with a podCIDR (%v), want %d: %w", len(names), names, want, err)
	}
	return names, nil
}

// inNetNS runs f on a thread in the network namespace mounted at path;
// sockets f makes stay in it. The thread goes back to its namespace
// after, or is never reused if it cannot.
func inNetNS(path string, f func() error) error {
	runtime.LockOSThread()
	orig, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer orig.Close()
	target, err := os.Open(path)
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("enter %s: %w", path, err)
	}
	ferr := f()
	if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("leave %s: %w", path, err) // the thread stays locked and exits with the goroutine
	}
	runtime.UnlockOSThread()
	return ferr
}
