// Package framework runs the real pocketkube binary for the end-to-end
// tests (test/e2e) and the system benchmarks (bench/): it starts clusters
// (`pocketkube up` in a data directory, on free ports of an address pods
// can reach), imports the busybox image built from the host's
// busybox-static, makes namespaces and creates, waits for and reads pods
// (pods.go, wait.go), drives kubectl and terminals (exec.go, kubectl.go,
// pty.go), serves a private registry (registry.go) and builds image root
// filesystems (image.go, rootfs.go).
//
// It is a library for tests: helpers that take a testing.TB fail the test
// or benchmark (t.Fatal) instead of returning an error, and clean up what
// they made with t.Cleanup.
//
// # Caveats
//
// Clusters run as root and use host-wide resources the product names
// itself (the node's bridge, kube-proxy's nftables table, cgroups): two
// clusters with a node agent must not run at once on one machine, so
// callers hold the shared lock (/tmp/pk-e2e.lock) around a run. What the
// framework names itself (the listen link and address, the API server and
// kubelet ports) is unique per run, so runs that only start control
// planes do not break each other.
package framework
