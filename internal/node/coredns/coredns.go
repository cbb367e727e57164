package coredns

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coredns/caddy"
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/plugin"
	"k8s.io/klog/v2"

	// The plugins the Corefile uses, registered with caddy by their init.
	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/forward"
	_ "github.com/coredns/coredns/plugin/kubernetes"
)

// directives are the plugins Run's Corefile uses, in the order of
// CoreDNS's plugin.cfg (core/dnsserver/zdirectives.go): a query passes
// through them top to bottom.
// restoreKlog, ours, follows kubernetes; see setupOnce.
// clientsPlugin, ours, comes where CoreDNS's own access control (acl)
// does: before the cache, so that a refused client learns nothing from it.
var directives = []string{"bind", "errors", clientsPlugin, "cache", "kubernetes", restoreKlog, "forward"}

// restoreKlog is a plugin that changes no query: its setup gives klog
// back to the rest of the process right after the kubernetes plugin's
// setup made klog write through CoreDNS's log. Restoring it only after
// caddy.Start would leave every component's klog lines in CoreDNS's log
// for as long as the kubernetes plugin waits for its informers (up to 5 s).
const restoreKlog = "pocketkube_restore_klog"

// Config is a cluster DNS server.
type Config struct {
	// Addr is the IP address and port to serve DNS on (UDP and TCP), for
	// example "192.168.1.10:53". Required; the IP must not be unspecified,
	// because CoreDNS binds to it (bind plugin).
	Addr string
	// Kubeconfig holds the credentials CoreDNS lists and watches
	// Services, EndpointSlices and Namespaces with (see EnsureRBAC).
	// Required.
	Kubeconfig string
	// ClusterDomain is the cluster's DNS domain; empty means
	// "cluster.local".
	ClusterDomain string
	// ResolvConf is the file naming the upstream servers for names
	// outside the cluster; empty means "/etc/resolv.conf".
	ResolvConf string
	// Clients are the networks, besides this machine's own addresses,
	// whose queries are answered: the pod network. Queries from anywhere
	// else are refused (REFUSED), so that the node is no open resolver
	// for its network. Empty answers this machine only.
	Clients []netip.Prefix
}

// Corefile returns the Corefile Run serves, after checking cfg.
func Corefile(cfg Config) (string, error) {
	host, port, err := net.SplitHostPort(cfg.Addr)
	if err != nil {
		return "", fmt.Errorf("parse DNS address %q: %w", cfg.Addr, err)
	}
	ip := net.ParseIP(host)
	if ip == nil || ip.IsUnspecified() {
		return "", fmt.Errorf("DNS address %q: want a specific IP address", cfg.Addr)
	}
	if p, err := strconv.ParseUint(port, 10, 16); err != nil || p == 0 {
		return "", fmt.Errorf("DNS address %q: bad port", cfg.Addr)
	}
	if cfg.Kubeconfig == "" {
		return "", errors.New("kubeconfig is required")
	}
	domain := cfg.ClusterDomain
	if domain == "" {
		domain = "cluster.local"
	}
	resolvConf := cfg.ResolvConf
	if resolvConf == "" {
		resolvConf = "/etc/resolv.conf"
	}
	for _, s := range []string{cfg.Kubeconfig, domain, resolvConf} {
		if strings.ContainsAny(s, " \t\r\n{}\"#") {
			return "", fmt.Errorf("%q cannot be written into a Corefile", s)
		}
	}
	for _, n := range cfg.Clients {
		if !n.IsValid() {
			return "", fmt.Errorf("DNS clients: invalid network %v", n)
		}
	}
	// kubeadm's Corefile, less health, ready, prometheus, loop, reload and
	// loadbalance: pocketkube has no probes or metrics scrape for DNS, and
	// the Corefile never changes while Run runs. Plus clientsPlugin: a
	// kubeadm cluster's CoreDNS listens on a pod address, which only the
	// cluster reaches; this one listens on the node's.
	return fmt.Sprintf(`.:%s {
    bind %s
    errors
    %s
    kubernetes %s in-addr.arpa ip6.arpa {
        kubeconfig %s
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 5
    }
    %s
    forward . %s
    cache 30
}
`, port, ip, clientsLine(cfg.Clients), domain, cfg.Kubeconfig, restoreKlog, resolvConf), nil
}

// setupOnce sets CoreDNS's and caddy's process-wide state; see the
// package doc.
var setupOnce sync.Once

// Run serves cluster DNS on cfg.Addr until ctx is done, then stops the
// server and its informers and returns nil. It returns an error, without
// serving, when cfg is invalid or CoreDNS cannot start (the Corefile does
// not parse, the address cannot be bound). CoreDNS starts answering once
// its informers have synced, or after 5 s with whatever they hold.
func Run(ctx context.Context, cfg Config) error {
	corefile, err := Corefile(cfg)
	if err != nil {
		return err
	}
	logger := klog.FromContext(ctx)
	setupOnce.Do(func() {
		dnsserver.Directives = directives
		dnsserver.Quiet = true
		caddy.Quiet = true
		plugin.Register(restoreKlog, func(c *caddy.Controller) error {
			for c.Next() {
				if c.NextArg() {
					return c.ArgErr()
				}
			}
			klog.ClearLogger()
			return nil
		})
		plugin.Register(clientsPlugin, setupClients)
	})

	inst, err := caddy.Start(caddy.CaddyfileInput{
		Contents:       []byte(corefile),
		Filepath:       "Corefile",
		ServerTypeName: "dns",
	})
	// In case setup failed before restoreKlog ran.
	klog.ClearLogger()
	if err != nil {
		if inst != nil {
			stop(inst)
		}
		return fmt.Errorf("start CoreDNS on %s: %w", cfg.Addr, err)
	}
	logger.Info("Serving cluster DNS", "server", "coredns", "addr", cfg.Addr)
	<-ctx.Done()
	stop(inst)
	return nil
}

// stopWait bounds how long stop waits for CoreDNS's servers: a Ctrl-C
// soon after start was seen to hang in caddy's Instance.Wait past the
// node's stop limit.
const stopWait = 2 * time.Second

// stop closes inst's listeners, stops its plugins' informers and waits
// for its servers to return, at most stopWait (the process is ending).
func stop(inst *caddy.Instance) {
	inst.ShutdownCallbacks()
	inst.Stop()
	done := make(chan struct{})
	go func() {
		inst.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(stopWait):
	}
}
