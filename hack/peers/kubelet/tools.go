//go:build tools

package peers

// The program build.sh builds from the module cache, named here so that
// go.mod and go.sum track it.
import _ "k8s.io/kubernetes/cmd/kubelet"
