// Package downward computes what a container sees of the Downward API
// through its environment: kubelet's makeEnvironmentVariables
// (k8s.io/kubernetes/pkg/kubelet/kubelet_pods.go, v1.37), byte for byte.
//
// # What it owns
//
// [Environment] turns a pod, one of its containers and what the node knows
// (pod and host IPs, allocatable resources, services, ConfigMaps, Secrets,
// volume directories) into the container's variables: envFrom, then env
// with $(VAR) expansion, then the service link variables. The values come
// from upstream's own helpers (pkg/fieldpath, pkg/api/v1/resource,
// pkg/kubelet/envvars, third_party/forked/golang/expansion,
// pkg/kubelet/util/env), so formats such as resource rounding, docker-link
// variables and escaping are upstream's, not a re-implementation.
//
// # What it leaves to others
//
// downwardAPI and projected volume files are written by package volume
// through upstream's pkg/volume/downwardapi. Fetching objects is the
// caller's: [ObjectGetter] is usually backed by the API server, and the
// service lister by an informer that the caller must have synced (kubelet
// refuses to build an environment before it has listed services once).
//
// # Caveats
//
//   - Order: kubelet appends the variables by ranging over Go maps, so its
//     order is random. Environment returns them in the order they were first
//     set (envFrom, then env) followed by the service variables sorted by
//     name. The set of names and values is kubelet's; only the order is
//     stable here.
//   - Feature gates: the PodLevelResources and EnvFiles behaviour (both on
//     by default in v1.37) is always applied. With a gate off the API server
//     drops the fields they read, so the result is the same.
//   - Errors are kubelet's texts, because they end up in the container's
//     CreateContainerConfigError message.
package downward
