#!/usr/bin/env bash
# Measures how fast Service traffic follows an EndpointSlice change against
# a real `pocketkube up` on this machine (kube-proxy's nftables proxier in
# process): a ClusterIP Service over two busybox httpd pods whose selector
# flips between them CHANGES times; per change, EndpointSlice seen → a new
# host connection to the ClusterIP is answered by the new backend, and
# selector PATCH acknowledged → the same. p50/p90/p99/max in ms. See
# bench/services/main.go.
# Usage: bench/services.sh [CHANGES]   (default 20)
#   PK=path/to/pocketkube (default bin/pocketkube, copied so a rebuild
#   meanwhile cannot change it), SERVICES_ARGS="--gap 200ms" for more flags
#   of bench/services, KEEP_LOG=FILE to keep the cluster's log.
# Needs: root, bin/pocketkube (make build), runc, CNI plugins, nft,
# busybox-static. Only one cluster can run on the machine: the cluster part
# holds /tmp/cluster.lock.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
CHANGES=${1:-20}
WORK=$(mktemp -d /tmp/pk-svcbench.XXXXXX)
# A cluster that did not stop cleanly leaves mounts: never rm -rf through them.
trap 'if grep -q " $WORK/" /proc/mounts; then echo "mounts left under $WORK: not removed" >&2; else rm -rf "$WORK"; fi' EXIT
[ -x "${PK:-bin/pocketkube}" ] || { echo "build first: make build" >&2; exit 1; }
cp "${PK:-bin/pocketkube}" "$WORK/pocketkube"
go build -o "$WORK/services" ./bench/services

cluster() {
	set -euo pipefail
	PK=$WORK/pocketkube
	start_cluster

	# The busybox image, built from the host's busybox-static.
	root=$WORK/rootfs; busybox_rootfs "$root"
	tar -C "$root" -cf "$WORK/busybox.tar" .
	"$PK" images import --data-dir "$WORK/data" --name busybox "$WORK/busybox.tar" >/dev/null

	"$WORK/services" --kubeconfig "$KC" --changes "$CHANGES" ${SERVICES_ARGS:-} | tee -a "$WORK/out"
}
export -f cluster
export_lib
export WORK CHANGES KEEP_LOG SERVICES_ARGS
flock /tmp/cluster.lock bash -c cluster

echo
echo "$(date -u +%Y-%m-%dT%H:%MZ) · $(nproc) cores · Linux $(uname -r) · load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "| measured | changes | p50 ms | p90 ms | p99 ms | max ms |"
echo "|---|---|---|---|---|---|"
grep '^| [A-Za-z]' "$WORK/out"
