package network

import (
	"encoding/json"
	"fmt"
	"net"
	"strings"
)

// networkName is the name of the CNI network and of its conflist.
const networkName = "pocketkube"

// cniVersion is the newest CNI spec version Debian 12's plugins (1.1.1) speak.
const cniVersion = "1.0.0"

// confList is the subset of the CNI network configuration list format that we
// generate. Keeping it typed means a typo is a compile error, not a plugin
// silently ignoring a key.
type confList struct {
	CNIVersion string `json:"cniVersion"`
	Name       string `json:"name"`
	Plugins    []any  `json:"plugins"`
}

type bridgeConf struct {
	Type        string   `json:"type"`
	Bridge      string   `json:"bridge"`
	IsGateway   bool     `json:"isGateway"`
	IPMasq      bool     `json:"ipMasq"`
	HairpinMode bool     `json:"hairpinMode"`
	MTU         int      `json:"mtu,omitempty"`
	IPAM        ipamConf `json:"ipam"`
}

type ipamConf struct {
	Type    string        `json:"type"`
	Ranges  [][]ipamRange `json:"ranges"`
	Routes  []ipamRoute   `json:"routes"`
	DataDir string        `json:"dataDir"`
}

type ipamRange struct {
	Subnet string `json:"subnet"`
}

type ipamRoute struct {
	Dst string `json:"dst"`
}

type portmapConf struct {
	Type         string          `json:"type"`
	Capabilities map[string]bool `json:"capabilities"`
	SNAT         bool            `json:"snat"`
}

// parseCIDRs splits a comma-separated pod CIDR list ("10.244.0.0/24" or
// "10.244.0.0/24,fd00:10:244::/64") into networks, primary first.
func parseCIDRs(s string) ([]*net.IPNet, error) {
	var nets []*net.IPNet
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		_, n, err := net.ParseCIDR(part)
		if err != nil {
			return nil, fmt.Errorf("parse pod CIDR %q: %w", part, err)
		}
		nets = append(nets, n)
	}
	if len(nets) == 0 {
		return nil, fmt.Errorf("parse pod CIDR %q: empty", s)
	}
	if len(nets) > 2 || (len(nets) == 2 && (nets[0].IP.To4() == nil) == (nets[1].IP.To4() == nil)) {
		return nil, fmt.Errorf("parse pod CIDR %q: want one CIDR, or one per IP family", s)
	}
	return nets, nil
}

// buildConfList returns the "pocketkube" conflist for cfg, whose defaults
// are already filled in; with portmap only when hostPorts asks for it,
// since every plugin in the chain costs a process and iptables calls on
// each pod's start and stop. The bridge does not masquerade per pod: New
// installs one masquerade rule for the whole pod CIDR instead.
func buildConfList(cfg Config, ipamDir string, portmap bool) ([]byte, error) {
	cidrs, err := parseCIDRs(cfg.PodCIDR)
	if err != nil {
		return nil, err
	}
	ipam := ipamConf{Type: "host-local", DataDir: ipamDir}
	for _, n := range cidrs {
		ipam.Ranges = append(ipam.Ranges, []ipamRange{{Subnet: n.String()}})
		dst := "0.0.0.0/0"
		if n.IP.To4() == nil {
			dst = "::/0"
		}
		ipam.Routes = append(ipam.Routes, ipamRoute{Dst: dst})
	}
	list := confList{
		CNIVersion: cniVersion,
		Name:       networkName,
		Plugins: []any{
			bridgeConf{
				Type:        "bridge",
				Bridge:      cfg.Bridge,
				IsGateway:   true,
				IPMasq:      false,
				HairpinMode: true,
				MTU:         cfg.MTU,
				IPAM:        ipam,
			},
		},
	}
	if portmap {
		list.Plugins = append(list.Plugins, portmapConf{
			Type:         "portmap",
			Capabilities: map[string]bool{"portMappings": true},
			SNAT:         true,
		})
	}
	b, err := json.MarshalIndent(list, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("marshal conflist: %w", err)
	}
	return append(b, '\n'), nil
}
