//go:build e2e

package e2e

import (
	"github.com/pocketkube/pocketkube/test/framework"
)

// Binary is the pocketkube binary under test.
var Binary string

// ListenHost is the address clusters serve the API on. TestMain sets it
// to an address of an interface it creates (framework.ListenAddress):
// pods reach the API server at its --listen address, which a loopback
// address is not, and tests do not bind 0.0.0.0.
var ListenHost = "127.0.0.1"

// FreePort returns a free port of ListenHost, where clusters listen.
func FreePort() (int, error) { return framework.FreePort(ListenHost) }

// StartCluster runs `pocketkube up` of Binary on dataDir, a free port of
// ListenHost and a free kubelet port, with extra flags, and waits until
// it prints that it is up.
func StartCluster(dataDir string, extra ...string) (*framework.Cluster, error) {
	return StartClusterOnPort(dataDir, 0, extra...)
}

// StartClusterOnPort is StartCluster on a given port of ListenHost.
func StartClusterOnPort(dataDir string, port int, extra ...string) (*framework.Cluster, error) {
	return framework.StartCluster(framework.ClusterConfig{
		Binary: Binary, DataDir: dataDir, Host: ListenHost, Port: port, Args: extra,
	})
}
