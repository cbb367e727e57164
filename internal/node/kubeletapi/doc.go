// Package kubeletapi is the node agent's kubelet API: the HTTPS server on
// :10250 that the API server calls for `kubectl logs`, `exec`, `attach`,
// `port-forward` and `kubectl get --raw /api/v1/nodes/<node>/proxy/...`,
// and that metrics-server scrapes (/metrics/resource); /stats/summary is
// served from a SummaryProvider (the node's eviction.Summary).
//
// Upstream kubelet's pkg/kubelet/server is the specification: the same
// paths, query parameters, status codes and error texts, and the same
// authentication (x509 client certificates verified against a client CA,
// bearer tokens through TokenReview) and authorization (SubjectAccessReview
// on nodes/proxy, nodes/log, nodes/stats, nodes/metrics, nodes/pods,
// nodes/healthz, built by k8s.io/apiserver's delegating factories as
// kubelet's BuildAuth does).
//
// The wire protocols are upstream's, not ours: SPDY v1–v4 exec, attach and
// port-forward come from k8s.io/cri-streaming; WebSocket v5
// (v5.channel.k8s.io, with its CLOSE signal) is framed by
// k8s.io/streaming's wsstream; WebSocket port-forward tunnelling
// (SPDY/3.1+portforward.k8s.io) goes through k8s.io/apiserver's
// TunnelingHandler; container logs are read by k8s.io/cri-client's
// ReadLogs (CRI log format, partial lines, tail, since, limitBytes,
// timestamps, follow; a follow reopens a rotated file on fsnotify's Create
// event, which is upstream's behaviour and not covered by our tests).
//
// What happens inside a pod is left to the agent, which implements
// Provider: the package never touches runc, namespaces or files other than
// the log files the provider names.
//
// # Caveats
//
// Pods are looked up through Provider.RunningPods, which is therefore called
// once per request; the agent should answer from its informer cache.
// Anonymous requests are always rejected (kubelet's
// authentication.anonymous.enabled=false), and the PodLogsQuerySplitStreams
// gate is treated as off, as it is upstream by default.
package kubeletapi
