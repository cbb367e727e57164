#!/bin/bash
# mkwrap.sh REAL_BIN OUTDIR PROFILE(0|1): writes OUTDIR/pocketkube, a
# POCKETKUBE_BIN wrapper: `up` at -v=2 with its stderr to OUTDIR/trace.log;
# after `images import`, with PROFILE=1, a 14 s system-wide perf record and
# a 12 s CPU profile of the pocketkube process (the API server's /debug/pprof).
set -e
real=$1 out=$2 prof=$3
mkdir -p "$out"
cat > "$out/pocketkube" <<W
#!/bin/bash
if [ "\$1" = up ]; then exec "$real" "\$@" -v=2 2>>"$out/trace.log"; fi
if [ "\$1" = images ] && [ "\$2" = import ]; then
  "$real" "\$@"; rc=\$?
  dir=; prev=
  for a in "\$@"; do [ "\$prev" = --data-dir ] && dir=\$a; prev=\$a; done
  if [ "$prof" = 1 ] && [ -n "\$dir" ]; then
    setsid -f bash -c 'grep "^cpu " /proc/stat > "$out/stat.before"; date +%s.%N > "$out/t.start";
      perf record -q -a -F 199 -o "$out/perf.data" -- sleep 14 >/dev/null 2>&1 &
      "$real" kubectl --kubeconfig "\$0/kubeconfig" get --raw "/debug/pprof/profile?seconds=12" > "$out/cpu.pprof" 2>"$out/pprof.err";
      wait; grep "^cpu " /proc/stat > "$out/stat.after"; date +%s.%N > "$out/t.end"' "\$dir" </dev/null >/dev/null 2>&1
  fi
  exit \$rc
fi
exec "$real" "\$@"
W
chmod +x "$out/pocketkube"
