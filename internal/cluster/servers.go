package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/pocketkube/pocketkube/internal/controlplane"
	"github.com/pocketkube/pocketkube/internal/controlplane/etcd"
	"github.com/pocketkube/pocketkube/internal/node/join"
	"github.com/pocketkube/pocketkube/internal/sharedcerts"
)

// Several servers (`up --cluster-init`, `up --server`), as issue 15 asks
// and as kubeadm's `join --control-plane` does it: the joining server
// trusts the cluster by the token and the CA hash (join.Discover), gets
// the CAs and service-account keys from kube-system/kubeadm-certs with the
// certificate key (package sharedcerts), joins the embedded etcd through
// its membership API (package etcd), and runs its own API server,
// controller-manager and scheduler (the last two under leader election,
// and so does servicelb: internal/controlplane/servicelb) and its node,
// whose local-path provisioner makes the volumes of that node only
// (internal/node/localpath), as every joined node's does. DIR/server-token
// holds the flags; every server writes it, naming the server it joined
// through, so any of them can hand out the flags.
//
// kube-public/cluster-info names one server (kubeadm's format holds one),
// to which a joining node's TLS bootstrap goes: the first, until it stops;
// then a live one writes its own URL there (bootstrap.KeepClusterInfo).
// kube-dns has an endpoint per server and metrics-server an EndpointSlice
// per server, each ready while its Node is (bootstrap.KeepDNSEndpoints,
// internal/controlplane/metricsserver). An agent reaches the API servers
// through a load balancer of its own, which fails over to another server
// when the one it uses stops (internal/node/apilb).
//
// A clean stop (Ctrl-C, SIGTERM) leaves: the server removes its etcd
// member before etcd stops (controlplane.Servers.Leave), as `kubeadm
// reset` does, so that the servers left count only each other in their
// quorum: three servers stopped one by one keep serving down to the last.
// The only voting member stays, and so does one whose removal etcd
// refuses because the others would lack a quorum (one of them is down);
// a stop for a failure keeps the member too, for a supervisor to start
// the server again as the member it was. Started again on its data dir,
// a server that left joins the others as a new member (a learner, then
// promoted; its old etcd data moved aside), the first one too when
// started with --cluster-init again. The price: a restart (systemctl
// restart) is a leave and a join, whose learner catches up from a
// snapshot; k3s instead keeps members until their Node is deleted.
//
// On an external etcd (`--etcd-servers`, the same for every server) the
// servers share it: no member, nothing to join or leave; kube-system/
// kubeadm-certs then holds no etcd CA, and a joining server is refused
// unless its etcd is the cluster's (checkSameEtcd).
//
// `--cluster-init` on the data dir of a plain `up` keeps its data: its
// etcd member, which advertised a peer URL nobody dials, gets the
// server's address (etcd's MemberUpdate), and others join it.
//
// Not yet:
//   - a server whose controller-manager or scheduler loses its lease (its
//     etcd lost quorum) stops with an error, as upstream's components
//     exit, for a supervisor to start again;
//   - the kubeconfigs `up` writes (DIR/kubeconfig) name one server, with
//     no load balancer in front: a user's kubectl goes to that server.

// JoinServer is how a server joins the cluster of a running one (`up
// --server`), with kubeadm's `join --control-plane` credentials: what the
// first server's DIR/server-token holds.
type JoinServer struct {
	// Server is a running server's API, https://HOST:PORT; its etcd is
	// reached at HOST:2379.
	Server string
	// Token is a bootstrap token and CACertHashes pin the cluster CA, as
	// for `pocketkube agent`.
	Token        string
	CACertHashes []string
	// CertificateKey decrypts the cluster's kubeadm-certs Secret.
	CertificateKey string
}

// ServerTokenPath is where a server of several writes how to join another
// server to its cluster (`up --server …`), 0600.
func ServerTokenPath(dataDir string) string { return filepath.Join(dataDir, "server-token") }

