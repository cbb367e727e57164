#!/usr/bin/env python3
"""breakdown.py PERF_TXT HZ: CPU seconds by process, and inside pocketkube
by what is on the stack, from `perf script -F comm,ip,sym` of a
`perf record -a --call-graph fp` (hack/startcpu/run.sh). A sample counts
for every row whose pattern is on its stack, so the rows overlap."""
import collections, sys

path, hz = sys.argv[1], float(sys.argv[2])
samples, cur = [], None
for line in open(path):
    if line.strip() and not line[0].isspace():
        if cur:
            samples.append(cur)
        cur = (line.split()[0], [])
    elif line.strip() and cur:
        parts = line.split(None, 1)
        cur[1].append(parts[1].strip() if len(parts) > 1 else '')
if cur:
    samples.append(cur)

by_comm = collections.Counter(c for c, _ in samples)
print('CPU-s by process (%d samples at %g Hz)' % (len(samples), hz))
for comm, n in by_comm.most_common(10):
    print('  %-20s %6.2f' % (comm, n / hz))

rows = [
    ('OpenAPI v2 spec built at PrepareRun (InstallV2)', 'routes.OpenAPI.InstallV2'),
    ('OpenAPI v3 group specs marshalled (handler3)', 'handler3.newOpenAPIV3Group'),
    ('RSA key generation (all)', 'rsa.GenerateKey'),
    ('  of which the loopback self-signed certs', 'GenerateSelfSignedCertKeyWithOptions'),
    ('  of which the service-account key (cold start only)', 'ensureServiceAccountKey'),
    ('TLS (crypto/tls)', 'crypto/tls'),
    ('gRPC (etcd client and server)', 'google.golang.org/grpc'),
    ('etcd server', 'go.etcd.io/etcd/server'),
    ('JSON encoding/decoding', 'json'),
    ('controller-manager (BuildControllers)', 'BuildControllers'),
    ('node agent (internal/node)', 'pocketkube/internal/node'),
    ('Go GC background marking', 'runtime.gcBgMarkWorker'),
    ('Go allocation (mallocgc)', 'runtime.mallocgc'),
    ('page faults (kernel)', 'exc_page_fault'),
]
pk = [s for c, s in samples if c == 'pocketkube']
print('inside pocketkube (%.2f CPU-s), by what is on the stack:' % (len(pk) / hz))
for name, pat in rows:
    n = sum(1 for s in pk if any(pat in f for f in s))
    print('  %-55s %6.2f  %5.1f%%' % (name, n / hz, 100 * n / max(len(pk), 1)))
