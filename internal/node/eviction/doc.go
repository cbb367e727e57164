// Package eviction is the part of kubelet's eviction manager
// (k8s.io/kubernetes pkg/kubelet/eviction) that pocketkube has: every
// Period (kubelet's evictionMonitoringPeriod, 10 s) a [Manager] measures
// the local storage of the node's pods and has the node agent evict a pod
// whose emptyDir on disk uses more than its sizeLimit, with kubelet's
// message ("Usage of EmptyDir volume %q exceeds the limit %q. "), as
// kubelet's localStorageEviction does.
//
// The Manager decides; it does not kill. The agent ([Evicter]) ends the
// pod as kubelet's killPodFunc does: a Warning event Evicted, containers
// stopped with a 1 s grace period, phase Failed with reason Evicted and the
// message, volumes released.
//
// # Caveats
//
//   - A pod may write past its sizeLimit for up to a Period before it is
//     evicted, as with kubelet; a medium: Memory emptyDir is a tmpfs of
//     its size and needs no eviction (internal/node/volume).
//   - Usage is measured by walking the volume (du), as kubelet without
//     filesystem quotas: a volume of many small files costs a walk of them
//     every Period.
//   - Container and pod ephemeral-storage limits (writable layer and
//     logs) are not enforced.
package eviction
