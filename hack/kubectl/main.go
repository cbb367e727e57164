//go:build kubectl

// Command kubectl is upstream's kubectl (k8s.io/kubernetes cmd/kubectl)
// built from its Go module at a version pinned in v1.*/go.mod, so the e2e
// tests drive a real kubectl of an older minor version without the Google
// Cloud CLI. build.sh builds it once for each of those modules, with the
// version stamped in; the build tag keeps it out of pocketkube's own module.
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
