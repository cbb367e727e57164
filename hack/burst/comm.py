#!/usr/bin/env python3
"""comm.py DIR FROM TO: CPU seconds per process kind from DIR/perf.data
(perf record -a -F 199) between FROM and TO seconds after the recording's
first sample."""
import subprocess, sys, collections
d, lo, hi = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
out = subprocess.run(['perf', 'script', '-i', d + '/perf.data', '-F', 'comm,cpu,time'], capture_output=True, text=True).stdout
hz = 199
c = collections.Counter(); t0 = None
for line in out.splitlines():
    parts = line.split()
    if len(parts) < 3: continue
    try: t = float(parts[-1].rstrip(':'))
    except ValueError: continue
    comm = ' '.join(parts[:-2])
    if t0 is None: t0 = t
    if lo <= t - t0 <= hi: c[comm] += 1
kinds = [
 ('pocketkube (API server, etcd, scheduler, controllers, node agent)', lambda s: s == 'pocketkube'),
 ('runc create (runc, runc:[0:PARENT], runc:[1:CHILD])', lambda s: s in ('runc', 'runc:[0:PARENT]', 'runc:[1:CHILD]')),
 ('runc init (runc:[2:INIT], until it execs the container)', lambda s: s == 'runc:[2:INIT]'),
 ('CNI bridge plugin', lambda s: s == 'bridge'),
 ('CNI host-local plugin', lambda s: s == 'host-local'),
 ('pocketkube-shim', lambda s: s == 'pocketkube-shim'),
 ('iptables / nft', lambda s: s.startswith('iptables') or s.startswith('nft') or s.startswith('xtables')),
 ('the containers (sh, sleep)', lambda s: s in ('sh', 'sleep')),
 ('kernel threads (kworker, ksoftirqd, rcu, ...)', lambda s: s.startswith(('kworker', 'ksoftirqd', 'rcu_', 'migration', 'kdamond', 'khugepaged', 'kcompactd', 'jbd2', 'kswapd'))),
 ('idle (swapper)', lambda s: s == 'swapper'),
 ('other processes on the machine (builds: go, compile, link, cc1, ...)', lambda s: True),
]
agg = collections.Counter(); members = collections.defaultdict(collections.Counter)
for comm, n in c.items():
    for name, f in kinds:
        if f(comm):
            agg[name] += n; members[name][comm] += n; break
total = sum(c.values())
print(f"window {lo:.1f}-{hi:.1f} s: {total} samples = {total/hz:.2f} CPU-s of {2*(hi-lo):.2f}")
for name, _ in kinds:
    n = agg[name]
    top = ', '.join(f'{k} {v/hz:.2f}' for k, v in members[name].most_common(4)) if name.startswith('other') else ''
    print(f"  {name:70s} {n/hz:6.2f} s {100*n/total:5.1f} %  {top}")
