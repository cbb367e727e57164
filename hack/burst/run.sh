#!/bin/bash
# run.sh OUT REALBIN MODE BENCHRE: one run of the bench/ benchmarks BENCHRE
# (1x) against REALBIN, its output in OUT/bench.txt. Run it under the e2e
# lock, after `go test -c -tags bench -o $BENCH_TEST ./bench/`
# (BENCH_TEST defaults to /tmp/bench.test). MODE plain: the binary as is;
# trace: `up` at -v=2 (OUT/trace.log, for trace.py); prof: trace plus
# perf and the CPU profile after the image import (for comm.py and
# classify.py). docs/BENCHMARKS.md, "100 pods: where the CPU goes".
set -e
out=$1 real=$2 mode=$3 re=$4
here=$(cd "$(dirname "$0")" && pwd)
rm -rf "$out"; mkdir -p "$out"
bin=$real
case $mode in
trace) "$here/mkwrap.sh" "$real" "$out" 0; bin=$out/pocketkube ;;
prof) "$here/mkwrap.sh" "$real" "$out" 1; bin=$out/pocketkube ;;
esac
cd "$here/../../bench"
{ echo "# $(date -u +%FT%TZ) $real $mode"; echo "# load before: $(cut -d' ' -f1-3 /proc/loadavg)"; } > "$out/bench.txt"
KUBECTL_DIR=${KUBECTL_DIR:-/var/cache/pocketkube/kubectl/bin} POCKETKUBE_BIN=$bin "${BENCH_TEST:-/tmp/bench.test}" -test.run '^$' -test.bench "$re" -test.benchtime 1x >> "$out/bench.txt" 2>&1 || true
echo "# load after: $(cut -d' ' -f1-3 /proc/loadavg)" >> "$out/bench.txt"
grep -h '^Benchmark\|^# load\|FAIL' "$out/bench.txt"
