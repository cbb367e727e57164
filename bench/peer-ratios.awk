# Reads a `make bench` results file (bench/results/DATE-COMMIT.txt) and
# prints the pocketkube / peer table of the peer lane (bench/peer_test.go):
# each figure of pocketkube's benchmark beside the same figure of its Peer
# twin, mean over repeated runs (BENCH_COUNT), and their ratio. The node's
# idle RSS of pocketkube is its whole process idle (BenchmarkPodMemory)
# less the control plane alone (BenchmarkPeerPodMemory's
# controlplane-rss-MiB, the `pocketkube up --disable-agent` under the peer).
/^Benchmark/ {
	name = $1
	sub(/-[0-9]+$/, "", name)
	for (i = 3; i < NF; i += 2) {
		sum[name, $(i + 1)] += $i
		n[name, $(i + 1)]++
	}
}
function v(b, m) { return n[b, m] ? sum[b, m] / n[b, m] : "" }
function row(label, pk, peer) {
	ratio = (pk != "" && peer != "" && peer != 0) ? sprintf("**%.2f×**", pk / peer) : ""
	printf "| %s | %s | %s | %s |\n", label, pk == "" ? "" : sprintf("%.1f", pk), peer == "" ? "" : sprintf("%.1f", peer), ratio
}
END {
	print ""
	print "| figure | pocketkube | kubelet + containerd + runc | pocketkube / peer |"
	print "|---|---|---|---|"
	row("1 pod, bind → Running p50 (ms)", v("BenchmarkPodStart/pods=1", "bound-running-p50-ms"), v("BenchmarkPeerPodStart/pods=1", "bound-running-p50-ms"))
	row("1 pod, bind → Running p99 (ms)", v("BenchmarkPodStart/pods=1", "bound-running-p99-ms"), v("BenchmarkPeerPodStart/pods=1", "bound-running-p99-ms"))
	row("30 pods at once, all Running (ms)", v("BenchmarkPodStart/pods=30", "all-running-ms"), v("BenchmarkPeerPodStart/pods=30", "all-running-ms"))
	row("100 pods at once, all Running (ms)", v("BenchmarkPodStart/pods=100", "all-running-ms"), v("BenchmarkPeerPodStart/pods=100", "all-running-ms"))
	row("memory per running pod (MiB)", v("BenchmarkPodMemory", "MiB/pod"), v("BenchmarkPeerPodMemory", "MiB/pod"))
	row("memory per running pod, shims by PSS (MiB)", v("BenchmarkPodMemory", "pss-MiB/pod"), v("BenchmarkPeerPodMemory", "pss-MiB/pod"))
	row("memory per running pod, by PSS, 40 s after (MiB)", v("BenchmarkPodMemory", "steady-pss-MiB/pod"), v("BenchmarkPeerPodMemory", "steady-pss-MiB/pod"))
	idle = v("BenchmarkPodMemory", "idle-rss-MiB")
	cp = v("BenchmarkPeerPodMemory", "controlplane-rss-MiB")
	row("node idle RSS, no pods (MiB)", (idle != "" && cp != "") ? idle - cp : "", v("BenchmarkPeerPodMemory", "idle-rss-MiB"))
}
