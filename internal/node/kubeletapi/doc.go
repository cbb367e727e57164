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
// # /metrics/cadvisor
//
// Kubelet serves cAdvisor's Prometheus collectors there; we have no
// cAdvisor, so a collector of ours reads the same cgroups as
// /metrics/resource (through StatsProvider) and writes cAdvisor's families
// with cAdvisor's names, help texts and types, labelled as kubelet labels
// them (container, id = the cgroup, image, name = the container ID,
// namespace, pod), for the node's root cgroup (id="/", other labels
// empty), each running pod's cgroup (container="") and each running
// container: container_cpu_usage_seconds_total (cpu="total", per-CPU
// usage being off in kubelet), container_memory_usage_bytes,
// container_memory_working_set_bytes, container_memory_rss,
// container_threads (pids.current), container_last_seen,
// container_start_time_seconds, container_spec_cpu_period, _quota and
// _shares (cpu.max and cpu.weight, or the v1 CFS files),
// container_spec_memory_limit_bytes (0 for none, as cAdvisor), and
// machine_cpu_cores and machine_memory_bytes (labelled machine_id,
// system_uuid, boot_id), with container_scrape_error and
// machine_scrape_error.
//
// With a StatsProvider that reads the pods' network namespaces
// ([PodNetwork]) each pod's cgroup (container="") also has
// container_network_{receive,transmit}_{bytes,packets,errors}_total per
// interface; with a SummaryProvider, container_fs_usage_bytes and
// container_fs_limit_bytes (labelled device, [FsDevice]) come from the
// summary's writable layers (per container) and nodefs (id="/").
//
// Left out, since the cgroup files read here do not give them: the disk
// I/O series (cAdvisor reads the per-device I/O files), the
// container_fs_* series of other filesystems and the inode ones, the
// host's other cgroups (system.slice and the like: cAdvisor walks the
// whole hierarchy, we report the pods'), the CPU user/system split,
// throttling, load, memory cache/swap/failcnt and OOM-event series,
// container_processes and container_file_descriptors (cAdvisor lists the
// cgroup's processes in /proc), and cadvisor_version_info. On a cgroup
// v2 host the root cgroup has no memory files, so there are no id="/"
// series (cAdvisor reads /proc there).
//
// # Caveats
//
// Pods are looked up through Provider.RunningPods, which is therefore called
// once per request; the agent should answer from its informer cache.
// Anonymous requests are always rejected (kubelet's
// authentication.anonymous.enabled=false), and the PodLogsQuerySplitStreams
// gate is treated as off, as it is upstream by default.
package kubeletapi
