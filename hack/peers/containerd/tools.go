//go:build tools

package peers

// The programs build.sh builds from the module cache, named here so that
// go.mod and go.sum track them.
import (
	_ "github.com/containerd/containerd/v2/cmd/containerd"
	_ "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2"
	_ "github.com/containerd/containerd/v2/cmd/ctr"
)
