#!/bin/sh
# run.sh OUT [SECONDS]: where a cold `pocketkube up` spends its CPU, by
# process and, inside pocketkube, by the code on the stack (docs/BENCHMARKS.md,
# "Start: where the CPU goes"). Builds pocketkube with its symbols into OUT
# (bin/pocketkube is stripped), records every CPU of the machine with perf
# for SECONDS (default 5) from the start of `up` on a new data dir, stops it
# with SIGINT, and prints the breakdown (hack/startcpu/breakdown.py). Take
# the e2e lock first: the cluster listens on 127.0.0.1:16443.
set -eu
out=$1; secs=${2:-5}
mkdir -p "$out"
here=$(cd "$(dirname "$0")/../.." && pwd)
(cd "$here" && CGO_ENABLED=0 go build -trimpath -o "$out/pocketkube" ./cmd/pocketkube)
cp "$here/bin/runc" "$out/runc"
rm -rf "$out/data"
perf record -a -F 499 --call-graph fp -o "$out/perf.data" -- \
  timeout -s INT "$secs" "$out/pocketkube" up --data-dir "$out/data" --listen 127.0.0.1:16443 >"$out/up.log" 2>&1 || true
sleep 3
pkill -INT -f "data-dir $out/data" || true
perf script -i "$out/perf.data" -F comm,ip,sym >"$out/perf.txt" 2>/dev/null
python3 "$here/hack/startcpu/breakdown.py" "$out/perf.txt" 499
