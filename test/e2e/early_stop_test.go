//go:build e2e

package e2e

import (
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pocketkube/pocketkube/test/framework"
)

// Ctrl-C soon after `up` printed that it is up, while the node is still
// starting (registering, setting up the pod network, the Service proxy,
// waiting for cluster DNS's RBAC), is a stop like any other: exit 0 and
// nothing left. The node-bearing cluster is the shared one (a second node
// would clash with it: node name, kubelet port, bridge, cgroups), stopped
// and started again on its data dir.
func TestCtrlCEarlyAfterUp(t *testing.T) {
	stopCleanly(t, shared)
	defer restartShared(t)
	for _, delay := range []time.Duration{0, 500 * time.Millisecond, time.Second, 2 * time.Second, 3 * time.Second} {
		c, err := shared.Restart()
		if err != nil {
			t.Fatal(err)
		}
		shared = c
		time.Sleep(delay)
		took, err := c.Stop(15 * time.Second)
		if err != nil {
			t.Errorf("Ctrl-C %s after up: %v (after %s); its last output:\n%s", delay, err, took, framework.Tail(c.Output(), 30))
			continue
		}
		t.Logf("Ctrl-C %s after up: exit 0 in %s", delay, took.Round(time.Millisecond))
		for _, l := range earlyStopLeftovers(c) {
			t.Errorf("Ctrl-C %s after up: %s", delay, l)
		}
	}
}

// earlyStopLeftovers lists what a stopped cluster c left: processes and
// mounts of its data dir, the etcd socket, listening API and kubelet
// ports, and kube-proxy's nftables tables.
func earlyStopLeftovers(c *framework.Cluster) []string {
	out := clusterLeftovers(c.DataDir, nil)
	if _, err := os.Stat(filepath.Join(c.DataDir, "etcd", "etcd.sock")); !errors.Is(err, os.ErrNotExist) {
		out = append(out, "etcd socket left")
	}
	for _, addr := range []string{net.JoinHostPort(c.Host, strconv.Itoa(c.Port)), net.JoinHostPort("127.0.0.1", strconv.Itoa(c.KubeletPort))} {
		if conn, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			conn.Close()
			out = append(out, addr+" still accepts connections")
		}
	}
	if tables, err := exec.Command("nft", "list", "tables").CombinedOutput(); err != nil {
		out = append(out, "nft list tables: "+err.Error())
	} else if strings.Contains(string(tables), "kube-proxy") {
		out = append(out, "kube-proxy nftables table left:\n"+string(tables))
	}
	return out
}
