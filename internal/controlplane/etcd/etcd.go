// Package etcd runs the embedded etcd that backs the control plane.
//
// It serves clients on a unix socket in the data directory, so that two
// clusters on one machine, or a Debian etcd already listening on 2379, never
// clash over a port, and so that only root reaches it: the directory is 0700
// and etcd asks no client for credentials. Unless Config.Member is set, the
// one member has no peer listener at all: a peer port, which etcd serves
// without authentication unless given peer certificates, would let anyone
// who reaches it send raft messages or a snapshot that replace the
// cluster's data.
//
// # Several servers
//
// With Config.Member (`up --cluster-init`, `up --server`) the member also
// serves its peers (2380) and remote clients (2379) at the server's
// address, both with mutual TLS: only certificates of the etcd CA are
// accepted. A new server joins through etcd's own membership API, as
// kubeadm's learner mode does: MemberAddAsLearner at a running member,
// start with initial-cluster-state existing, MemberPromote once the
// learner has caught up, and Start returns only when the member serves
// clients as a voting member. A restart on the same data directory
// resumes the same member (etcd ignores the initial cluster once it has
// a WAL). A data directory of the single member started with
// Config.Member keeps its data and member, whose peer URL Start updates
// to Member's (MemberUpdate, as etcdctl member update) while it is the
// only member. Client.RemoveMember removes a member; etcd itself refuses a
// removal that would cost the started members their quorum, and it
// refuses the last voting member.
//
// Server.Leave removes the member itself, as a server's clean stop does
// (package controlplane): it hands over the leadership first, and it
// writes DataDir/rejoin with the client URLs of the members that stayed.
// The next Start on that directory moves the old member's data aside
// (member-data.left-TIME, kept for the administrator, as k3s keeps its
// etcd-old-TIME) and joins them as a new learner, even without
// Member.Join (the first server, started with --cluster-init again,
// never starts a second cluster of its own); without Config.Member it
// refuses to start (ErrLeft). A member removed while it ran (`pocketkube
// etcd remove-member`; etcd stops it) is found out when it starts again
// with Member.Join: the members there, reachable, no longer list its peer
// URL, so its data is moved aside the same way and it joins as a new
// member. Caveat: without Join (the first server) and without the rejoin
// file, it is refused by the others: move DataDir/member-data aside by
// hand to join it again.
//
// # Disk space
//
// etcd stops the whole process (a zap Fatal, os.Exit) when a write of its
// WAL or its database fails for want of space. So that a disk filling up
// (logs, images, emptyDirs on the same filesystem) does not take the
// cluster down with it, Start watches the free space of the data
// directory's filesystem and raises etcd's own NOSPACE alarm, the one
// etcd raises when its database reaches its space quota
// (--quota-backend-bytes, etcd's default 2 GiB), while less than
// Config.ReserveBytes is free: etcd then refuses every write that adds
// data with "etcdserver: mvcc: database space exceeded", which the API
// server passes on to its clients, and keeps serving reads, deletes and
// everything it acknowledged. Once the space is back (a quarter of the
// reserve more, so that the alarm does not flap), the guard disarms the
// alarm it raised and writes work again, without a restart; an alarm
// etcd raised for its quota is left to the administrator (compact,
// defragment, `etcdctl alarm disarm`), as etcd documents.
//
// Caveats: Start must be called at most once per data directory at a time;
// the caller holds the data directory's lock. The guard looks every
// Config.GuardPeriod: a writer that fills the reserve faster than that
// still gets etcd to exit (with etcd's "no space left on device" as its
// last log); everything it acknowledged is in its WAL and `up` resumes it
// once there is space.
package etcd

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// maxSocketPath is the longest unix socket path Linux accepts (sun_path).
const maxSocketPath = 107

