package scheduler

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata golden files")

func TestArgsGolden(t *testing.T) {
	path := filepath.Join("testdata", "default.args")
	data := strings.Join(Args(Config{Kubeconfig: "/var/lib/pocketkube/kubeconfigs/scheduler.conf"}), "\n") + "\n"
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
	o, err := Options(Args(Config{Kubeconfig: "/k"}))
	if err != nil {
		t.Fatal(err)
	}
	if o.SecureServing.BindPort != 0 {
		t.Errorf("secure port = %d, want 0 (off)", o.SecureServing.BindPort)
	}
}
