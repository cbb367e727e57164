package app

import (
	"os"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/kubectl/pkg/cmd/proxy"
	cmdutil "k8s.io/kubectl/pkg/cmd/util"
)

// NewProxyCommand returns `pocketkube proxy`: kubectl's own proxy command,
// with its flags, defaults, filters and messages, and kubectl's connection
// flags (--kubeconfig, --context, --server, --token, …). With no kubeconfig
// inside a pod it uses the pod's service account, as kubectl does.
func NewProxyCommand() *cobra.Command {
	configFlags := genericclioptions.NewConfigFlags(true).WithDeprecatedPasswordFlag().WithDiscoveryBurst(300).WithDiscoveryQPS(50.0)
	f := cmdutil.NewFactory(cmdutil.NewMatchVersionFlags(configFlags))
	cmd := proxy.NewCmdProxy(f, genericiooptions.IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr})
	configFlags.AddFlags(cmd.Flags())
	return cmd
}
