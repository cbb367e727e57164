// Package controllermanager runs upstream kube-controller-manager in this
// process, with upstream's default controllers plus the bootstrap-token ones
// kubeadm enables.
//
// It is the only code that knows kube-controller-manager's flags. Run parses
// them into upstream's options and calls upstream's Config and Run, never
// the cobra command, which would install a second signal handler.
//
// Caveats: once per process, like every upstream component. The secure
// serving port (10257) is off: two clusters on one machine would clash on it,
// and the API server's /metrics and /readyz are what users look at.
package controllermanager

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"k8s.io/kubernetes/cmd/kube-controller-manager/app"
	"k8s.io/kubernetes/cmd/kube-controller-manager/app/options"

	"github.com/pocketkube/pocketkube/internal/controlplane/cmdline"
	"github.com/pocketkube/pocketkube/internal/pki"
)

// KubeAPIQPS and KubeAPIBurst bound the controllers' requests to the API
// server (--kube-api-qps, --kube-api-burst): far above client-go's default
// of 5 a second, which throttles a burst of pods on one node.
const (
	KubeAPIQPS   = 200
	KubeAPIBurst = 300
)

// Config is what pocketkube decides about the controller manager.
type Config struct {
	// Kubeconfig authenticates it as system:kube-controller-manager.
	// Required.
	Kubeconfig string
	// PKI holds the cluster CA (to sign CSRs and to publish as
	// kube-root-ca.crt) and the service-account key. Required.
	PKI pki.Paths
	// ServiceClusterIPRange must equal the API server's. Required.
	ServiceClusterIPRange string
	// ClusterCIDR is where node pod CIDRs are allocated from. Required.
	ClusterCIDR string
	// NodeCIDRMaskSize is the prefix length of each node's pod CIDR.
	// Defaults to 24.
	NodeCIDRMaskSize int
	// FlexVolumeDir is where the attach-detach controller looks for
	// FlexVolume drivers (and creates the directory when it is missing).
	// Required: upstream's default is under /usr/libexec on the host.
	FlexVolumeDir string
	// LeaderElect runs the controllers only while this controller
	// manager holds the lease kube-system/kube-controller-manager, as
	// upstream's --leader-elect, for several servers. On a stop it
	// releases the lease (the feature gate
	// ControllerManagerReleaseLeaderElectionLockOnExit, without which
	// upstream exits the process), and Run returns when the lease is lost.
	LeaderElect bool
	// ExtraArgs are more kube-controller-manager flags, "name=value" or
	// "--name=value" (up's --kube-controller-manager-arg, as k3s's),
	// given after pocketkube's so that they override them: e.g.
	// node-monitor-grace-period for how long a silent node stays Ready.
	ExtraArgs []string
}

// Validate reports the first missing required field.
func (c Config) Validate() error {
	switch {
	case c.Kubeconfig == "":
		return errors.New("controllermanager: Kubeconfig is required")
	case c.PKI.CA == "":
		return errors.New("controllermanager: PKI is required")
	case c.ServiceClusterIPRange == "":
		return errors.New("controllermanager: ServiceClusterIPRange is required")
	case c.ClusterCIDR == "":
		return errors.New("controllermanager: ClusterCIDR is required")
	case c.FlexVolumeDir == "":
		return errors.New("controllermanager: FlexVolumeDir is required")
	}
	return nil
}

// Args returns kube-controller-manager's command line for c.
func Args(c Config) []string {
	mask := c.NodeCIDRMaskSize
	if mask == 0 {
		mask = 24
	}
	args := []string{
		"--allocate-node-cidrs=true",
		"--cluster-cidr=" + c.ClusterCIDR,
		"--cluster-name=pocketkube",
		"--cluster-signing-cert-file=" + c.PKI.CA,
		"--cluster-signing-key-file=" + c.PKI.CAKey,
		"--controllers=*,bootstrapsigner,tokencleaner",
		"--flex-volume-plugin-dir=" + c.FlexVolumeDir,
		// Upstream's client defaults (20 QPS, burst 30) throttle the
		// start: each of ~40 controllers creates its service account and
		// requests a token before any controller starts, which took 5.5 s
		// on 2 cores and held back the default service account (and so
		// every first pod). One machine's API server takes far more.
		fmt.Sprintf("--kube-api-burst=%d", KubeAPIBurst),
		fmt.Sprintf("--kube-api-qps=%d", KubeAPIQPS),
		"--kubeconfig=" + c.Kubeconfig,
		"--leader-elect=false",
		fmt.Sprintf("--node-cidr-mask-size=%d", mask),
		"--root-ca-file=" + c.PKI.CA,
		"--secure-port=0",
		"--service-account-private-key-file=" + c.PKI.ServiceAccountKey,
		"--service-cluster-ip-range=" + c.ServiceClusterIPRange,
		"--use-service-account-credentials=true",
	}
	if c.LeaderElect {
		for i, a := range args {
			if a == "--leader-elect=false" {
				args[i] = "--leader-elect=true"
			}
		}
		args = append(args, "--feature-gates=ControllerManagerReleaseLeaderElectionLockOnExit=true")
	}
	for _, a := range c.ExtraArgs {
		args = append(args, "--"+strings.TrimPrefix(a, "--"))
	}
	return args
}

// Options parses args into upstream's options and the flag sets they came
// from, exactly as the kube-controller-manager command would.
func Options(args []string) (*options.KubeControllerManagerOptions, error) {
	s, err := options.NewKubeControllerManagerOptions()
	if err != nil {
		return nil, fmt.Errorf("kube-controller-manager options: %w", err)
	}
	named := s.Flags(app.KnownControllers(), app.ControllersDisabledByDefault(), app.ControllerAliases())
	s.ParsedFlags = &named
	if err := cmdline.Parse("kube-controller-manager", named, args); err != nil {
		return nil, err
	}
	return s, nil
}

// Run runs the controllers until ctx is cancelled.
func Run(ctx context.Context, c Config) error {
	if err := c.Validate(); err != nil {
		return err
	}
	s, err := Options(Args(c))
	if err != nil {
		return err
	}
	if err := s.ComponentGlobalsRegistry.Set(); err != nil {
		return fmt.Errorf("kube-controller-manager feature gates: %w", err)
	}
	cfg, err := s.Config(ctx, app.KnownControllers(), app.ControllersDisabledByDefault(), app.ControllerAliases())
	if err != nil {
		return fmt.Errorf("kube-controller-manager config: %w", err)
	}
	if err := app.Run(ctx, cfg.Complete()); err != nil {
		return fmt.Errorf("kube-controller-manager: %w", err)
	}
	return nil
}
