package controllermanager

import (
	"slices"
	"strings"
	"testing"

	"github.com/pocketkube/pocketkube/internal/golden"
	"github.com/pocketkube/pocketkube/internal/pki"
)

func testConfig() Config {
	return Config{
		Kubeconfig:            "/var/lib/pocketkube/kubeconfigs/controller-manager.conf",
		PKI:                   pki.PathsFor("/var/lib/pocketkube/pki"),
		ServiceClusterIPRange: "10.96.0.0/12",
		ClusterCIDR:           "10.244.0.0/16",
		FlexVolumeDir:         "/var/lib/pocketkube/flexvolume",
	}
}

// The flags are pinned, so a k8s.io/kubernetes bump or a config change shows
// as a reviewed diff.
func TestArgsGolden(t *testing.T) {
	golden.Check(t, "default.args", []byte(strings.Join(Args(testConfig()), "\n")+"\n"))
}

func TestArgsParseUpstream(t *testing.T) {
	s, err := Options(Args(testConfig()))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(s.Generic.Controllers, []string{"*", "bootstrapsigner", "tokencleaner"}) {
		t.Errorf("controllers = %v", s.Generic.Controllers)
	}
	if !s.KubeCloudShared.UseServiceAccountCredentials {
		t.Error("controllers do not use their own service-account credentials")
	}
	if s.Generic.LeaderElection.LeaderElect {
		t.Error("leader election is on for a single node")
	}
	if s.SecureServing.BindPort != 0 {
		t.Errorf("secure port = %d, want 0 (off)", s.SecureServing.BindPort)
	}
}

func TestValidate(t *testing.T) {
	c := testConfig()
	if err := c.Validate(); err != nil {
		t.Errorf("valid config: %v", err)
	}
	c.FlexVolumeDir = ""
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "FlexVolumeDir") {
		t.Errorf("Validate() = %v, want FlexVolumeDir required", err)
	}
}

// With several servers the controllers run under leader election, with
// the feature gate that makes upstream release the lease on a stop
// instead of exiting the process.
func TestArgsLeaderElect(t *testing.T) {
	c := testConfig()
	c.LeaderElect = true
	s, err := Options(Args(c))
	if err != nil {
		t.Fatal(err)
	}
	if !s.Generic.LeaderElection.LeaderElect {
		t.Error("leader election is off for several servers")
	}
	if err := s.ComponentGlobalsRegistry.Set(); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(Args(c), "--feature-gates=ControllerManagerReleaseLeaderElectionLockOnExit=true") {
		t.Error("the lease is not released on a stop")
	}
}
