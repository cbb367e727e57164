package node

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"testing"
)

// Run makes DataDir/node 0700 before anything else, also when it exists
// with a looser mode (a data dir restored from an archive, a chmod by
// hand): it holds the pods' secrets and logs. The kubeconfig is missing,
// so Run stops right after.
func TestRunRestrictsNodeDir(t *testing.T) {
	for _, mode := range []os.FileMode{0o755, 0o711, 0o750} {
		dataDir := t.TempDir()
		dir := filepath.Join(dataDir, "node")
		if err := os.Mkdir(dir, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(dir, mode); err != nil {
			t.Fatal(err)
		}
		err := Run(context.Background(), Config{
			DataDir:    dataDir,
			Kubeconfig: filepath.Join(dataDir, "missing.conf"),
			NodeName:   "node1",
			NodeIPs:    []net.IP{net.ParseIP("192.0.2.2")},
		})
		if err == nil {
			t.Fatal("Run without a kubeconfig succeeded")
		}
		fi, err := os.Stat(dir)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o700 {
			t.Errorf("node dir %v before Run, %v after, want 0700", mode, fi.Mode().Perm())
		}
	}
}
