// Package shim is the per-container supervisor of the node runtime, a
// conmon-like process: it runs `runc create` for one bundle, becomes the
// child subreaper of the container's init, copies the container's output to a
// CRI-format log (rotating it), serves the attach socket and, when the init
// exits, writes the exit record that package runtime reads.
//
// # Basics
//
// The runtime writes a [Config] to <bundle>/shim.json and starts the shim
// binary (cmd/pocketkube-shim, embedded in pocketkube by `make build`, or
// `pocketkube runtime-shim` as a fallback) with `--bundle DIR` and a pipe on
// fd 3. [Run] reports "ok" on that pipe once `runc create` succeeded, or
// runc's error text, then supervises the container until its init exits and
// writes an [ExitStatus] to Config.ExitFile. [Main] is the whole main of the
// shim binary. A shim started with `--standby --bundle ___…` ([Standby])
// does the same for a bundle it is given later, on fd 4, and then writes
// that bundle over the placeholder in its own command line.
//
// This package and the runtime's client side share only the types and the
// wire formats defined here: [Config], [ExitStatus], and the attach framing
// ([WriteFrame], [ReadFrame]).
//
// # Caveats
//
//   - The package imports nothing beyond the standard library and
//     golang.org/x/sys, so that the shim binary stays a few MB and starts in
//     milliseconds; one shim runs per container. A test enforces this.
//   - Config, ExitStatus and the framing are on-disk and on-socket formats
//     shared with shims of earlier pocketkube versions that may still be
//     running after an upgrade: change them only compatibly.
//   - The shim logs nothing but its fatal error (to stderr, which the runtime
//     points at <bundle>/shim.log).
package shim
