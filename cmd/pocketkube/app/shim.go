package app

import (
	"errors"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/pocketkube/pocketkube/internal/node/runtime"
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
func (o *shimOptions) Validate() error {
	if o.Bundle == "" {
		return errors.New("--bundle is required")
	}
	return nil
}

// NewShimCommand returns the hidden `runtime-shim` command that the node
// runtime starts for each container (see runtime.RunShim). It is not meant
// to be run by hand.
func NewShimCommand() *cobra.Command {
	o := &shimOptions{}
	cmd := &cobra.Command{
		Use:          "runtime-shim --bundle DIR",
		Short:        "Supervise one container (started by the node runtime)",
		Hidden:       true,
		SilenceUsage: true,
		Args:         cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.Validate(); err != nil {
				return err
			}
			return runtime.RunShim(cmd.Context(), o.Bundle)
		},
	}
	o.AddFlags(cmd.Flags())
	return cmd
}
