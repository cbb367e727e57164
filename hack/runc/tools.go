//go:build tools

// Package runc pins the runc that `make build` builds into bin/runc, beside
// bin/pocketkube, which prefers it over $PATH's (package
// internal/node/runtime): runc 1.4 does not copy its own binary into a
// memfd on every `runc init`, as Debian 12's 1.1.5 does, and takes less
// time and CPU per container (docs/BENCHMARKS.md, "Pod start: where the
// 88 ms go"). Built with cgo and the seccomp tag against libseccomp-dev,
// as Debian's runc is; scripts/install-deps.sh installs it.
package runc

import _ "github.com/opencontainers/runc"
