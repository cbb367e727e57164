#!/usr/bin/env python3
"""classify.py < `go tool pprof -traces BIN cpu.pprof`: the CPU of the
pocketkube process by component, each sample's stack given to the first
rule that matches any of its frames."""
import sys, re, collections
rules = [
    ('Go GC (background mark workers)', ['runtime.gcBgMarkWorker']),
    ('etcd (server, bbolt, raft)', ['go.etcd.io/etcd/server', 'go.etcd.io/bbolt', 'go.etcd.io/raft']),
    ('scheduler', ['k8s.io/kubernetes/pkg/scheduler']),
    ('node agent and node services (pocketkube/internal/node)', ['pocketkube/internal/node']),
    ('controller-manager', ['k8s.io/kubernetes/pkg/controller', 'kube-controller-manager']),
    ('API server (HTTP serving, handlers, storage)', ['net/http.(*conn).serve', 'k8s.io/apiserver', 'golang.org/x/net/http2.(*serverConn)', 'k8s.io/kubernetes/pkg/registry', 'k8s.io/kube-aggregator', 'k8s.io/apiextensions-apiserver']),
    ('etcd client / gRPC (apiserver side)', ['go.etcd.io/etcd/client', 'google.golang.org/grpc']),
    ('client-go elsewhere (informers, transports)', ['k8s.io/client-go', 'net/http.(*persistConn)', 'golang.org/x/net/http2.(*ClientConn)', 'http2.(*clientConnReadLoop)']),
    ('Go runtime (scheduler, timers, other)', ['runtime.']),
]
unit = {'ns': 1e-9, 'us': 1e-6, 'ms': 1e-3, 's': 1, 'm': 60, 'h': 3600}
tot = collections.Counter(); total = 0.0
blocks = sys.stdin.read().split('-----------+-------------------------------------------------------')
for b in blocks[1:]:
    lines = [l for l in b.strip('\n').split('\n') if l.strip()]
    if not lines: continue
    m = re.match(r'\s*([\d.]+)(ns|us|ms|s|m|h)\s+(.*)', lines[0])
    if not m: continue
    v = float(m.group(1)) * unit[m.group(2)]
    frames = [m.group(3).strip()] + [l.strip() for l in lines[1:]]
    stack = '\n'.join(frames)
    cls = 'other'
    for name, pats in rules:
        if any(p in stack for p in pats):
            cls = name; break
    tot[cls] += v; total += v
print(f"total sampled CPU {total:.2f} s")
for k, v in tot.most_common():
    print(f"  {k:58s} {v:7.2f} s  {100*v/total:5.1f} %")
