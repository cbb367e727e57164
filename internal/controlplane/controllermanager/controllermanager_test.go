package controllermanager

import (
	"slices"
	"strings"
	"testing"
	"time"

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

// Extra flags come after pocketkube's, with or without their dashes, and
// win over pocketkube's when both set one.
func TestExtraArgs(t *testing.T) {
	c := testConfig()
	c.ExtraArgs = []string{"node-monitor-grace-period=20s", "--node-monitor-period=2s", "kube-api-qps=50"}
	args := Args(c)
	if got := args[len(args)-3:]; !slices.Equal(got, []string{"--node-monitor-grace-period=20s", "--node-monitor-period=2s", "--kube-api-qps=50"}) {
		t.Errorf("last args = %v", got)
	}
	s, err := Options(args)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.NodeLifecycleController.NodeMonitorGracePeriod.Duration; got != 20*time.Second {
		t.Errorf("node-monitor-grace-period = %s, want 20s", got)
	}
	if got := s.NodeLifecycleController.NodeMonitorPeriod.Duration; got != 2*time.Second {
		t.Errorf("node-monitor-period = %s, want 2s", got)
	}
	if got := s.Generic.ClientConnection.QPS; got != 50 {
		t.Errorf("kube-api-qps = %v, want the extra arg's 50", got)
	}
	c.ExtraArgs = []string{"no-such-flag=1"}
	if _, err := Options(Args(c)); err == nil || !strings.Contains(err.Error(), "no-such-flag") {
		t.Errorf("unknown extra flag: %v, want an error naming it", err)
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
