package serviceproxy

import (
	"context"
	"os/exec"
	"strings"

	"k8s.io/klog/v2"
	"k8s.io/kubernetes/pkg/proxy/nftables"
)

// deleteTablesText deletes the proxier's table of each family, whether
// there is one or not (adding an empty table that exists is no error).
const deleteTablesText = "add table ip kube-proxy\ndelete table ip kube-proxy\n" +
	"add table ip6 kube-proxy\ndelete table ip6 kube-proxy\n"

// cleanupLeftovers does what upstream's nftables.CleanupLeftovers does,
// deleting the kube-proxy table of both families, in one nft process
// instead of six: upstream's opens a knftables interface per family, which
// runs `nft --version` and `nft --check` before its delete, and each nft
// process costs ~30 ms of CPU on the project's VMs, at every start and
// stop of a node (docs/BENCHMARKS.md, "Start: where the CPU goes"). Where
// the one transaction fails (no nft, or a kernel without the ip6 family),
// it falls back to upstream's. It returns true if an error was
// encountered, as upstream's.
func cleanupLeftovers(ctx context.Context) (encounteredError bool) {
	path, err := exec.LookPath("nft")
	if err == nil {
		cmd := exec.CommandContext(ctx, path, "-f", "-")
		cmd.Stdin = strings.NewReader(deleteTablesText)
		out, err := cmd.CombinedOutput()
		if err == nil {
			return false
		}
		if ctx.Err() != nil {
			return true
		}
		klog.FromContext(ctx).V(2).Info("Deleting the kube-proxy tables in one transaction failed; deleting them one by one", "err", err, "output", strings.TrimSpace(string(out)))
	}
	return nftables.CleanupLeftovers(ctx)
}
