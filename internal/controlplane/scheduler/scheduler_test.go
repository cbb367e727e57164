package scheduler

import (
	"strings"
	"testing"

	"github.com/pocketkube/pocketkube/internal/golden"
)

// The flags are pinned, so a k8s.io/kubernetes bump or a config change shows
// as a reviewed diff.
func TestArgsGolden(t *testing.T) {
	golden.Check(t, "default.args", []byte(strings.Join(Args(Config{Kubeconfig: "/var/lib/pocketkube/kubeconfigs/scheduler.conf"}), "\n")+"\n"))
}

func TestArgsParseUpstream(t *testing.T) {
	o, err := Options(Args(Config{Kubeconfig: "/k"}))
	if err != nil {
		t.Fatal(err)
	}
	if o.SecureServing.BindPort != 0 {
		t.Errorf("secure port = %d, want 0 (off)", o.SecureServing.BindPort)
	}
}

func TestArgsLeaderElect(t *testing.T) {
	o, err := Options(Args(Config{Kubeconfig: "/k", LeaderElect: true}))
	if err != nil {
		t.Fatal(err)
	}
	if !o.LeaderElection.LeaderElect {
		t.Error("leader election is off for several servers")
	}
}
