// Command gen-seccomp writes the seccomp profile containerd v2.4.2 gives a
// RuntimeDefault container with the default capabilities, from
// containerd's own code, for TestSeccompRuntimeDefaultIsContainerds:
//
//	cd internal/node/runtime/testdata/gen-seccomp
//	go run . > ../seccomp-containerd-v2.4.2-$(go env GOARCH).json
//
// It is a module of its own, so that pocketkube does not depend on
// containerd.
package main

import (
	"context"
	"encoding/json"
	"log"
	"os"

	"github.com/containerd/containerd/v2/contrib/seccomp"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
)

func main() {
	ctx := namespaces.WithNamespace(context.Background(), "k8s.io")
	// containerd's default spec: its default capability set, which the
	// CRI plugin keeps for a container with no capabilities added or
	// dropped.
	spec, err := oci.GenerateSpec(ctx, nil, &containers.Container{ID: "gen-seccomp"})
	if err != nil {
		log.Fatal(err)
	}
	if err := seccomp.WithDefaultProfile()(ctx, nil, nil, spec); err != nil {
		log.Fatal(err)
	}
	b, err := json.MarshalIndent(spec.Linux.Seccomp, "", "  ")
	if err != nil {
		log.Fatal(err)
	}
	os.Stdout.Write(append(b, '\n'))
}