// prepareServers fills in cfg.ControlPlane.Servers for `up --cluster-init`
// and `up --server`. A joining server that has no PKI yet discovers the
// cluster (token and CA hash) and fetches its certificates
// (certificate key) first; a wrong one of either is refused before
// anything is written.
func prepareServers(ctx context.Context, cfg *Config) error {
	if !cfg.ClusterInit && cfg.Join == nil {
		return nil
	}
	// A clean stop (ctx cancelled: Ctrl-C, SIGTERM) leaves the etcd
	// cluster; a stop for a failure keeps the member, for a supervisor
	// to start it again as the member it was.
	// On an external etcd (`--etcd-servers`, given to every server) the
	// servers share it: nothing to join or leave.
	embedded := len(cfg.ControlPlane.EtcdServers) == 0
	s := &controlplane.Servers{MemberName: cfg.ServerName}
	if embedded {
		s.Leave = func() bool { return ctx.Err() != nil }
	}
	cfg.ControlPlane.Servers = s
	if cfg.Join == nil {
		return nil
	}
	u, err := url.Parse(cfg.Join.Server)
	if err != nil || u.Hostname() == "" {
		return fmt.Errorf("--server %q: want https://HOST:PORT", cfg.Join.Server)
	}
	if embedded {
		s.JoinEtcd = []string{"https://" + net.JoinHostPort(u.Hostname(), strconv.Itoa(etcd.DefaultClientPort))}
	}
	if controlplane.HasPKI(cfg.ControlPlane.DataDir) {
		return nil
	}
	server, caPEM, err := join.Discover(ctx, cfg.Join.Server, cfg.Join.Token, cfg.Join.CACertHashes, 0)
	if err != nil {
		return err
	}
	client, err := kubernetes.NewForConfig(&rest.Config{Host: server, BearerToken: cfg.Join.Token, TLSClientConfig: rest.TLSClientConfig{CAData: caPEM}})
	if err != nil {
		return err
	}
	files, err := sharedcerts.Fetch(ctx, client, cfg.Join.CertificateKey)
	if err != nil {
		return fmt.Errorf("refused to join %s as a server: %w", cfg.Join.Server, err)
	}
	if err := checkSameEtcd(ctx, cfg.ControlPlane, files); err != nil {
		return fmt.Errorf("refused to join %s as a server: %w", cfg.Join.Server, err)
	}
	s.SharedCerts = files
	return nil
}

// kubeadmCertsKey is where the API server keeps kube-system/kubeadm-certs
// in etcd (its default prefix, /registry).
const kubeadmCertsKey = "/registry/secrets/kube-system/kubeadm-certs"

// checkSameEtcd refuses a joining server whose etcd is not its cluster's:
// an embedded etcd for a cluster on an external one (the cluster's
// kubeadm-certs hold no etcd CA: files) or the other way round, or an
// external etcd that does not hold kube-system/kubeadm-certs, the Secret
// the files came from (another etcd: the server would serve a cluster of
// its own under the cluster's CA).
func checkSameEtcd(ctx context.Context, cp controlplane.Config, files map[string][]byte) error {
	_, embeddedCluster := files[sharedcerts.EtcdCA]
	external := len(cp.EtcdServers) > 0
	switch {
	case !external && !embeddedCluster:
		return errors.New("its servers share an external etcd: give this one the same --etcd-servers (and --etcd-cafile, --etcd-certfile, --etcd-keyfile)")
	case external && embeddedCluster:
		return errors.New("its servers share an embedded etcd, which a server on --etcd-servers cannot join")
	case !external:
		return nil
	}
	c, err := etcd.NewExternalClient(cp.EtcdServers, cp.EtcdCAFile, cp.EtcdCertFile, cp.EtcdKeyFile)
	if err != nil {
		return fmt.Errorf("--etcd-servers: %w", err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	has, err := c.Has(ctx, kubeadmCertsKey)
	if err != nil {
		return fmt.Errorf("--etcd-servers: %w", err)
	}
	if !has {
		return fmt.Errorf("the etcd of --etcd-servers %s does not hold its cluster (no %s): give the --etcd-servers of its first server", strings.Join(cp.EtcdServers, ","), kubeadmCertsKey)
	}
	return nil
}
