package etcd

import (
	"context"
	"fmt"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/server/v3/etcdserver"
	"go.etcd.io/etcd/server/v3/storage"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

// diskGuard raises etcd's NOSPACE alarm while the data directory's
// filesystem has less than reserve bytes free, and disarms the alarm it
// raised once there is reserve + reserve/4 free again.
type diskGuard struct {
	server  *etcdserver.EtcdServer
	dir     string
	reserve int64
	logger  *zap.Logger
	// raised is set while an alarm the guard raised is active.
	raised bool
}

func (g *diskGuard) run(ctx context.Context, period time.Duration) {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		g.check(ctx)
		select {
		case <-ctx.Done():
			return
		case <-g.server.StopNotify():
			return
		case <-t.C:
		}
	}
}

// check looks at the free space once and raises or disarms the alarm.
func (g *diskGuard) check(ctx context.Context) {
	free, err := freeBytes(g.dir)
	if err != nil {
		g.logger.Warn("cannot read free disk space", zap.String("dir", g.dir), zap.Error(err))
		return
	}
	active := g.noSpaceAlarm()
	switch {
	case free < g.reserve && !active:
		g.logger.Error("free disk space below the reserve: refusing writes (NOSPACE alarm) until space is freed",
			zap.String("dir", g.dir), zap.Int64("free-bytes", free), zap.Int64("reserve-bytes", g.reserve))
		if err := g.alarm(ctx, pb.AlarmRequest_ACTIVATE); err != nil {
			g.logger.Warn("cannot raise the NOSPACE alarm", zap.Error(err))
			return
		}
		g.raised = true
	case active && free >= g.reserve+g.reserve/4 && g.mayDisarm():
		g.logger.Warn("free disk space back above the reserve: accepting writes again (NOSPACE alarm disarmed)",
			zap.String("dir", g.dir), zap.Int64("free-bytes", free), zap.Int64("reserve-bytes", g.reserve))
		if err := g.alarm(ctx, pb.AlarmRequest_DEACTIVATE); err != nil {
			g.logger.Warn("cannot disarm the NOSPACE alarm", zap.Error(err))
			return
		}
		g.raised = false
	case !active:
		g.raised = false
	}
}

// mayDisarm reports whether the active NOSPACE alarm is the guard's: one
// it raised, or, after a restart, one the database's size does not
// explain (etcd raises its own when the database reaches its quota, and
// that one needs a compaction and defragmentation first).
func (g *diskGuard) mayDisarm() bool {
	if g.raised {
		return true
	}
	quota := g.server.Cfg.QuotaBackendBytes
	if quota <= 0 {
		quota = storage.DefaultQuotaBytes
	}
	return g.server.Backend().Size() < quota
}

func (g *diskGuard) noSpaceAlarm() bool {
	for _, a := range g.server.Alarms() {
		if a.Alarm == pb.AlarmType_NOSPACE {
			return true
		}
	}
	return false
}

func (g *diskGuard) alarm(ctx context.Context, action pb.AlarmRequest_AlarmAction) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err := g.server.Alarm(ctx, &pb.AlarmRequest{Action: action, MemberID: uint64(g.server.MemberID()), Alarm: pb.AlarmType_NOSPACE})
	return err
}

// freeBytes is what an unprivileged writer may still use on dir's
// filesystem (f_bavail).
func freeBytes(dir string) (int64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, fmt.Errorf("statfs %s: %w", dir, err)
	}
	return int64(st.Bavail) * st.Bsize, nil
}
