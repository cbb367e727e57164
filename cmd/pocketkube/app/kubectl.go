package app

import (
	"errors"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/component-base/cli"
	kubectlcmd "k8s.io/kubectl/pkg/cmd"
	"k8s.io/kubectl/pkg/cmd/plugin"
	cmdutil "k8s.io/kubectl/pkg/cmd/util"
)

// NewKubectlCommand returns `pocketkube kubectl`: upstream's kubectl at the
// version pocketkube embeds, with all its commands, flags, plugins and
// messages, as k3s ships it. Without --kubeconfig, $KUBECONFIG or
// ~/.kube/config it uses the cluster's admin kubeconfig in the default data
// directory, so `pocketkube kubectl get pods` works on the node as is.
func NewKubectlCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "kubectl [kubectl arguments]",
		Short: "Run kubectl (the version pocketkube embeds)",
		// kubectl parses its own flags, -v and --help included.
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			// main traps Ctrl-C to stop `up` gracefully; kubectl expects
			// it to end the process (`get -w`, `logs -f`), and handles
			// it itself where it must clean up (port-forward, attach).
			signal.Reset(os.Interrupt, syscall.SIGTERM)
			streams := genericiooptions.IOStreams{In: cmd.InOrStdin(), Out: cmd.OutOrStdout(), ErrOut: cmd.ErrOrStderr()}
			configFlags := genericclioptions.NewConfigFlags(true).WithDeprecatedPasswordFlag().
				WithDiscoveryBurst(300).WithDiscoveryQPS(50.0).WithWarningPrinter(streams)
			kubeconfig := fallbackKubeconfig(os.Getenv(clientcmd.RecommendedConfigPathEnvVar), clientcmd.RecommendedHomeFile, DefaultDataDir)
			if kubeconfig != "" {
				configFlags.KubeConfig = &kubeconfig
			}
			kubectl := kubectlcmd.NewDefaultKubectlCommandWithArgs(kubectlcmd.KubectlOptions{
				PluginHandler: kubectlcmd.NewDefaultPluginHandler(plugin.ValidPluginFilenamePrefixes),
				Arguments:     append([]string{"kubectl"}, args...),
				ConfigFlags:   configFlags,
				IOStreams:     streams,
			})
			kubectl.SetArgs(args)
			kubectl.SetIn(streams.In)
			kubectl.SetOut(streams.Out)
			kubectl.SetErr(streams.ErrOut)
			// As upstream's cmd/kubectl: kubectl prints its own errors and
			// exits with its own codes.
			if err := cli.RunNoErrOutput(kubectl); err != nil {
				cmdutil.CheckErr(err)
			}
			return nil
		},
	}
}

// fallbackKubeconfig is dataDir's admin kubeconfig when kubectl would find
// no other (kubeconfigEnv, the value of $KUBECONFIG, is empty and homeFile,
// ~/.kube/config, does not exist) and it exists, as k3s does with its own;
// otherwise "", kubectl's default.
func fallbackKubeconfig(kubeconfigEnv, homeFile, dataDir string) string {
	if kubeconfigEnv != "" {
		return ""
	}
	if _, err := os.Stat(homeFile); !errors.Is(err, fs.ErrNotExist) {
		return ""
	}
	path := filepath.Join(dataDir, "kubeconfig")
	if _, err := os.Stat(path); err != nil {
		return ""
	}
	return path
}