// Config says where etcd keeps its data.
type Config struct {
	// DataDir holds the member's WAL and snapshots, and the client socket.
	// Required; created 0700 when missing.
	DataDir string
	// Logger receives etcd's logs. Defaults to a no-op logger.
	Logger *zap.Logger
	// ReadyTimeout bounds how long Start waits for the member to serve.
	// Defaults to one minute (a slow disk replaying a large WAL).
	ReadyTimeout time.Duration
	// ReserveBytes is how much free space the data directory's
	// filesystem keeps: below it etcd refuses writes (NOSPACE alarm).
	// Defaults to DefaultReserveBytes; negative turns the guard off.
	ReserveBytes int64
	// GuardPeriod is how often the free space is read; default one
	// second (a statfs).
	GuardPeriod time.Duration
	// QuotaBackendBytes is etcd's --quota-backend-bytes: the database
	// size at which etcd raises its NOSPACE alarm itself. Zero is etcd's
	// default, 2 GiB.
	QuotaBackendBytes int64
	// Member, when set, makes this etcd one member of a cluster of
	// servers (see Member). nil is the single member that serves the
	// unix socket only, with no peer listener.
	Member *Member
}

// DefaultReserveBytes is Config.ReserveBytes' default: room for the next
// WAL segment, which etcd preallocates whole (64 MiB, wal.SegmentSizeBytes)
// and cannot do without, and as much again for its database to grow into
// while the alarm is raised.
const DefaultReserveBytes = 128 << 20

// NoSpaceError is what etcd answers a write while the NOSPACE alarm is
// raised (rpctypes.ErrGRPCNoSpace), and what the API server's clients
// read.
const NoSpaceError = "etcdserver: mvcc: database space exceeded"

// Server is a running embedded etcd.
type Server struct {
	etcd     *embed.Etcd
	endpoint string
	// closing silences the errors etcd logs about its own listeners
	// closing while Close runs.
	closing *atomic.Bool
	// stopGuard stops the disk guard; guardDone is closed once it has.
	stopGuard context.CancelFunc
	guardDone chan struct{}
	closeOnce sync.Once
	// dir is Config.DataDir, absolute; member is Config.Member.
	dir    string
	member *Member
	logger *zap.Logger
}

// quietWhileClosing drops log entries below Fatal once closing is set.
type quietWhileClosing struct {
	zapcore.Core
	closing *atomic.Bool
}

func (c quietWhileClosing) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.closing.Load() && e.Level < zapcore.FatalLevel {
		return ce
	}
	return c.Core.Check(e, ce)
}

func (c quietWhileClosing) With(fields []zapcore.Field) zapcore.Core {
	return quietWhileClosing{Core: c.Core.With(fields), closing: c.closing}
}

