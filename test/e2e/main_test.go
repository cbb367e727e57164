//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pocketkube/pocketkube/test/framework"
)

// shared is the cluster most tests use; tests must leave it as they found it
// (their own names, cleaned up). Nothing stops or restarts it: a test of a
// node that stops, is killed or restarts runs a cluster of its own in a
// network namespace of its own (startNodeCluster).
var shared *framework.Cluster

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	env, err := framework.NewEnv("../..", "pk-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer env.Close()
	Binary, ListenHost = env.Binary, env.Host
	start := time.Now()
	shared, err = StartCluster(filepath.Join(env.Dir, "shared"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "start shared cluster:", err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "shared cluster up in %s at %s\n", time.Since(start).Round(time.Millisecond), shared.Server)
	code := m.Run()
	if _, err := shared.Stop(15 * time.Second); err != nil {
		fmt.Fprintln(os.Stderr, "stop shared cluster:", err)
		code = 1
	}
	if code != 0 {
		fmt.Fprintf(os.Stderr, "--- shared cluster output ---\n%s\n", framework.Tail(shared.Output(), 200))
		// The whole of it, for what the tail cut off.
		log := filepath.Join(os.TempDir(), fmt.Sprintf("pk-e2e-shared-%d.log", os.Getpid()))
		if err := os.WriteFile(log, []byte(shared.Output()), 0o600); err == nil {
			fmt.Fprintf(os.Stderr, "--- the shared cluster's whole output: %s\n", log)
		}
	}
	return code
}
