package app

import (
	"errors"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/pocketkube/pocketkube/internal/node/runtime/shim"
)

// shimOptions are the flags of `pocketkube runtime-shim`.
type shimOptions struct {
	Bundle  string
	Standby bool
}

// AddFlags binds the options to fs.
func (o *shimOptions) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.Bundle, "bundle", "", "container bundle directory written by the runtime")
	fs.BoolVar(&o.Standby, shim.StandbyFlag, false, "wait for the bundle directory on fd 4 (started ahead of its container, --bundle holding a placeholder)")
}

// Validate checks the options.
func (o *shimOptions) Validate(_ []string) error {
	if o.Bundle == "" {
		return errors.New("--bundle is required")
	}
	return nil
}

// NewShimCommand returns the hidden `runtime-shim` command: the node runtime
// starts it for each container when pocketkube was built without the
// embedded pocketkube-shim binary, and containers started by earlier
// versions run under it (see package shim). It is not meant to be run by hand.
func NewShimCommand() *cobra.Command {
	return withOptions(&cobra.Command{
		Use:          "runtime-shim [--standby] --bundle DIR",
		Short:        "Supervise one container (started by the node runtime)",
		Hidden:       true,
		SilenceUsage: true,
		Args:         cobra.NoArgs,
	}, &shimOptions{})
}

// Run supervises the container of the bundle (shim.Run), or of the bundle
// it is given on fd 4 with --standby (shim.Standby).
func (o *shimOptions) Run(cmd *cobra.Command, _ []string) error {
	if o.Standby {
		return shim.Standby(cmd.Context())
	}
	return shim.Run(cmd.Context(), o.Bundle)
}
