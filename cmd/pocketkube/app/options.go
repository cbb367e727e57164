package app

import (
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// options are a command's flags and what it does with them.
type options interface {
	// AddFlags binds the options to fs.
	AddFlags(fs *pflag.FlagSet)
	// Validate checks the options and the command's arguments.
	Validate(args []string) error
	// Run runs the command.
	Run(cmd *cobra.Command, args []string) error
}

// withOptions binds o's flags to cmd and makes cmd validate o, then run it.
func withOptions(cmd *cobra.Command, o options) *cobra.Command {
	o.AddFlags(cmd.Flags())
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := o.Validate(args); err != nil {
			return err
		}
		return o.Run(cmd, args)
	}
	return cmd
}
