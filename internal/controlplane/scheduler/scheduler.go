// Package scheduler runs upstream kube-scheduler in this process with its
// default profile.
//
// It is the only code that knows kube-scheduler's flags. Run parses them
// into upstream's options and calls upstream's Setup and Run, never the
// cobra command, which would install a second signal handler.
//
// Caveats: once per process. The secure serving port (10259) is off, for the
// reason given in package controllermanager.
package scheduler

import (
	"context"
	"errors"
	"fmt"

	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/kubernetes/cmd/kube-scheduler/app"
	"k8s.io/kubernetes/cmd/kube-scheduler/app/options"

	"github.com/pocketkube/pocketkube/internal/controlplane/cmdline"
)

// Config is what pocketkube decides about the scheduler.
type Config struct {
	// Kubeconfig authenticates it as system:kube-scheduler. Required.
	Kubeconfig string
	// LeaderElect schedules only while this scheduler holds the lease
	// kube-system/kube-scheduler, with upstream's leader election
	// settings, for several servers. Run then returns an error when the
	// lease is lost, as upstream exits, and releases it on a stop
	// (upstream's own callbacks would exit the whole process on both).
	LeaderElect bool
}

// Args returns kube-scheduler's command line for c.
func Args(c Config) []string {
	return []string{
		"--authentication-kubeconfig=" + c.Kubeconfig,
		"--authorization-kubeconfig=" + c.Kubeconfig,
		"--kubeconfig=" + c.Kubeconfig,
		fmt.Sprintf("--leader-elect=%t", c.LeaderElect),
		"--secure-port=0",
	}
}

// Options parses args into upstream's options, exactly as the kube-scheduler
// command would.
func Options(args []string) (*options.Options, error) {
	o := options.NewOptions()
	if err := cmdline.Parse("kube-scheduler", *o.Flags, args); err != nil {
		return nil, err
	}
	return o, nil
}

// Run schedules pods until ctx is cancelled.
func Run(ctx context.Context, c Config) error {
	if c.Kubeconfig == "" {
		return errors.New("scheduler: Kubeconfig is required")
	}
	o, err := Options(Args(c))
	if err != nil {
		return err
	}
	if err := o.ComponentGlobalsRegistry.Set(); err != nil {
		return fmt.Errorf("kube-scheduler feature gates: %w", err)
	}
	name, err := cache.NewInformerName("kube-scheduler")
	if err != nil {
		return fmt.Errorf("kube-scheduler: %w", err)
	}
	o.InformerName = name
	cc, sched, err := app.Setup(ctx, o)
	if err != nil {
		return fmt.Errorf("kube-scheduler setup: %w", err)
	}
	if cc.LeaderElection == nil {
		// Without leader election, upstream's Run reports its own
		// ordinary stop as an error ("finished without leader elect").
		if err := app.Run(ctx, cc, sched); err != nil && ctx.Err() == nil {
			return fmt.Errorf("kube-scheduler: %w", err)
		}
		return nil
	}
	// Upstream's election (its lease, identity and timing), with
	// callbacks of ours: upstream's call os.Exit on a stop and on a lost
	// lease, which would end every other part of this process.
	le := *cc.LeaderElection
	cc.LeaderElection = nil
	cc.ComponentConfig.LeaderElection.LeaderElect = false
	le.ReleaseOnCancel = true
	runErr := make(chan error, 1)
	le.Callbacks = leaderelection.LeaderCallbacks{
		OnStartedLeading: func(lctx context.Context) {
			runErr <- app.Run(lctx, cc, sched)
		},
		OnStoppedLeading: func() {},
	}
	elector, err := leaderelection.NewLeaderElector(le)
	if err != nil {
		return fmt.Errorf("kube-scheduler leader election: %w", err)
	}
	elector.Run(ctx)
	if ctx.Err() != nil {
		return nil
	}
	select {
	case err := <-runErr:
		if err != nil {
			return fmt.Errorf("kube-scheduler: %w", err)
		}
	default:
	}
	return errors.New("kube-scheduler: lost its leader lease")
}
