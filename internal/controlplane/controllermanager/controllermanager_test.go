package controllermanager

import (
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/pocketkube/pocketkube/internal/pki"
)

var update = flag.Bool("update", false, "rewrite testdata golden files")

func testConfig() Config {
	return Config{
		Kubeconfig:            "/var/lib/pocketkube/kubeconfigs/controller-manager.conf",
		PKI:                   pki.PathsFor("/var/lib/pocketkube/pki"),
		ServiceClusterIPRange: "10.96.0.0/12",
		ClusterCIDR:           "10.244.0.0/16",
		FlexVolumeDir:         "/var/lib/pocketkube/flexvolume",
	}
}

func TestArgsGolden(t *testing.T) {
	path := filepath.Join("testdata", "default.args")
	data := strings.Join(Args(testConfig()), "\n") + "\n"
	if *update {
		os.WriteFile(path, []byte(data), 0o644)
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(want) != data {
		t.Errorf("args differ from %s (run go test -update and review the diff):\n%s", path, data)
	}
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
