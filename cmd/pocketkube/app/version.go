package app

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/pocketkube/pocketkube/internal/version"
)

// NewVersionCommand returns `pocketkube version`.
func NewVersionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print pocketkube's version and the Kubernetes version it embeds",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintf(cmd.OutOrStdout(), "pocketkube %s\nKubernetes %s\n", version.Pocketkube(), version.Kubernetes())
			return err
		},
	}
}
