//go:build e2e

package e2e

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/pocketkube/pocketkube/test/framework"
)

// Ctrl-C soon after `up` printed that it is up, while the node is still
// starting (registering, setting up the pod network, the Service proxy,
// waiting for cluster DNS's RBAC), is a stop like any other: exit 0 and
// nothing left. The cluster has a network namespace of its own, stopped
// and started again on its data dir; the shared cluster is not touched.
func TestCtrlCEarlyAfterUp(t *testing.T) {
	c := startNodeCluster(t)
	stopCleanly(t, c)
	for _, delay := range []time.Duration{0, 500 * time.Millisecond, time.Second, 2 * time.Second, 3 * time.Second} {
		c = restartNode(t, c)
		time.Sleep(delay)
		took, err := c.Stop(15 * time.Second)
		if err != nil {
			t.Errorf("Ctrl-C %s after up: %v (after %s); its last output:\n%s", delay, err, took, framework.Tail(c.Output(), 30))
			continue
		}
		t.Logf("Ctrl-C %s after up: exit 0 in %s", delay, took.Round(time.Millisecond))
		for _, l := range earlyStopLeftovers(t, c) {
			t.Errorf("Ctrl-C %s after up: %s", delay, l)
		}
	}
}

// earlyStopLeftovers lists what a stopped cluster c left: processes and
// mounts of its data dir, processes in its network namespace, the etcd
// socket, listening API and kubelet ports, and kube-proxy's nftables
// tables.
func earlyStopLeftovers(t *testing.T, c *framework.Cluster) []string {
	out := clusterLeftovers(c.DataDir, nil)
	if _, err := os.Stat(filepath.Join(c.DataDir, "etcd", "etcd.sock")); !errors.Is(err, os.ErrNotExist) {
		out = append(out, "etcd socket left")
	}
	if pids := c.NetNS.Pids(); len(pids) != 0 {
		out = append(out, fmt.Sprintf("processes left in %s: %v", c.NetNS.Name, pids))
	}
	for _, port := range []int{c.Port, c.KubeletPort} {
		addr := net.JoinHostPort(c.Host, strconv.Itoa(port))
		if conn, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			conn.Close()
			out = append(out, addr+" still accepts connections")
		}
	}
	if tables := kubeProxyTables(t, c.NetNS); len(tables) != 0 {
		out = append(out, fmt.Sprintf("kube-proxy nftables tables left: %q", tables))
	}
	return out
}
