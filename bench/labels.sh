#!/usr/bin/env bash
# Measures label change (PATCH acknowledged) → new bytes readable in the
# container's downwardAPI file against a real `pocketkube up` on this
# machine: p50/p90/p99/max over CHANGES sequential label patches, with 1
# and with 50 pods on the node, while a reader loops on the file and counts
# torn reads (see bench/labels/main.go for how the container's view is read).
# Usage: bench/labels.sh [CHANGES]   (default 200)
#   PK=path/to/pocketkube (default bin/pocketkube, copied so a rebuild
#   meanwhile cannot change it), LOGV=4 to run the cluster at -v 4, KEEP_LOG=FILE
#   to keep its log, LABELS_ARGS="--gap 100ms" (or --torn-reader=false) for
#   more flags of bench/labels.
# Needs: root, bin/pocketkube (make build), runc, CNI plugins, busybox-static.
# Only one cluster can run on the machine: the cluster part holds
# /tmp/cluster.lock.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
CHANGES=${1:-200}
WORK=$(mktemp -d /tmp/pk-labelsbench.XXXXXX)
# A cluster that did not stop cleanly leaves mounts: never rm -rf through them.
trap 'if grep -q " $WORK/" /proc/mounts; then echo "mounts left under $WORK: not removed" >&2; else rm -rf "$WORK"; fi' EXIT
[ -x "${PK:-bin/pocketkube}" ] || { echo "build first: make build" >&2; exit 1; }
cp "${PK:-bin/pocketkube}" "$WORK/pocketkube"
go build -o "$WORK/labels" ./bench/labels

cluster() {
	set -euo pipefail
	PK=$WORK/pocketkube
	start_cluster

	# The busybox image, built from the host's busybox-static.
	root=$WORK/rootfs; busybox_rootfs "$root"
	tar -C "$root" -cf "$WORK/busybox.tar" .
	"$PK" images import --data-dir "$WORK/data" --name busybox "$WORK/busybox.tar" >/dev/null

	for n in 1 50; do
		"$WORK/labels" --kubeconfig "$KC" --data-dir "$WORK/data" --pods "$n" --changes "$CHANGES" ${LABELS_ARGS:-} | tee -a "$WORK/out"
	done
}
export -f cluster
export_lib
export WORK CHANGES LOGV KEEP_LOG LABELS_ARGS
flock /tmp/cluster.lock bash -c cluster

echo
echo "$(date -u +%Y-%m-%dT%H:%MZ) · $(nproc) cores · Linux $(uname -r) · load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "| pods on node | changes | p50 ms | p90 ms | p99 ms | max ms | torn / reads | restarts | podName rewritten |"
echo "|---|---|---|---|---|---|---|---|---|"
grep '^| [0-9]' "$WORK/out"
