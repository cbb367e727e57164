// Package e2e tests the real pocketkube binary with the real kubectl, curl
// and client-go. The tests carry the e2e build tag:
//
//	POCKETKUBE_BIN=$PWD/bin/pocketkube go test -tags e2e ./test/e2e/...
//
// TestMain builds the binary when POCKETKUBE_BIN is unset, makes an address
// pods can reach (framework.ListenAddress), starts one shared cluster in a
// temporary directory on free ports of it, and stops it after the tests.
// Tests that need a cluster of their own (restart, stop, external etcd)
// start one with StartCluster. The cluster helpers (test/framework) are
// shared with the benchmarks in bench/.
package e2e
