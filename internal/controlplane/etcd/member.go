package etcd

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// Default ports of a member that other servers reach, as kubeadm's.
const (
	DefaultClientPort = 2379
	DefaultPeerPort   = 2380
)

// Member makes the embedded etcd one member of a cluster of servers
// (`up --cluster-init`, `up --server`): it serves its peers and remote
// clients on IP with mutual TLS from the etcd CA, besides the local
// unix socket.
type Member struct {
	// Name is the member's name, unique in the cluster (the node's
	// name). Required.
	Name string
	// IP is where its peers and remote clients reach it. Required.
	IP net.IP
	// PeerPort and ClientPort default to DefaultPeerPort and
	// DefaultClientPort.
	PeerPort, ClientPort int
	// CAFile is the etcd CA, which every peer and client certificate
	// must be signed by. Required.
	CAFile string
	// ServerCertFile/KeyFile serve clients; PeerCertFile/KeyFile serve
	// and dial peers; ClientCertFile/KeyFile authenticate this server to
	// the other members' membership API. Required.
	ServerCertFile, ServerKeyFile string
	PeerCertFile, PeerKeyFile     string
	ClientCertFile, ClientKeyFile string
	// Join lists client URLs of running members. Empty starts a new
	// cluster of one voting member; otherwise, unless the data directory
	// already holds this member's data, Start adds it to theirs as a
	// learner through etcd's membership API and promotes it to a voting
	// member once it has caught up with the leader.
	Join []string
}

func (m *Member) peerURL() url.URL {
	return url.URL{Scheme: "https", Host: net.JoinHostPort(m.IP.String(), strconv.Itoa(m.PeerPort))}
}

func (m *Member) clientURL() url.URL {
	return url.URL{Scheme: "https", Host: net.JoinHostPort(m.IP.String(), strconv.Itoa(m.ClientPort))}
}

func (m *Member) validate() error {
	switch {
	case m.Name == "":
		return errors.New("etcd member: Name is required")
	case m.IP == nil:
		return errors.New("etcd member: IP is required")
	case m.CAFile == "" || m.ServerCertFile == "" || m.PeerCertFile == "" || m.ClientCertFile == "":
		return errors.New("etcd member: the CA, server, peer and client certificates are required")
	}
	if m.PeerPort == 0 {
		m.PeerPort = DefaultPeerPort
	}
	if m.ClientPort == 0 {
		m.ClientPort = DefaultClientPort
	}
	return nil
}

