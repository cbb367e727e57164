package etcd

import (
	"context"
	"fmt"
	"slices"
	"time"

	"go.etcd.io/etcd/server/v3/etcdserver"
	"go.etcd.io/etcd/server/v3/etcdserver/api/membership"
	"go.uber.org/zap"
)

// advertise makes the member's peer URL in the cluster the one it
// serves at, through etcd's membership API (etcdctl member update): the
// data directory of a plain `up`, whose one member advertises a peer URL
// nobody dials (http://127.0.0.1:0), started as the first of several
// servers (`up --cluster-init`) keeps its data and its member, at the
// server's address. Only a member alone is updated: one of several whose
// address changed is not reached by the others at the old one, and
// etcd's documented way (update first, then restart at the new address)
// is the administrator's.
func (m *Member) advertise(ctx context.Context, srv *etcdserver.EtcdServer, logger *zap.Logger) error {
	self := srv.Cluster().Member(srv.MemberID())
	peer := m.peerURL()
	want := peer.String()
	if self == nil || slices.Equal(self.PeerURLs, []string{want}) || len(srv.Cluster().Members()) != 1 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	upd := membership.Member{ID: self.ID, RaftAttributes: membership.RaftAttributes{PeerURLs: []string{want}, IsLearner: self.IsLearner}}
	if _, err := srv.UpdateMember(ctx, upd); err != nil {
		return fmt.Errorf("update the peer URL of etcd member %s to %s: %w", m.Name, want, err)
	}
	logger.Info("updated the etcd member's peer URL", zap.String("name", m.Name), zap.Strings("from", self.PeerURLs), zap.String("to", want))
	return nil
}
