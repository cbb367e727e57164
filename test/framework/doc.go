// Package framework runs the real pocketkube binary for the end-to-end
// tests (test/e2e) and the system benchmarks (bench/): it prepares what
// their TestMain needs (env.go: the binary, the listen address), starts
// clusters (`pocketkube up` in a data directory, on free ports of an
// address pods can reach), imports the busybox image built from the host's
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
// Clusters run as root. A node uses names that are the same for every
// node, in the network namespace it runs in (the pod bridge pk0 and its
// iptables rules, kube-proxy's nftables table "kube-proxy", which a
// starting node deletes as a leftover, the kubelet port, cluster DNS on
// port 53 of the node address), and the pods' cgroups under
// --cgroup-root (default /, so /kubepods). Two clusters with a node agent
// can run at once on one machine when all but one of them run with
// ClusterConfig.NetNS: each then has its own network namespace, joined
// to the host by a veth pair on an unused /30 of 192.168.224.0/20, and
// its own cgroup root; the host reaches its API server, kubelet API and
// NodePorts at the namespace's address, but not its pod or Service
// addresses. Everything else a node keeps (pod network namespaces, CNI
// and IPAM state, runc state, mounts) is under its data directory.
// Runs still hold the shared lock (/tmp/pk-e2e.lock) around a run: the
// clusters on the host's own network (the tests' shared cluster) are one
// per machine. What the framework names itself (the listen link and
// address, namespaces, veth pairs, cgroup roots, the API server and
// kubelet ports) is unique per run, so runs that only start control
// planes or NetNS clusters do not break each other.
package framework
