package network

import (
	"context"
	"errors"
	"fmt"
	"net"

	"github.com/vishvananda/netlink"
	"k8s.io/klog/v2"
)

// clearStaleBridgeAddrs removes from bridge, when it exists, each global
// address outside cidrs, as kubelet's kubenet did on a pod CIDR change
// (clearBridgeAddressesExcept): the bridge outlives the agent, and a Node
// deleted and registered again gets a new pod CIDR from the node-ipam
// controller, whose gateway address the bridge plugin then refuses to add
// beside the old one ("already has an IP address different from"). Only
// pods of the old CIDR used the old address, and they went with the Node.
func clearStaleBridgeAddrs(ctx context.Context, bridge string, cidrs []*net.IPNet) error {
	link, err := netlink.LinkByName(bridge)
	if errors.As(err, new(netlink.LinkNotFoundError)) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("find bridge %s: %w", bridge, err)
	}
	addrs, err := netlink.AddrList(link, netlink.FAMILY_ALL)
	if err != nil {
		return fmt.Errorf("list addresses of bridge %s: %w", bridge, err)
	}
	for _, a := range addrs {
		if !a.IP.IsGlobalUnicast() || inAny(a.IP, cidrs) {
			continue
		}
		klog.FromContext(ctx).Info("Removing an address of another pod CIDR from the node's bridge", "bridge", bridge, "address", a.IPNet.String())
		if err := netlink.AddrDel(link, &a); err != nil {
			return fmt.Errorf("remove address %s from bridge %s: %w", a.IPNet, bridge, err)
		}
	}
	return nil
}

func inAny(ip net.IP, cidrs []*net.IPNet) bool {
	for _, c := range cidrs {
		if c.Contains(ip) {
			return true
		}
	}
	return false
}
