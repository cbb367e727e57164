// Package cmdline parses a command line into an upstream component's flags,
// for the adapters in internal/controlplane, which each know one component's
// command line.
package cmdline

import (
	"fmt"

	"github.com/spf13/pflag"
	cliflag "k8s.io/component-base/cli/flag"
)

// Parse parses args into the flag sets of component's options, as the
// component's own command does: all of them in one flag set named after it.
func Parse(component string, sets cliflag.NamedFlagSets, args []string) error {
	fs := pflag.NewFlagSet(component, pflag.ContinueOnError)
	for _, f := range sets.FlagSets {
		fs.AddFlagSet(f)
	}
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("parse %s flags: %w", component, err)
	}
	return nil
}
