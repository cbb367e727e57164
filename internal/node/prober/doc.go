// Package prober runs kubelet's container probes (startup, readiness,
// liveness) and lifecycle hooks (postStart, preStop) for the node agent.
//
// # Basics
//
// The agent creates one [Manager] and calls [Manager.Update] on every sync of
// a pod with the containers that are running now. The manager starts one
// worker goroutine per probe of each running container, as kubelet's
// prober_manager does, and keeps each worker's result with the semantics of
// kubelet's results manager: successThreshold/failureThreshold counting,
// readiness false and liveness success until the first probe, startup probe
// first and the other probes held until it passes. When something the agent
// reads through [Manager.Ready], [Manager.Started] or [Manager.Liveness]
// changes, the manager calls Config.OnChange so that the agent syncs the pod.
//
// The probes themselves are upstream's: k8s.io/kubernetes/pkg/probe/{http,
// tcp,grpc,exec}, so status codes, redirects, the 10 KiB body limit, the
// User-Agent and the failure texts are exactly kubelet's. HTTP, TCP and gRPC
// probes connect from the host to the pod IP the agent passes in (the host
// reaches pod IPs over the bridge; for hostNetwork pods it is the node IP),
// or to the probe's host when set.
//
// [RunHandler] runs one postStart or preStop handler (exec, httpGet, sleep)
// and returns the message kubelet puts in its FailedPostStartHook and
// FailedPreStopHook events.
//
// # What it leaves to others
//
// Running commands in containers is the runtime's: the agent passes an
// [Executor]. Killing a container that failed its liveness or startup probe,
// restarting it per restartPolicy, and writing pod status are the agent's;
// the manager only reports. It never talks to the API server; events go to
// the optional Config.Recorder.
//
// # Caveats
//
//   - Without the build's -ldflags (see the Makefile), k8s.io/component-base
//     reports no version and upstream would send "kube-probe/."; HTTP probes
//     and hooks then send component-base's DefaultKubeBinaryVersion. gRPC
//     probes set their User-Agent inside upstream's prober and keep it.
//   - Alpha features are off, as in kubelet's defaults: HTTP probes use
//     HTTP/1.1 (no h2c) and gRPC probes do not use TLS.
//   - Exec probes run with the probe's timeoutSeconds; an Executor that does
//     not return when its context ends keeps its goroutine until it does.
package prober
