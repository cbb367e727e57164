package app

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/pocketkube/pocketkube/internal/controlplane/etcd"
)

// NewEtcdCommand returns `pocketkube etcd`: the membership of the
// embedded etcd of a cluster of servers, through the local member's
// socket in DATA_DIR/etcd (root only, as the data dir).
func NewEtcdCommand() *cobra.Command {
	var dataDir string
	cmd := &cobra.Command{
		Use:   "etcd",
		Short: "List or remove the etcd members of a cluster of servers",
		Args:  cobra.NoArgs,
	}
	cmd.PersistentFlags().StringVar(&dataDir, "data-dir", DefaultDataDir, "Directory of a running server of the cluster.")
	client := func() (*etcd.Client, error) {
		dir := filepath.Join(dataDir, "etcd")
		if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
			if _, err := os.Stat(dataDir); err == nil {
				return nil, fmt.Errorf("%s has no embedded etcd (%s): a server on --etcd-servers has no member of its own; see that etcd's etcdctl", dataDir, dir)
			}
			return nil, fmt.Errorf("no server data directory %s", dataDir)
		}
		return etcd.NewLocalClient(dir)
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "member-list",
		Short: "List the etcd members: name, ID, peer URL, whether a learner",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := client()
			if err != nil {
				return err
			}
			defer c.Close()
			ctx, cancel := context.WithTimeout(cmd.Context(), 10*time.Second)
			defer cancel()
			members, err := c.Members(ctx)
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "NAME\tID\tPEER URL\tLEARNER")
			for _, m := range members {
				fmt.Fprintf(w, "%s\t%x\t%v\t%t\n", m.Name, m.ID, m.PeerURLs, m.IsLearner)
			}
			return w.Flush()
		},
	}, &cobra.Command{
		Use:   "remove-member NAME",
		Short: "Remove the etcd member of a server gone for good (a clean stop of a server removes its own); the last member is refused",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := client()
			if err != nil {
				return err
			}
			defer c.Close()
			ctx, cancel := context.WithTimeout(cmd.Context(), 30*time.Second)
			defer cancel()
			if err := c.RemoveMember(ctx, args[0]); err != nil {
				if errors.Is(err, context.DeadlineExceeded) {
					return fmt.Errorf("%w (is the server of %s running?)", err, dataDir)
				}
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "removed etcd member %s\n", args[0])
			return nil
		},
	})
	return cmd
}
