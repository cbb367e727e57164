// Command kubectl is upstream's kubectl (k8s.io/kubernetes cmd/kubectl)
// built from its Go module at the version pinned in go.mod, so the e2e
// tests drive a real kubectl of an older minor version without the Google
// Cloud CLI. scripts/install-deps.sh builds it with the version stamped in.
package main

import (
	"k8s.io/component-base/cli"
	"k8s.io/kubectl/pkg/cmd"
	"k8s.io/kubectl/pkg/cmd/util"

	// Registers the client auth plugins (oidc) as upstream's kubectl does.
	_ "k8s.io/client-go/plugin/pkg/client/auth"
)

func main() {
	command := cmd.NewDefaultKubectlCommand()
	if err := cli.RunNoErrOutput(command); err != nil {
		util.CheckErr(err)
	}
}
