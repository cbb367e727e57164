#!/usr/bin/env bash
# Measures `pocketkube up` against a bare control plane started by hand from
# the same Kubernetes version, in one run on one machine:
#   - pocketkube cold (empty data dir) and warm (existing data dir): time to
#     /readyz answering 200, and to the first successful `kubectl get ns`;
#   - bare: Debian's etcd + a kube-apiserver built from
#     k8s.io/kubernetes/cmd/kube-apiserver, cold and warm, to /readyz;
#   - RSS of each after IDLE seconds idle, and pocketkube's stop time.
# Usage: bench/startup.sh [RUNS] [IDLE]   (defaults 5 and 60)
# Needs: root, bin/pocketkube (make build), etcd, kubectl, curl.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-5}
IDLE=${2:-60}
PK=$PWD/bin/pocketkube
KUBECTL=${KUBECTL:-/usr/lib/google-cloud-sdk/bin/kubectl.1.33}
KAS=$PWD/bin/kube-apiserver
WORK=$(mktemp -d /tmp/pk-bench.XXXXXX)
trap 'pkill -P $$ 2>/dev/null || true; rm -rf "$WORK"' EXIT

[ -x "$PK" ] || { echo "build first: make build" >&2; exit 1; }
if [ ! -x "$KAS" ]; then
  echo "building kube-apiserver from k8s.io/kubernetes/cmd/kube-apiserver…" >&2
  go build -ldflags "-s -w" -o "$KAS" k8s.io/kubernetes/cmd/kube-apiserver
