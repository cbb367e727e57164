#!/usr/bin/env bash
# Measures cluster DNS query latency from a pod against a real `pocketkube
# up` on this machine: bench/dns, a static Go DNS client in a busybox image,
# runs in a pod and sends queries one after the other to the kube-dns
# Service (10.96.0.10, through kube-proxy's nftables rules to the node's
# DNS server), each on a new UDP socket as a libc resolver does:
#   - A kubernetes.default.svc.cluster.local (NOERROR), N queries;
#   - A www.example.com.default.svc.cluster.local (NXDOMAIN), N/5 queries:
#     the first name a pod's resolver tries for www.example.com (ndots:5).
# p50/p90/p99/max in ms, and failed queries.
# Usage: bench/dns.sh [N]   (default 1000)
#   PK=path/to/pocketkube (default bin/pocketkube, copied so a rebuild
#   meanwhile cannot change it), KEEP_LOG=FILE to keep the cluster's log.
# Needs: root, bin/pocketkube (make build), runc, CNI plugins, nft,
# busybox-static. Only one cluster can run on the machine: the cluster part
# holds /tmp/cluster.lock.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
N=${1:-1000}
WORK=$(mktemp -d /tmp/pk-dnsbench.XXXXXX)
# A cluster that did not stop cleanly leaves mounts: never rm -rf through them.
trap 'if grep -q " $WORK/" /proc/mounts; then echo "mounts left under $WORK: not removed" >&2; else rm -rf "$WORK"; fi' EXIT
[ -x "${PK:-bin/pocketkube}" ] || { echo "build first: make build" >&2; exit 1; }
cp "${PK:-bin/pocketkube}" "$WORK/pocketkube"
CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o "$WORK/dns" ./bench/dns

cluster() {
	set -euo pipefail
	PK=$WORK/pocketkube
	# The DNS server listens on the node's advertised address (the
	# default route's, --listen being loopback), which pods reach.
	start_cluster

	# busybox from the host's busybox-static, with bench/dns at /bin/dns.
	root=$WORK/rootfs; busybox_rootfs "$root"
	cp "$WORK/dns" "$root/bin/dns"
	tar -C "$root" -cf "$WORK/dns.tar" .
	"$PK" images import --data-dir "$WORK/data" --name pocketkube.bench/dns:1 "$WORK/dns.tar" >/dev/null

	$K run dns-bench --image pocketkube.bench/dns:1 --restart Never --command -- sleep 3600 >/dev/null
	$K wait --for condition=Ready --timeout 120s pod/dns-bench >/dev/null
	# The Service and its EndpointSlice are published after `up`: wait for
	# an answer before measuring.
	until $K exec dns-bench -- /bin/dns query kubernetes.default.svc.cluster.local A 2>/dev/null | grep -q '"rcode":"NOERROR"'; do sleep 0.2; done
	$K exec dns-bench -- /bin/dns bench --n "$N" kubernetes.default.svc.cluster.local A | tee -a "$WORK/out"
	$K exec dns-bench -- /bin/dns bench --n "$((N / 5))" --rcode NXDOMAIN www.example.com.default.svc.cluster.local A | tee -a "$WORK/out"
	$K delete pod dns-bench --grace-period 0 --wait >/dev/null 2>&1
}
export -f cluster
export_lib
export WORK N KEEP_LOG
flock /tmp/cluster.lock bash -c cluster

echo
echo "$(date -u +%Y-%m-%dT%H:%MZ) · $(nproc) cores · Linux $(uname -r) · load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "| query from a pod to 10.96.0.10 | rcode | queries | p50 ms | p90 ms | p99 ms | max ms | failed |"
echo "|---|---|---|---|---|---|---|---|"
grep '^| [A-Z]' "$WORK/out"