// configure sets up ec for m: listeners, TLS and the initial cluster. It
// joins the running cluster (MemberAddAsLearner) when m.Join is set and
// memberDir holds no data of an earlier start. joined says whether it
// did.
func (m *Member) configure(ctx context.Context, ec *embed.Config, memberDir string, logger *zap.Logger) (joined bool, err error) {
	ec.Name = m.Name
	peer, client := m.peerURL(), m.clientURL()
	ec.ListenPeerUrls = []url.URL{peer}
	ec.AdvertisePeerUrls = []url.URL{peer}
	ec.ListenClientUrls = append(ec.ListenClientUrls, client)
	ec.AdvertiseClientUrls = []url.URL{client}
	ec.PeerTLSInfo = transport.TLSInfo{CertFile: m.PeerCertFile, KeyFile: m.PeerKeyFile, TrustedCAFile: m.CAFile, ClientCertAuth: true}
	ec.ClientTLSInfo = transport.TLSInfo{CertFile: m.ServerCertFile, KeyFile: m.ServerKeyFile, TrustedCAFile: m.CAFile, ClientCertAuth: true}
	ec.InitialCluster = ec.InitialClusterFromName(ec.Name)
	ec.ClusterState = embed.ClusterStateFlagNew
	if len(m.Join) == 0 {
		// A new cluster, or a restart of the first member: etcd takes
		// the membership from its WAL and ignores the initial cluster.
		return false, nil
	}
	if hasData(memberDir) {
		if !m.wasRemoved(ctx, logger) {
			return false, nil // a restart, as above
		}
		logger.Info("this etcd member was removed from its cluster: joining it again as a new member", zap.String("name", m.Name))
		if err := moveAside(memberDir, logger); err != nil {
			return false, err
		}
	}
	cli, err := m.client(m.Join, logger)
	if err != nil {
		return false, err
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	list, err := cli.MemberList(ctx)
	if err != nil {
		return false, fmt.Errorf("list the members of etcd at %s: %w", strings.Join(m.Join, ","), err)
	}
	members, id := list.Members, uint64(0)
	for _, mem := range members {
		for _, u := range mem.PeerURLs {
			if u == peer.String() {
				if mem.Name != "" && mem.Name != m.Name {
					return false, fmt.Errorf("etcd member %s already has peer URL %s", mem.Name, u)
				}
				// Added by an earlier start that stopped before
				// etcd wrote its data: start as that member.
				id = mem.ID
			}
		}
	}
	if id == 0 {
		var resp *clientv3.MemberAddResponse
		for {
			resp, err = cli.MemberAddAsLearner(ctx, []string{peer.String()})
			// etcd refuses a new member until every voting member has
			// been connected for a while (its strict reconfiguration
			// check): just after another server joined, wait.
			if !errors.Is(err, rpctypes.ErrUnhealthy) || ctx.Err() != nil {
				break
			}
			logger.Info("etcd cluster not ready for a new member, will retry", zap.Error(err))
			time.Sleep(500 * time.Millisecond)
		}
		if err != nil {
			return false, fmt.Errorf("add etcd member %s at %s: %w", m.Name, peer.String(), err)
		}
		members, id = resp.Members, resp.Member.ID
		logger.Info("added etcd member as a learner", zap.String("name", m.Name), zap.String("peer-url", peer.String()), zap.String("id", fmt.Sprintf("%x", id)))
	}
	// As etcdctl member add prints it: every member by name, ours with
	// the name it will have, those not started yet with none.
	var initial []string
	for _, mem := range members {
		name := mem.Name
		if mem.ID == id {
			name = m.Name
		}
		for _, u := range mem.PeerURLs {
			initial = append(initial, name+"="+u)
		}
	}
	ec.InitialCluster = strings.Join(initial, ",")
	ec.ClusterState = embed.ClusterStateFlagExisting
	return true, nil
}

// promote makes the learner a voting member, retrying while etcd says it
// has not caught up with the leader yet.
func (m *Member) promote(ctx context.Context, id uint64, timeout time.Duration, logger *zap.Logger) error {
	cli, err := m.client(m.Join, logger)
	if err != nil {
		return err
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := cli.MemberPromote(rctx, id)
		rcancel()
		if err == nil {
			logger.Info("promoted etcd member to a voting member", zap.String("name", m.Name))
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("promote etcd member %s: %w", m.Name, err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// client is an etcd client of endpoints with m's client certificate.
func (m *Member) client(endpoints []string, logger *zap.Logger) (*clientv3.Client, error) {
	tlsCfg, err := clientTLS(m.CAFile, m.ClientCertFile, m.ClientKeyFile)
	if err != nil {
		return nil, err
	}
	return clientv3.New(clientv3.Config{Endpoints: endpoints, TLS: tlsCfg, DialTimeout: 5 * time.Second, Logger: logger})
}

func clientTLS(ca, cert, key string) (*tls.Config, error) {
	tlsCfg, err := transport.TLSInfo{CertFile: cert, KeyFile: key, TrustedCAFile: ca}.ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("etcd client TLS: %w", err)
	}
	return tlsCfg, nil
}

// hasData reports whether dir holds a member's WAL.
func hasData(dir string) bool {
	entries, err := os.ReadDir(filepath.Join(dir, "member", "wal"))
	return err == nil && len(entries) > 0
}

// Client is what `pocketkube etcd` uses to change the membership of a
// cluster of servers.
type Client struct {
	cli *clientv3.Client
}

// NewClient connects to the members at endpoints with a client
// certificate of the etcd CA.
func NewClient(endpoints []string, caFile, certFile, keyFile string) (*Client, error) {
	tlsCfg, err := clientTLS(caFile, certFile, keyFile)
	if err != nil {
		return nil, err
	}
	return newClient(endpoints, tlsCfg)
}

// NewExternalClient connects to an external etcd at endpoints as the API
// server does with --etcd-servers: with TLS from caFile, certFile and
// keyFile when one of them is given.
func NewExternalClient(endpoints []string, caFile, certFile, keyFile string) (*Client, error) {
	var tlsCfg *tls.Config
	if caFile != "" || certFile != "" || keyFile != "" {
		var err error
		if tlsCfg, err = clientTLS(caFile, certFile, keyFile); err != nil {
			return nil, err
		}
	}
	return newClient(endpoints, tlsCfg)
}

// Has reports whether key exists.
func (c *Client) Has(ctx context.Context, key string) (bool, error) {
	resp, err := c.cli.Get(ctx, key, clientv3.WithCountOnly())
	if err != nil {
		return false, fmt.Errorf("etcd get %s: %w", key, err)
	}
	return resp.Count > 0, nil
}

// NewLocalClient connects to the member of this machine whose data
// directory is dir, through its unix socket (Config.DataDir).
func NewLocalClient(dir string) (*Client, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	return newClient([]string{(&url.URL{Scheme: "unix", Path: filepath.Join(dir, "etcd.sock")}).String()}, nil)
}

func newClient(endpoints []string, tlsCfg *tls.Config) (*Client, error) {
	cli, err := clientv3.New(clientv3.Config{Endpoints: endpoints, TLS: tlsCfg, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return nil, fmt.Errorf("connect to etcd at %s: %w", strings.Join(endpoints, ","), err)
	}
	return &Client{cli: cli}, nil
}

// Close closes the connections.
func (c *Client) Close() error { return c.cli.Close() }

// Members lists the cluster's members.
func (c *Client) Members(ctx context.Context) ([]*etcdserverpb.Member, error) {
	resp, err := c.cli.MemberList(ctx)
	if err != nil {
		return nil, fmt.Errorf("list etcd members: %w", err)
	}
	return resp.Members, nil
}

// ErrLastMember is returned by RemoveMember for the cluster's only voting
// member: removing it would leave no cluster at all.
var ErrLastMember = errors.New("the only voting etcd member cannot be removed")

// ErrNoMember is returned by RemoveMember when no member has the name.
var ErrNoMember = errors.New("no such etcd member")

// RemoveMember removes the member called name. etcd itself refuses a
// removal that would leave the remaining members without a quorum of the
// started ones (its strict reconfiguration check); RemoveMember retries
// that refusal until ctx is done, since it also comes while a member has
// just (re)started. With two members, remove one before stopping it: the
// one left alone has no quorum to commit the removal with.
func (c *Client) RemoveMember(ctx context.Context, name string) error {
	members, err := c.Members(ctx)
	if err != nil {
		return err
	}
	var id uint64
	voters := 0
	for _, m := range members {
		if !m.IsLearner {
			voters++
		}
		if m.Name == name {
			id = m.ID
		}
	}
	if id == 0 {
		return fmt.Errorf("%w: %s", ErrNoMember, name)
	}
	for _, m := range members {
		if m.ID == id && !m.IsLearner && voters == 1 {
			return fmt.Errorf("remove %s: %w", name, ErrLastMember)
		}
	}
	for {
		_, err := c.cli.MemberRemove(ctx, id)
		if err == nil {
			return nil
		}
		// etcd's strict reconfiguration check refuses while the members
		// that would be left have not all been connected for a while
		// (one just restarted): wait while ctx lets.
		if !errors.Is(err, rpctypes.ErrUnhealthy) || ctx.Err() != nil {
			return fmt.Errorf("remove etcd member %s: %w", name, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("remove etcd member %s: %w", name, err)
		case <-time.After(500 * time.Millisecond):
		}
	}
}