fi

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f\n", b - a }'; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_readyz() { # URL TIMEOUT_S
  local deadline=$(( $(date +%s) + $2 ))
  until [ "$(curl -sk -o /dev/null -w '%{http_code}' "$1/readyz")" = 200 ]; do
    [ "$(date +%s)" -lt "$deadline" ] || return 1
    sleep 0.02
  done
}
rss_mib() { awk '/^VmRSS/ { printf "%.0f", $2 / 1024 }' "/proc/$1/status"; }
median() { sort -n | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else printf "%.3f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

# pocketkube: one start, prints "readyz getns" seconds.
pk_start() { # DIR
  local port; port=$(free_port)
  local t0; t0=$(now)
  "$PK" up --data-dir "$1" --listen "127.0.0.1:$port" >"$WORK/pk.log" 2>&1 &
  PK_PID=$!
  wait_readyz "https://127.0.0.1:$port" 60
  local t1; t1=$(now)
  until [ -f "$1/kubeconfig" ] && "$KUBECTL" --kubeconfig "$1/kubeconfig" get ns >/dev/null 2>&1; do sleep 0.02; done
  local t2; t2=$(now)
  echo "$(elapsed "$t0" "$t1") $(elapsed "$t0" "$t2")"
}
pk_stop() {
  local t0; t0=$(now)
  kill -INT "$PK_PID"; wait "$PK_PID" || true
  elapsed "$t0" "$(now)"
}

# Bare control plane: Debian etcd + kube-apiserver with the flags pocketkube
# passes (bench reuses the PKI of a pocketkube data dir).
bare_start() { # ETCD_DIR PKI_DIR
  local cport pport port
  cport=$(free_port); pport=$(free_port); port=$(free_port)
  local t0; t0=$(now)
  ETCD_UNSUPPORTED_ARCH= etcd --name bare --data-dir "$1" \
    --listen-client-urls "http://127.0.0.1:$cport" --advertise-client-urls "http://127.0.0.1:$cport" \
    --listen-peer-urls "http://127.0.0.1:$pport" --initial-advertise-peer-urls "http://127.0.0.1:$pport" \
    --initial-cluster "bare=http://127.0.0.1:$pport" >"$WORK/etcd.log" 2>&1 &
  ETCD_PID=$!
  local p=$2
  "$KAS" --advertise-address=192.0.2.2 --bind-address=127.0.0.1 --secure-port="$port" \
    --allow-privileged=true --anonymous-auth=true --authorization-mode=Node,RBAC \
    --client-ca-file="$p/ca.crt" --enable-admission-plugins=NodeRestriction --enable-bootstrap-token-auth=true \
    --etcd-servers="http://127.0.0.1:$cport" \
    --kubelet-client-certificate="$p/apiserver-kubelet-client.crt" --kubelet-client-key="$p/apiserver-kubelet-client.key" \
    --proxy-client-cert-file="$p/front-proxy-client.crt" --proxy-client-key-file="$p/front-proxy-client.key" \
    --requestheader-allowed-names=front-proxy-client --requestheader-client-ca-file="$p/front-proxy-ca.crt" \
    --requestheader-extra-headers-prefix=X-Remote-Extra- --requestheader-group-headers=X-Remote-Group \
    --requestheader-username-headers=X-Remote-User \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$p/sa.pub" --service-account-signing-key-file="$p/sa.key" \
    --service-cluster-ip-range=10.96.0.0/12 --tls-cert-file="$p/apiserver.crt" --tls-private-key-file="$p/apiserver.key" \
    >"$WORK/kas.log" 2>&1 &
  KAS_PID=$!
  wait_readyz "https://127.0.0.1:$port" 60
  elapsed "$t0" "$(now)"
}
bare_stop() { # the API server first, while its storage is still there
  kill "$KAS_PID"; timeout 20 tail --pid="$KAS_PID" -f /dev/null || kill -9 "$KAS_PID"
  kill "$ETCD_PID"; wait "$KAS_PID" "$ETCD_PID" 2>/dev/null || true
}

echo "# $(date -u +%Y-%m-%d) on $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -r); runs=$RUNS"
: >"$WORK/pk_cold"; : >"$WORK/pk_cold_ns"; : >"$WORK/pk_warm"; : >"$WORK/pk_warm_ns"; : >"$WORK/pk_stop"
: >"$WORK/bare_cold"; : >"$WORK/bare_warm"
for i in $(seq "$RUNS"); do
  dir="$WORK/pk$i"
  # Functions run in this shell (not in $(…)) so that PK_PID stays set.
  pk_start "$dir" >"$WORK/t"; read -r r n <"$WORK/t"; echo "$r" >>"$WORK/pk_cold"; echo "$n" >>"$WORK/pk_cold_ns"; pk_stop >>"$WORK/pk_stop"
  pk_start "$dir" >"$WORK/t"; read -r r n <"$WORK/t"; echo "$r" >>"$WORK/pk_warm"; echo "$n" >>"$WORK/pk_warm_ns"; pk_stop >>"$WORK/pk_stop"
  bare_start "$WORK/etcd$i" "$dir/pki" >>"$WORK/bare_cold"; bare_stop
  bare_start "$WORK/etcd$i" "$dir/pki" >>"$WORK/bare_warm"; bare_stop
done
printf '%-44s %s\n' "measure (median of $RUNS, seconds)" value
printf '%-44s %s\n' "pocketkube cold: start → /readyz" "$(median <"$WORK/pk_cold")"
printf '%-44s %s\n' "pocketkube cold: start → kubectl get ns" "$(median <"$WORK/pk_cold_ns")"
printf '%-44s %s\n' "pocketkube warm: start → /readyz" "$(median <"$WORK/pk_warm")"
printf '%-44s %s\n' "pocketkube warm: start → kubectl get ns" "$(median <"$WORK/pk_warm_ns")"
printf '%-44s %s\n' "bare etcd+kube-apiserver cold → /readyz" "$(median <"$WORK/bare_cold")"
printf '%-44s %s\n' "bare etcd+kube-apiserver warm → /readyz" "$(median <"$WORK/bare_warm")"
printf '%-44s %s\n' "pocketkube Ctrl-C → exit" "$(median <"$WORK/pk_stop")"

# Idle RSS after IDLE seconds.
pk_start "$WORK/pk1" >/dev/null
bare_start "$WORK/etcd1" "$WORK/pk1/pki" >/dev/null
sleep "$IDLE"
printf '%-44s %s MiB\n' "pocketkube RSS after ${IDLE}s idle" "$(rss_mib "$PK_PID")"
printf '%-44s %s MiB (kube-apiserver %s + etcd %s)\n' "bare RSS after ${IDLE}s idle" \
  "$(( $(rss_mib "$KAS_PID") + $(rss_mib "$ETCD_PID") ))" "$(rss_mib "$KAS_PID")" "$(rss_mib "$ETCD_PID")"
pk_stop >/dev/null; bare_stop
printf '%-44s %s MiB\n' "pocketkube binary size (-s -w)" "$(( $(stat -c %s "$PK") / 1048576 ))"