// Start starts etcd and returns once it serves clients. Cancelling ctx
// before then aborts the start; after that, stop the server with Close.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("etcd: DataDir is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.ReadyTimeout == 0 {
		cfg.ReadyTimeout = time.Minute
	}
	if cfg.ReserveBytes == 0 {
		cfg.ReserveBytes = DefaultReserveBytes
	}
	if cfg.GuardPeriod == 0 {
		cfg.GuardPeriod = time.Second
	}
	dir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("etcd data dir %s: %w", cfg.DataDir, err)
	}
	socket := filepath.Join(dir, "etcd.sock")
	if len(socket) > maxSocketPath {
		return nil, fmt.Errorf("etcd socket path %s is longer than %d bytes: use a shorter --data-dir", socket, maxSocketPath)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create etcd data dir: %w", err)
	}
	// The directory's mode is the client socket's only access control.
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("restrict etcd data dir: %w", err)
	}
	// A socket left by a killed process would make the listen fail.
	if err := os.Remove(socket); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("remove stale etcd socket: %w", err)
	}

	ec := embed.NewConfig()
	ec.Name = "pocketkube"
	ec.Dir = filepath.Join(dir, "member-data")
	clientURL := url.URL{Scheme: "unix", Path: socket}
	ec.ListenClientUrls = []url.URL{clientURL}
	ec.AdvertiseClientUrls = []url.URL{clientURL}
	// The advertised peer URL names the member (its ID is derived from
	// it, so it stays what earlier versions listened on) and is never
	// dialled: with no other member, raft sends no peer messages. Nothing
	// listens on it.
	ec.ListenPeerUrls = nil
	ec.AdvertisePeerUrls = []url.URL{{Scheme: "http", Host: "127.0.0.1:0"}}
	ec.InitialCluster = ec.InitialClusterFromName(ec.Name)
	// With one member nobody else can vote: a short election timeout makes
	// it leader sooner without any risk of split votes.
	ec.TickMs = 10
	ec.ElectionMs = 100
	// The API server compacts etcd itself (--etcd-compaction-interval).
	ec.AutoCompactionMode = embed.CompactorModePeriodic
	ec.AutoCompactionRetention = "0"
	closing := &atomic.Bool{}
	joined := false
	rejoin, err := prepareRejoin(dir, ec.Dir, cfg.Member, cfg.Logger)
	if err != nil {
		return nil, err
	}
	if cfg.Member != nil {
		if err := cfg.Member.validate(); err != nil {
			return nil, err
		}
		// etcd's default timing (100 ms heartbeat, 1 s election): several
		// members vote, and a short election timeout would split votes.
		ec.TickMs, ec.ElectionMs = embed.NewConfig().TickMs, embed.NewConfig().ElectionMs
		if joined, err = cfg.Member.configure(ctx, ec, ec.Dir, cfg.Logger); err != nil {
			return nil, err
		}
	}
	ec.ZapLoggerBuilder = embed.NewZapLoggerBuilder(cfg.Logger.WithOptions(zap.WrapCore(func(c zapcore.Core) zapcore.Core {
		return quietWhileClosing{Core: c, closing: closing}
	})))
	ec.QuotaBackendBytes = cfg.QuotaBackendBytes
	ec.EnablePprof = false
	ec.Metrics = "basic"

	e, err := embed.StartEtcd(ec)
	if err != nil {
		return nil, fmt.Errorf("start etcd in %s: %w", dir, err)
	}
	timer := time.NewTimer(cfg.ReadyTimeout)
	defer timer.Stop()
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		e.Close()
		return nil, fmt.Errorf("start etcd: %w", err)
	case <-timer.C:
		e.Close()
		return nil, fmt.Errorf("etcd in %s not ready after %s", dir, cfg.ReadyTimeout)
	case <-ctx.Done():
		e.Close()
		return nil, ctx.Err()
	}
	if cfg.Member != nil && len(cfg.Member.Join) > 0 && (joined || e.Server.IsLearner()) {
		// A learner serves no client requests: the API server waits.
		if err := cfg.Member.promote(ctx, uint64(e.Server.MemberID()), cfg.ReadyTimeout, cfg.Logger); err != nil {
			e.Close()
			return nil, err
		}
		// Until this member has applied its promotion it still refuses
		// clients as a learner.
		for e.Server.IsLearner() {
			select {
			case <-timer.C:
				e.Close()
				return nil, fmt.Errorf("etcd in %s still a learner after %s", dir, cfg.ReadyTimeout)
			case <-ctx.Done():
				e.Close()
				return nil, ctx.Err()
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	if cfg.Member != nil {
		if err := cfg.Member.advertise(ctx, e.Server, cfg.Logger); err != nil {
			e.Close()
			return nil, err
		}
	}
	if rejoin {
		// Joined again: the next start resumes this member.
		if err := os.Remove(filepath.Join(dir, rejoinFile)); err != nil {
			e.Close()
			return nil, fmt.Errorf("remove etcd rejoin file: %w", err)
		}
	}
	s := &Server{
		etcd: e, endpoint: clientURL.String(), closing: closing, stopGuard: func() {}, guardDone: make(chan struct{}),
		dir: dir, member: cfg.Member, logger: cfg.Logger,
	}
	if cfg.ReserveBytes < 0 {
		close(s.guardDone)
		return s, nil
	}
	gctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.stopGuard = cancel
	g := &diskGuard{server: e.Server, dir: dir, reserve: cfg.ReserveBytes, logger: cfg.Logger}
	go func() {
		defer close(s.guardDone)
		g.run(gctx, cfg.GuardPeriod)
	}()
	return s, nil
}

// Endpoint is the URL clients connect to (unix:///…/etcd.sock).
func (s *Server) Endpoint() string { return s.endpoint }

// Err reports a fatal error of the running server.
func (s *Server) Err() <-chan error { return s.etcd.Err() }

// Close stops etcd gracefully: in-flight requests finish, the WAL is
// synced and the socket removed. A second call does nothing.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		s.stopGuard()
		<-s.guardDone
		s.closing.Store(true)
		s.etcd.Close()
	})
}
