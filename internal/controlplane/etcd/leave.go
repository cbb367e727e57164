package etcd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/types"
	etcderrors "go.etcd.io/etcd/server/v3/etcdserver/errors"
	"go.uber.org/zap"

	"github.com/pocketkube/pocketkube/internal/atomicfile"
)

// rejoinFile, in Config.DataDir, marks a member that left its cluster
// (Server.Leave): it lists the client URLs of the members that stayed, one
// a line, for the next Start to join them through.
const rejoinFile = "rejoin"

// ErrNotMember is returned by Leave for an etcd that is not one member of
// several (Config.Member unset).
var ErrNotMember = errors.New("etcd is not a member of a cluster of servers")

// ErrLeft is returned by Start for a data directory whose member left its
// cluster (Server.Leave), started without Config.Member: it can only join
// the cluster again, never serve its old data alone.
var ErrLeft = errors.New("this etcd member left its cluster of servers")

// Leave removes this member from its cluster through etcd's membership
// API, as a server that stops for good does (kubeadm reset removes its
// member the same way), so that the members left count only each other
// in their quorum. A leader first hands its leadership to another voting
// member, so that the others need no election.
//
// Leave refuses, and the member stays, when it is the only voting member
// (ErrLastMember), and when etcd refuses because the members left would
// lack a quorum of connected members (a member is down or has just
// restarted): etcd's strict reconfiguration check, which Leave retries
// until ctx is done. Once Leave has returned nil, close the server: etcd
// stops the removed member on its own. The next Start on the same data
// directory moves the old member's data aside (member-data.left-TIME)
// and joins the members that stayed as a new learner.
func (s *Server) Leave(ctx context.Context) error {
	if s.member == nil {
		return ErrNotMember
	}
	srv := s.etcd.Server
	self := srv.MemberID()
	select {
	case <-srv.StopNotify():
		return errors.New("leave: etcd has stopped")
	default:
	}
	if srv.Cluster().Member(self) == nil {
		// Removed already (`pocketkube etcd remove-member`).
		return fmt.Errorf("leave: %w", ErrNoMember)
	}
	var voters []uint64
	for _, m := range srv.Cluster().Members() {
		// A member never started has no name; it cannot take the lead.
		if !m.IsLearner && m.ID != self && m.Name != "" {
			voters = append(voters, uint64(m.ID))
		}
	}
	if len(voters) == 0 {
		return fmt.Errorf("leave: %w", ErrLastMember)
	}
	if srv.Leader() == self {
		moved := false
		for _, to := range voters {
			mctx, cancel := context.WithTimeout(ctx, time.Second)
			err := srv.MoveLeader(mctx, uint64(self), to)
			cancel()
			if err == nil {
				moved = true
				break
			}
			s.logger.Info("moving the etcd leadership before leaving failed", zap.String("to", strconv.FormatUint(to, 16)), zap.Error(err))
		}
		if !moved {
			// Removed as the leader, it still leads until it stops;
			// the others elect a new one after their election timeout.
			s.logger.Info("leaving as the etcd leader: the other members elect a new one")
		}
	}
	for {
		_, err := srv.RemoveMember(ctx, uint64(self))
		// RemoveMember may fail once its removal is applied (this member
		// stops itself then): what counts is whether it is gone.
		refused := errors.Is(err, etcderrors.ErrUnhealthy) || errors.Is(err, etcderrors.ErrNotEnoughStartedMembers)
		if err == nil || !refused && s.removed(self) {
			var urls []string
			for _, m := range srv.Cluster().Members() {
				if m.ID != self {
					urls = append(urls, m.ClientURLs...)
				}
			}
			slices.Sort(urls)
			if err := atomicfile.Write(filepath.Join(s.dir, rejoinFile), []byte(strings.Join(urls, "\n")+"\n"), 0o600); err != nil {
				return fmt.Errorf("left the etcd cluster, but %w", err)
			}
			s.logger.Info("removed this etcd member from its cluster", zap.String("name", s.member.Name), zap.Strings("remaining-client-urls", urls))
			return nil
		}
		// Refused while a member that would stay has not been connected
		// for a while (one just restarted or is down): it may pass soon.
		if !errors.Is(err, etcderrors.ErrUnhealthy) || ctx.Err() != nil {
			return fmt.Errorf("remove etcd member %s: %w", s.member.Name, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("remove etcd member %s: %w", s.member.Name, err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// removed reports whether this member's removal has been applied here,
// waiting up to a second for a removal that was proposed.
func (s *Server) removed(self types.ID) bool {
	for range 10 {
		if s.etcd.Server.Cluster().Member(self) == nil {
			return true
		}
		time.Sleep(100 * time.Millisecond)
	}
	return false
}

// wasRemoved reports whether the members at m.Join, reachable, no longer
// count this member (its peer URL): removed while it ran (`pocketkube
// etcd remove-member`) or stopped before it wrote the rejoin file. Its
// data then cannot start: the others refuse it.
func (m *Member) wasRemoved(ctx context.Context, logger *zap.Logger) bool {
	cli, err := m.client(m.Join, logger)
	if err != nil {
		return false
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	list, err := cli.MemberList(ctx)
	if err != nil {
		logger.Info("could not list the etcd members to resume this one; resuming it", zap.Strings("join", m.Join), zap.Error(err))
		return false
	}
	peer := m.peerURL()
	for _, mem := range list.Members {
		if slices.Contains(mem.PeerURLs, peer.String()) {
			return false
		}
	}
	return true
}

// moveAside renames a member's data directory so that a new member can
// join in its place, keeping the old data for the administrator.
func moveAside(memberDir string, logger *zap.Logger) error {
	aside := memberDir + ".left-" + time.Now().UTC().Format("20060102T150405Z")
	if err := os.Rename(memberDir, aside); err != nil {
		return fmt.Errorf("move the data of the etcd member that left aside: %w", err)
	}
	logger.Info("moved the data of the etcd member that left aside", zap.String("to", aside))
	return nil
}

// prepareRejoin is Start's part for a data directory whose member left
// (Leave): it moves the old member's data aside and adds the client URLs
// of the members that stayed to m.Join, so that configure joins them as a
// new learner. It returns whether dir had left.
func prepareRejoin(dir, memberDir string, m *Member, logger *zap.Logger) (bool, error) {
	data, err := os.ReadFile(filepath.Join(dir, rejoinFile))
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read etcd rejoin file: %w", err)
	}
	if m == nil {
		return true, fmt.Errorf("%w (%s): start it as a server of several to join again", ErrLeft, filepath.Join(dir, rejoinFile))
	}
	if _, err := os.Stat(memberDir); err == nil {
		if err := moveAside(memberDir, logger); err != nil {
			return true, err
		}
	}
	for _, u := range strings.Fields(string(data)) {
		if !slices.Contains(m.Join, u) {
			m.Join = append(m.Join, u)
		}
	}
	if len(m.Join) == 0 {
		return true, fmt.Errorf("%w, and %s names no member to join", ErrLeft, filepath.Join(dir, rejoinFile))
	}
	return true, nil
}
