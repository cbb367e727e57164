// Package app holds pocketkube's commands: one NewXCommand per subcommand,
// each binding flags into an options struct and calling into internal/.
package app

import (
	"flag"

	"github.com/spf13/cobra"

	"github.com/pocketkube/pocketkube/internal/logs"
)

// NewRootCommand returns the pocketkube command. klogFlags are klog's flags
// (klog.InitFlags); the root command exposes their -v to every subcommand.
func NewRootCommand(klogFlags *flag.FlagSet) *cobra.Command {
	cmd := &cobra.Command{
		Use:           "pocketkube",
		Short:         "A whole Kubernetes node in one binary",
		SilenceUsage:  true,
		SilenceErrors: false,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return logs.SetupKlog(klogFlags, cmd.ErrOrStderr(), logComponents)
		},
	}
	cmd.PersistentFlags().AddGoFlag(klogFlags.Lookup("v"))
	cmd.AddCommand(
		NewUpCommand(),
		NewAgentCommand(),
		NewKubeconfigCommand(),
		NewProxyCommand(),
		NewKubectlCommand(),
		NewVersionCommand(),
		NewImagesCommand(),
		NewShimCommand(),
		NewEtcdCommand(),
	)
	return cmd
}
