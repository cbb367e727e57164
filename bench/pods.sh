#!/usr/bin/env bash
# Measures the node agent against a real `pocketkube up` on this machine:
#   - pod create → Running, bound → Running, create → first log line
#     (p50/p99): 1 pod (RUNS1 runs), 30 and 100 pods created at once;
#   - RSS of pocketkube and of the per-container shims, idle and with 30
#     pods running (→ RSS per running pod);
#   - Ctrl-C → exit with 30 pods running.
# Usage: bench/pods.sh [RUNS1]   (default 20)
# Needs: root, bin/pocketkube (make build), runc, CNI plugins, busybox-static.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
RUNS1=${1:-20}
PK=$PWD/bin/pocketkube
WORK=$(mktemp -d /tmp/pk-podbench.XXXXXX)
trap 'kill -INT $PK_PID 2>/dev/null; wait $PK_PID 2>/dev/null; rm -rf "$WORK"' EXIT
[ -x "$PK" ] || { echo "build first: make build" >&2; exit 1; }

go build -o "$WORK/podstart" ./bench/podstart
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$PK" up --data-dir "$WORK/data" --listen "127.0.0.1:$port" >"$WORK/pk.log" 2>&1 &
PK_PID=$!
until [ -f "$WORK/data/kubeconfig" ]; do sleep 0.1; done
KC=$WORK/data/kubeconfig
K="/usr/lib/google-cloud-sdk/bin/kubectl.1.33 --kubeconfig $KC"
wait_node_ready $K

# The busybox image, built from the host's busybox-static.
root=$WORK/rootfs; busybox_rootfs "$root"
tar -C "$root" -cf "$WORK/busybox.tar" .
"$PK" images import --data-dir "$WORK/data" --name busybox "$WORK/busybox.tar" >/dev/null

rss_kib() { awk '/^VmRSS/ { print $2 }' "/proc/$1/status"; }
shims_kib() { local t=0; for p in $(pgrep -f 'shim.*--bundle' || true); do t=$((t + $(rss_kib "$p" 2>/dev/null || echo 0))); done; echo $t; }

echo "== 1 pod, $RUNS1 runs"; "$WORK/podstart" --kubeconfig "$KC" --pods 1 --runs "$RUNS1"
echo "== 30 pods at once"; "$WORK/podstart" --kubeconfig "$KC" --pods 30 --runs 1
echo "== 100 pods at once"; "$WORK/podstart" --kubeconfig "$KC" --pods 100 --runs 1

sleep 5
idle=$(rss_kib $PK_PID)
# 30 pods left running for the RSS and Ctrl-C figures.
for i in $(seq 1 30); do cat <<Y; done | /usr/lib/google-cloud-sdk/bin/kubectl.1.33 --kubeconfig "$KC" apply -f - >/dev/null
apiVersion: v1
kind: Pod
metadata: {name: rss-$i}
spec:
  terminationGracePeriodSeconds: 30
  containers: [{name: main, image: busybox, imagePullPolicy: IfNotPresent, command: [sleep, "3600"]}]
---
Y
/usr/lib/google-cloud-sdk/bin/kubectl.1.33 --kubeconfig "$KC" wait --for=condition=Ready pod --all --timeout=120s >/dev/null
sleep 5
busy=$(rss_kib $PK_PID); shims=$(shims_kib)
echo "pocketkube RSS idle (0 pods): $((idle / 1024)) MiB; with 30 pods: $((busy / 1024)) MiB; shims: $((shims / 1024)) MiB in all"
awk -v i="$idle" -v b="$busy" -v s="$shims" 'BEGIN { printf "RSS per running pod: %.1f MiB (agent %.1f + shim %.1f)\n", (b - i + s) / 30 / 1024, (b - i) / 30 / 1024, s / 30 / 1024 }'
t0=$(date +%s.%N); kill -INT $PK_PID; wait $PK_PID || true; t1=$(date +%s.%N)
awk -v a="$t0" -v b="$t1" 'BEGIN { printf "Ctrl-C → exit with 30 pods (sleep ignores SIGTERM; grace capped at 3 s): %.2f s\n", b - a }'
left=$(pgrep -fc 'shim.*--bundle' || true)
echo "shims left after exit: $left"
