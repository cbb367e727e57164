// Package bench holds pocketkube's system benchmarks: `go test -bench`
// functions (build tag bench) that run the real binary, as the end-to-end
// tests do, through test/framework, and report their figures with
// b.ReportMetric so that runs compare with benchstat:
//
//	make build
//	flock /tmp/pk-e2e.lock env POCKETKUBE_BIN=$PWD/bin/pocketkube \
//	  go test -tags bench -run '^$' -bench . -benchtime 1x ./bench/
//
// `make bench` runs each benchmark with the repetitions its figures are
// quoted with in docs/BENCHMARKS.md and writes bench/results/.
//
// Each benchmark is one experiment; an iteration is one sample (one pod
// start, one label change, one DNS query, one Service change, one cluster
// start), so -benchtime Nx sets the sample count, and the percentiles are
// over the samples of the run. The ns/op figure, the loop's time per
// iteration, is suppressed: it mixes the measured interval with the setup
// and cleanup around it.
//
// BenchmarkSoak is not one of them: it runs only when SOAK_MINUTES (or
// -soak-minutes) is set, for that long (`make soak`, 30 minutes by
// default), in a cluster in a network namespace of its own that needs no
// lock, and writes its samples as CSV.
//
// The peer lane (BenchmarkPeerPodStart, BenchmarkPeerPodMemory; issue 16)
// runs the pod benchmarks on kubelet + containerd + runc under the same
// control plane (`pocketkube up --disable-agent`), with the same image and
// CNI bridge; hack/peers/build.sh builds kubelet and containerd into
// PEERS_DIR (/var/cache/pocketkube/peers) first, and `make bench` prints
// pocketkube / peer for the figures both lanes have
// (bench/peer-ratios.awk).
//
// Needs root, runc, the CNI plugins, nftables, busybox-static, kubectl
// (test/framework.KubectlDir), curl; BenchmarkStartupBare also etcd and
// a kube-apiserver binary (KUBE_APISERVER, built with `go build
// k8s.io/kubernetes/cmd/kube-apiserver` when unset). Clusters with a node
// agent cannot run two at once on one machine: hold /tmp/pk-e2e.lock.
package bench
