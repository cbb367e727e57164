// Package agent is pocketkube's node agent: a small kubelet. It registers
// the node and renews its Lease, watches the pods bound to the node and
// runs them, and writes their status, all through the API server with the
// node's own credentials (system:node:<name>), so the Node authorizer and
// NodeRestriction admission treat it exactly as a kubelet.
//
// # Shape
//
// As kubernetes/sample-controller: a pod informer limited to
// spec.nodeName=<node> feeds pod keys into a rate-limited workqueue; workers
// call syncPod, which reads the pod from the lister, compares it with what
// the runtime reports, takes the next steps (sandbox, volumes, init
// containers in order, app containers, restarts with kubelet's back-off),
// and writes status on a copy. Sidecars (init containers with
// restartPolicy Always) are ported from kubelet in sidecars.go. Container exits come back from the runtime
// as keys on the same queue: nothing writes status from a runtime callback.
// There is no periodic full resync on the hot path; timers exist only for
// back-off expiry.
//
// The one step that runs beside the others is the pod network's CNI ADD
// (podnetwork.go): the sync that sets a sandbox up starts it, prepares the
// volumes, the image and the first container meanwhile, and joins it
// before anything the user sees or the container needs the pod's IP for:
// a start, an image pull, an environment with status.podIP, the status.
// The pod's events wait for the join too, and a failed ADD undoes the
// created container, so a user sees what kubelet shows.
//
// Before a pod is set up, kubelet's admit handlers that guard its security
// run (admission.go): the sysctl allowlist and AppArmor, which this node
// never applies, so a pod asking for a profile other than Unconfined is
// Failed with kubelet's reason "AppArmor" (on a host with AppArmor, where
// kubelet would admit it, its containers fail with containerd's "apparmor
// is not supported" instead). Seccomp is resolved as kubelet resolves it
// (Config.SeccompDefault is --seccomp-default; Localhost profiles live in
// DataDir/seccomp) and applied by the runtime.
//
// In-place pod resize (resize.go) is kubelet's: the allocation manager
// admits a changed spec against the node's allocatable with kubelet's
// predicate admit handler (else PodResizePending, reason Deferred, with
// the handler's message, retried every 5 s; a resize beyond the node's
// allocatable never reaches the node, the API server's PodResizeValidator
// refuses it), the runtime manager applies the allocation to
// the pod cgroup and, through the runtime's UpdateContainerResources
// (`runc update`), to the running containers, in kubelet's order, or
// restarts those whose resizePolicy asks for it; PodResizeInProgress stays
// until every running container has its allocation (reason Error with
// kubelet's message when a memory limit would go below the usage), and
// containerStatuses report resources and allocatedResources as kubelet
// does. The allocation is kept in the pod's directory, as kubelet's
// checkpoint, so a restarted agent keeps a deferred resize deferred.
//
// # What it leaves to others
//
// Containers, images, networking, volumes and the kubelet API are separate
// packages (internal/node/runtime, image, network, volume, kubeletapi); this
// package declares the few methods it needs of each as interfaces, where it
// uses them. Upstream kubelet (k8s.io/kubernetes/pkg/kubelet) is the
// specification for every value written to the API.
//
// Image volumes are pulled here (imagevolume.go), with the volume's
// pullPolicy, kubelet's events and the waiting reasons of the containers
// that mount them, as kubelet's runtime manager pulls them before it starts
// containers; the volume package mounts the root filesystem it is given.
// The volume package reads claims, PVs, ClusterTrustBundles and pod
// certificates through apiObjects (objects.go), the last two with
// kubelet's own managers; podcerts.go wires kubelet's podcertificate
// manager and syncs a pod again when its PodCertificateRequests change.
//
// # Caveats
//
// Probes and lifecycle hooks run in internal/node/prober; the agent hands
// it the running containers on each sync and kills those whose liveness
// probe failed. Static pods and pod-level resources (spec.resources) are
// not implemented yet; see docs/ for the state of each. The host's facts the
// node reports come from internal/node/machine. Evictions are decided by
// internal/node/eviction, which calls Agent.Evict; the eviction itself
// happens in the pod's sync, so that it never races one.
package agent
