// Command pocketkube-shim supervises one container for pocketkube's node
// runtime (see package shim). `make build` embeds it in pocketkube, which
// extracts and starts it: it is not meant to be run by hand. It imports only
// the standard library and golang.org/x/sys, so that each of the one-per-
// container shim processes costs about a megabyte and starts in milliseconds.
package main

import (
	"os"

	"github.com/pocketkube/pocketkube/internal/node/runtime/shim"
)

func main() {
	os.Exit(shim.Main(os.Args[1:]))
}
