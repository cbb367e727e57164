// Package version reports which pocketkube this is and which Kubernetes it
// embeds.
//
// The build sets both with -ldflags -X (see the Makefile): this package's
// version, and k8s.io/component-base/version's variables, which the embedded
// API server serves at /version. A build without them reports "dev" and
// falls back to the k8s.io/kubernetes module version for Kubernetes.
package version

import (
	"runtime/debug"
	"strings"

	k8sversion "k8s.io/component-base/version"
)

// version is set at build time: -X github.com/pocketkube/pocketkube/internal/version.version=v0.1.0
var version = "dev"

// Pocketkube returns pocketkube's own version.
func Pocketkube() string { return version }

// Kubernetes returns the version of the embedded Kubernetes, as its API
// server reports it at /version.
func Kubernetes() string {
	v := k8sversion.Get().GitVersion
	if !strings.HasPrefix(v, "v0.0.0") {
		return v
	}
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, dep := range info.Deps {
			if dep.Path == "k8s.io/kubernetes" {
				return dep.Version
			}
		}
	}
	return v
}
