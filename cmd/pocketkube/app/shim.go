package app

import (
	"errors"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/pocketkube/pocketkube/internal/node/runtime/shim"
)

// shimOptions are the flags of `pocketkube runtime-shim`.
type shimOptions struct {
	Bundle string
}

// AddFlags binds the options to fs.
func (o *shimOptions) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.Bundle, "bundle", "", "container bundle directory written by the runtime")
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
		Use:          "runtime-shim --bundle DIR",
		Short:        "Supervise one container (started by the node runtime)",
		Hidden:       true,
		SilenceUsage: true,
		Args:         cobra.NoArgs,
	}, &shimOptions{})
}

// Run supervises the container of the bundle (shim.Run).
func (o *shimOptions) Run(cmd *cobra.Command, _ []string) error {
	return shim.Run(cmd.Context(), o.Bundle)
}
