// Package metricsserver runs sigs.k8s.io/metrics-server in the pocketkube
// process: the metrics.k8s.io API that `kubectl top` and the
// HorizontalPodAutoscaler read.
//
// It is metrics-server itself, not a re-implementation: its options,
// its scraper of the kubelets' /metrics/resource, its storage and its
// aggregated API server (delegated authentication and authorization
// against the API server, as metrics-server in a pod does). What
// pocketkube adds is how the API server reaches a process on the host:
// metrics-server serves HTTPS on Config.Port of the host, with a
// certificate for metrics-server.kube-system.svc signed by the cluster CA,
// and Run keeps three objects in the cluster: a selector-less Service
// kube-system/metrics-server, its EndpointSlice pointing at
// Config.Address:Config.Port, and the APIService v1beta1.metrics.k8s.io
// whose caBundle is the cluster CA. The API server's aggregator routes to
// the EndpointSlice's address (--enable-aggregator-routing), so no
// Service proxy is needed on the way. With several servers each runs
// metrics-server and writes an EndpointSlice of its own
// (ServiceName-NODE), whose readiness every server keeps from the Node's
// (keepServerSlices); the aggregator picks a ready endpoint among them.
//
// metrics-server v0.8.0 is built against k8s.io v0.33 and compiles
// unchanged against the v0.37.2 modules pocketkube pins; one difference
// shows at run time: its generated OpenAPI definitions are keyed by Go
// package path while the v0.37 types name their models by
// OpenAPIModelName, so Run gives its API server k8s.io/kubernetes'
// definitions of the same release instead.
//
// # Caveats
//
//   - metrics-server talks to the API server and the kubelets with the
//     admin's credentials (as pocketkube's servicelb does), so that it
//     needs no RBAC objects of its own; the kubelets' serving certificates
//     are verified against the cluster CA.
//   - Importing metrics-server registers client-go's metrics in the
//     process' legacy registry, and metrics-server registers the API
//     server's endpoint metrics there, as kube-apiserver does: this
//     package is one of the control plane's adapters, which are allowed
//     upstream's globals.
//   - The first figures come a MetricResolution (15 s) after start, and
//     a pod's one resolution after its first two scrapes: until then
//     `kubectl top` answers "metrics not available yet".
//   - When metrics is disabled (`up --disable metrics`), RemoveAPIService
//     deletes the APIService a previous run left, so that API discovery
//     does not report metrics.k8s.io as unavailable.
package metricsserver
