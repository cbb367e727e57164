// Package eviction is kubelet's eviction manager (k8s.io/kubernetes
// pkg/kubelet/eviction) for this node, in two parts.
//
// [Summary] is also what the kubelet API serves as /stats/summary: one
// place builds kubelet's statsapi.Summary, and its CPU samples (for
// usageNanoCores) are shared by both readers.
//
// [Pressure] is upstream's manager itself, fed by [Summary]: the node's
// memory as cadvisor reads the root cgroup (/proc/meminfo: available is
// MemFree + Inactive(file)), nodefs and imagefs as statfs of the node's
// and the image store's directories, kubelet's pid.available (the lower
// of pid_max and threads-max less the running tasks), and per pod its
// cgroup's working set and processes, its containers' working sets and
// its emptyDir usage. It gives the node's MemoryPressure, DiskPressure
// and PIDPressure (kept True for the 5 min transition period), evicts one
// pod per Period while a hard threshold (--eviction-hard) is crossed, or a
// soft one (--eviction-soft) has been for its grace period, until the
// signal is past its minimum reclaim (--eviction-minimum-reclaim), ranked
// and with messages as kubelet, and admits pods as kubelet does. Under
// imagefs pressure it first has the image store's GC (image.GC) remove
// every unused image, as kubelet's image GC.
//
// [Manager] is the local-storage part: every
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
//     every Period. The Summary caches its walks (a volume for a minute,
//     as kubelet's volume stats, or until the pod's running containers
//     change; a writable layer or log directory for 10 s), so
//     /stats/summary may show usage up to that old; the cache holds only
//     the live pods' directories.
//   - A pod's network is read from the host through a process of one of
//     its containers (/proc/<pid>/net/dev, as cadvisor), or, when it has
//     none, by entering its network namespace on a locked OS thread
//     (network.Interfaces); a host-network pod has none, where kubelet
//     shows the host's.
//   - Container and pod ephemeral-storage limits (writable layer and
//     logs) are not enforced, and pods are ranked for disk pressure
//     without them.
//   - No memcg notification (memory is read every Period) and no
//     container GC (an ended pod's writable layers stay until it is
//     deleted).
package eviction
