#!/usr/bin/env bash
# minikube's "time-to-k8s" for pocketkube: from the `up` command to
#   1. the API server answering (/readyz 200 with the admin kubeconfig),
#   2. an application pod Running (a curl image, created as soon as the
#      default service account exists),
#   3. that pod reaching the API server by its cluster DNS name:
#      `curl https://kubernetes.default.svc.cluster.local/version` with the
#      service account's CA (cluster DNS, the kubernetes Service's VIP via
#      kube-proxy, and the API server all answering).
# The curl image is imported into the fresh data dir before `up` (as
# minikube's benchmark has its images cached). Cold: a new data dir each run.
# Usage: bench/timetok8s.sh [RUNS]   (default 5)
# Needs: root, bin/pocketkube (make build), runc, CNI plugins, nftables,
# busybox-static, curl; an address pods can reach the API server at (the
# default --listen 0.0.0.0:6443 advertises the default route's address).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
RUNS=${1:-5}
PK=$PWD/bin/pocketkube
K=/usr/lib/google-cloud-sdk/bin/kubectl.1.33
WORK=$(mktemp -d /tmp/pk-ttk.XXXXXX)
PK_PID=
cleanup() {
	[ -n "$PK_PID" ] && { kill -INT "$PK_PID" 2>/dev/null; wait "$PK_PID" 2>/dev/null || true; }
	if grep -q " $WORK/" /proc/mounts; then echo "mounts left under $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
[ -x "$PK" ] || { echo "build first: make build" >&2; exit 1; }

# A curl image from the host's files: busybox, curl and its libraries, CAs.
root=$WORK/rootfs
busybox_rootfs "$root"
mkdir -p "$root/etc/ssl/certs"
copy() { mkdir -p "$root$(dirname "$1")"; cp -L "$1" "$root$1"; }
copy /usr/bin/curl
for l in $(ldd /usr/bin/curl | grep -o '/[^ ]*'); do copy "$l"; done
for l in /lib/x86_64-linux-gnu/libnss_dns.so.2 /lib/x86_64-linux-gnu/libnss_files.so.2 /lib/x86_64-linux-gnu/libresolv.so.2; do [ -e "$l" ] && copy "$l"; done
cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/"
printf 'hosts: files dns\n' >"$root/etc/nsswitch.conf"
tar -C "$root" -cf "$WORK/curl.tar" .

now() { date +%s.%N; }
ms() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f", (b - a) * 1000 }'; }
pod='apiVersion: v1
kind: Pod
metadata: {name: app}
spec:
  containers:
  - name: app
    image: ttk/curl
    imagePullPolicy: Never
    command: ["sh", "-c", "until curl -sf --cacert /var/run/secrets/kubernetes.io/serviceaccount/ca.crt https://kubernetes.default.svc.cluster.local/version; do sleep 0.05; done; echo; echo DNS-OK; exec sleep 3600"]'

echo "run api_ms app_running_ms dns_ms stop_s"
for run in $(seq 1 "$RUNS"); do
	dir=$WORK/data-$run
	"$PK" images import --data-dir "$dir" --name ttk/curl "$WORK/curl.tar" >/dev/null
	t0=$(now)
	"$PK" up --data-dir "$dir" >"$WORK/pk-$run.log" 2>&1 &
	PK_PID=$!
	until [ -f "$dir/kubeconfig" ]; do sleep 0.01; done
	KC="--kubeconfig $dir/kubeconfig"
	until $K $KC get --raw /readyz >/dev/null 2>&1; do sleep 0.02; done
	t_api=$(now)
	until $K $KC get serviceaccount default >/dev/null 2>&1; do sleep 0.05; done
	echo "$pod" | $K $KC apply -f - >/dev/null
	until [ "$($K $KC get pod app -o jsonpath='{.status.phase}' 2>/dev/null)" = Running ]; do sleep 0.05; done
	t_app=$(now)
	until $K $KC logs app 2>/dev/null | grep -q DNS-OK; do sleep 0.05; done
	t_dns=$(now)
	s0=$(now); kill -INT "$PK_PID"; wait "$PK_PID" || true; PK_PID=; s1=$(now)
	echo "$run $(ms "$t0" "$t_api") $(ms "$t0" "$t_app") $(ms "$t0" "$t_dns") $(awk -v a="$s0" -v b="$s1" 'BEGIN { printf "%.2f", b - a }')"
done
echo "machine: $(nproc) cores, $(uname -r), $(date -u +%Y-%m-%dT%H:%MZ)"
