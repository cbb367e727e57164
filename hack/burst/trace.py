#!/usr/bin/env python3
"""trace.py TRACE.LOG: the wall-time split of a pod burst from `up -v=2`:
scheduler bind (its "Successfully bound pod to node" line), the agent's
sync start (its "Pod start steps" line's time minus totalMs) and end,
and the steps' p50/p90 (ms)."""
import re, sys, statistics
hdr = re.compile(r'[IWE](\d{4}) (\d\d):(\d\d):(\d\d\.\d+)')
kv = re.compile(r'(\w+)=("[^"]*"|\S+)')
bound, steps = {}, {}
def ts(line):
    m = hdr.search(line)
    if not m: return None
    return int(m.group(2))*3600 + int(m.group(3))*60 + float(m.group(4))
for line in open(sys.argv[1], errors='replace'):
    if 'bench-run' not in line: continue
    t = ts(line)
    if t is None: continue
    f = dict(kv.findall(line))
    pod = f.get('pod', '').strip('"')
    if 'Successfully bound pod to node' in line:
        bound.setdefault(pod, t)
    elif '"Pod start steps"' in line:
        d = {k: float(v) for k, v in f.items() if k.endswith('Ms')}
        d['_end'] = t
        steps[pod] = d
if not steps:
    sys.exit('no Pod start steps lines')
t0 = min(bound.values()) if bound else min(d['_end'] - d['totalMs']/1000 for d in steps.values())
def q(xs, p):
    xs = sorted(xs); return xs[min(len(xs)-1, int(p*len(xs)))]
rows = []
for pod, d in steps.items():
    start = d['_end'] - d['totalMs']/1000
    b = bound.get(pod)
    rows.append((b, start, d['_end'], d))
print(f"pods traced {len(steps)}, bound lines {len(bound)}")
if bound:
    bs = sorted(bound.values())
    print(f"binds: first {0:.0f} ms, last {(bs[-1]-t0)*1000:.0f} ms after the first bind")
ends = sorted(r[2] for r in rows)
starts = sorted(r[1] for r in rows)
print(f"sync starts: first {(starts[0]-t0)*1000:.0f} last {(starts[-1]-t0)*1000:.0f} ms; sync ends: first {(ends[0]-t0)*1000:.0f} last {(ends[-1]-t0)*1000:.0f} ms (after the first bind)")
waits = [(r[1]-r[0])*1000 for r in rows if r[0] is not None]
if waits:
    print(f"bind -> sync start (queue) p50 {q(waits,.5):.0f} p90 {q(waits,.9):.0f} max {max(waits):.0f} ms")
# concurrency: syncs in flight, mean over the busy window
ev = sorted([(r[1], 1) for r in rows] + [(r[2], -1) for r in rows])
cur, last, acc = 0, ev[0][0], 0.0
for t, dlt in ev:
    acc += cur*(t-last); cur += dlt; last = t
print(f"mean syncs in flight {acc/(ev[-1][0]-ev[0][0]):.2f}")
keys = sorted({k for r in rows for k in r[3] if k != '_end'}, key=lambda k: -statistics.mean(r[3].get(k, 0) for r in rows))
print("step p50 / p90 / mean ms:")
for k in keys:
    xs = [r[3].get(k, 0) for r in rows]
    print(f"  {k:28s} {q(xs,.5):8.1f} {q(xs,.9):8.1f} {statistics.mean(xs):8.1f}")
