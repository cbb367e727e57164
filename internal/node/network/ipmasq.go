package network

import (
	"bytes"
	"context"
	"crypto/sha512"
	"fmt"
	"os/exec"
	"slices"
	"strings"
)

// ipMasqChain names the per-pod masquerade chain exactly as the bridge
// plugin does (plugins pkg/utils FormatChainName).
func ipMasqChain(network, containerID string) string {
	return fmt.Sprintf("CNI-%x", sha512.Sum512([]byte(network+containerID)))[:28]
}

// teardownIPMasq removes every POSTROUTING rule jumping to the pod's
// masquerade chain, and the chain. The bridge plugin removes them itself only
// when it finds the pod's interface in the pod's netns (it reads the
// addresses to delete from there), so after a lost netns or a deleted veth
// they would leak, and the next DEL of the same pod UID would fail on the
// still-referenced chain. It costs one iptables call per family when there
// is nothing to remove, and reports whether it removed anything. bins are
// the iptables commands of the pod CIDR's families.
func teardownIPMasq(ctx context.Context, network, containerID string, bins []string) (bool, error) {
	chain := ipMasqChain(network, containerID)
	comment := fmt.Sprintf("name: %q id: %q", network, containerID) // FormatComment
	removed := false
	for _, bin := range bins {
		if _, err := exec.LookPath(bin); err != nil {
			continue
		}
		out, err := iptables(ctx, bin, "-t", "nat", "-S")
		if err != nil {
			return removed, err
		}
		var sources []string // of the POSTROUTING rules that jump to chain
		exists := false
		for _, line := range strings.Split(string(out), "\n") {
			f := strings.Fields(line)
			switch {
			case len(f) == 2 && f[0] == "-N" && f[1] == chain:
				exists = true
			case len(f) >= 2 && f[0] == "-A" && f[1] == "POSTROUTING":
				j, src := slices.Index(f, "-j"), slices.Index(f, "-s")
				if j >= 0 && j+1 < len(f) && f[j+1] == chain && src >= 0 && src+1 < len(f) {
					sources = append(sources, f[src+1])
				}
			}
		}
		// Delete by specification, never by rule number: plugins running for
		// other pods change the numbering concurrently.
		for _, src := range sources {
			if _, err := iptables(ctx, bin, "-t", "nat", "-D", "POSTROUTING", "-s", src, "-m", "comment", "--comment", comment, "-j", chain); err != nil {
				return removed, err
			}
			removed = true
		}
		if exists {
			if _, err := iptables(ctx, bin, "-t", "nat", "-F", chain); err != nil {
				return removed, err
			}
			if _, err := iptables(ctx, bin, "-t", "nat", "-X", chain); err != nil {
				return removed, err
			}
			removed = true
		}
	}
	return removed, nil
}

func iptables(ctx context.Context, bin string, args ...string) ([]byte, error) {
	args = append(args, "--wait")
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("run %s %s: %w: %s", bin, strings.Join(args, " "), err, bytes.TrimSpace(stderr.Bytes()))
	}
	return stdout.Bytes(), nil
}

// ensureMasquerade installs, once per node, the rule that masquerades pod
// traffic leaving the bridge for anywhere but the bridge itself: what the
// bridge plugin's ipMasq does per pod, for the whole pod CIDR.
// The same rule for another source, left by a run on another pod CIDR of
// this family (a Node deleted and registered again), is removed.
func ensureMasquerade(ctx context.Context, bin, cidr, bridge string) error {
	const comment = "pocketkube: masquerade pod traffic"
	masq := func(src string) []string {
		return []string{"POSTROUTING", "-s", src, "!", "-o", bridge, "-m", "comment", "--comment", comment, "-j", "MASQUERADE"}
	}
	rules, err := iptables(ctx, bin, "-t", "nat", "-S", "POSTROUTING")
	if err != nil {
		return fmt.Errorf("list pod masquerade rules: %w", err)
	}
	for line := range strings.Lines(string(rules)) {
		f := strings.Fields(line)
		// -A POSTROUTING -s SRC ! -o BRIDGE -m comment --comment "…" -j MASQUERADE
		if len(f) < 8 || f[2] != "-s" || f[4] != "!" || f[6] != bridge || !strings.Contains(line, comment) || f[3] == cidr {
			continue
		}
		if _, err := iptables(ctx, bin, append([]string{"-t", "nat", "-D"}, masq(f[3])...)...); err != nil {
			return fmt.Errorf("remove masquerade rule of pod CIDR %s: %w", f[3], err)
		}
	}
	rule := masq(cidr)
	if _, err := iptables(ctx, bin, append([]string{"-t", "nat", "-C"}, rule...)...); err == nil {
		return nil
	}
	if _, err := iptables(ctx, bin, append([]string{"-t", "nat", "-A"}, rule...)...); err != nil {
		return fmt.Errorf("install pod masquerade rule: %w", err)
	}
	return nil
}
