package serviceproxy

import (
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
	"k8s.io/klog/v2/ktesting"
)

// inNewNetNS runs fn on a thread of its own in a new network namespace:
// the nft processes fn starts run there, and their tables with them. The
// thread is left locked, so that it ends with the goroutine.
func inNewNetNS(t *testing.T, fn func()) {
	t.Helper()
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("no nft")
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			t.Errorf("unshare: %v", err)
			return
		}
		fn()
	}()
	<-done
}

func nft(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	cmd := exec.Command("nft", args...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Errorf("nft %q: %v\n%s", args, err, out)
	}
	return string(out)
}

// Both families' kube-proxy tables go, with their chains, and other tables
// stay; with none there, it is no error.
func TestCleanupLeftovers(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	inNewNetNS(t, func() {
		nft(t, "add table ip kube-proxy\nadd chain ip kube-proxy services\nadd table ip6 kube-proxy\nadd table ip other\n", "-f", "-")
		if cleanupLeftovers(ctx) {
			t.Error("cleanupLeftovers: error, with both tables there")
		}
		if got, want := strings.TrimSpace(nft(t, "", "list", "tables")), "table ip other"; got != want {
			t.Errorf("tables after the cleanup: %q, want %q", got, want)
		}
		if cleanupLeftovers(ctx) {
			t.Error("cleanupLeftovers: error, with no table there")
		}
	})
}
