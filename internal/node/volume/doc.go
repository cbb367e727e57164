// Package volume prepares a pod's volumes on the host before its containers
// start, following upstream kubelet's volume plugins (k8s.io/kubernetes
// pkg/volume/{emptydir,hostpath,local,configmap,secret,downwardapi,projected},
// pkg/volume/util and pkg/kubelet/volumemanager).
//
// # Basics
//
// A [Manager] owns the kubelet-shaped directory tree
// <PodsDir>/<podUID>/volumes/kubernetes.io~<plugin>/<volume name>. The node
// agent calls [Manager.Setup] once per pod volume (and again whenever the pod,
// a ConfigMap or a Secret changes: Setup is idempotent and cheap when nothing
// changed), bind-mounts the returned [Mounted.Path] into the containers, and
// calls [Manager.TeardownPod] when the pod is gone. [Manager.Pods] lists the pod
// directories on disk so the agent can clean up leftovers after a crash.
// [Manager.PrepareSubPath] turns a volumeMount's subPath into a bind mount
// under <PodsDir>/<podUID>/volume-subpaths that the container cannot
// redirect with a symlink (CVE-2017-1002101, CVE-2021-25741), as kubelet's
// makeMounts does with upstream's subpath package.
//
// Supported volume sources:
//
//   - emptyDir: a directory (medium ""), or a tmpfs (medium Memory) whose size
//     is sizeLimit, capped by the pod's memory limit and node allocatable memory
//     (kubelet's calculateEmptyDirMemorySize).
//
//   - hostPath: the host path itself, with kubelet's type checks
//     (DirectoryOrCreate, FileOrCreate, Directory, File, Socket, CharDevice,
//     BlockDevice) and error texts; nothing is created under PodsDir. A
//     missing path of a volume without a type is made a directory (0755)
//     by the agent when a container mounts it, as containerd's CRI does.
//
//   - configMap (a directory) and secret (a tmpfs), written with upstream's
//     atomic writer ([WriteAtomic]) from upstream's payload builders, and
//     always returned read-only.
//
//   - persistentVolumeClaim and ephemeral (the claim the controller
//     manager's ephemeral-volume controller made for the pod): kubelet's
//     volume manager resolves the claim to its bound PV, read from a
//     [ClaimSource] the Sources implement, failing with its texts while
//     the claim is missing, not bound (Pending, Lost), being deleted, or
//     its PV does not point back at it (kubelet's "Unable to attach or
//     mount volumes: ..." event; the agent retries until the claim binds,
//     and skips a claim no container mounts, as kubelet does). A hostPath
//     PV is the host path, type checked as a hostPath volume; a local PV's
//     directory must exist and is bind-mounted at
//     <pod>/volumes/kubernetes.io~local-volume/<pv>, fsGroup applied on
//     the first pod's writable mount, as kubelet's local plugin does. readOnly comes from the claim volume (kubelet's
//     volume.Spec.ReadOnly: neither PV kind has its own). Errors name the
//     PV, as kubelet names a PV-backed volume. Other PV kinds, local block
//     devices and volumeMode Block are not supported.
//
//   - image (KEP-4639, GA and locked on in 1.37): the agent pulls the image
//     as the volume's pullPolicy says and gives its unpacked root
//     filesystem through an [ImageSource]; the volume is a read-only
//     overlayfs over it at <pod>/volumes/kubernetes.io~image/<name>, so
//     the image store counts it as in use. Read-only is the 1.37 API's
//     contract (ro; the 1.37 API text no longer promises noexec, and
//     kubelet passes the runtime no such option). A subPath must exist
//     in the image ([ErrImageSubPath], the runtime's error in kubelet).
//
// A volume with no source set is an emptyDir, as in kubelet. Any other source
// fails with `unsupported volume type "<json name>" in volume "<name>"`.
//
// The pod's securityContext.fsGroup is applied with upstream's
// volume.NewVolumeOwnership (lchown to the group; files g+rw, or g+r for the
// read-only configMap and secret; directories also setgid and g+x). An
// emptyDir gets it once, when it is created (kubelet skips a volume it marked
// ready), honouring fsGroupChangePolicy (upstream passes nil; a new emptyDir's
// root never matches, so both recurse). configMap and secret get it on every
// write, always recursively, as upstream does: OnRootMismatch would skip the
// files of each new timestamped directory.
//
//   - downwardAPI (upstream's downwardapi.CollectData) and projected
//     (configMap, secret, downwardAPI, serviceAccountToken,
//     clusterTrustBundle and podCertificate sources, merged as kubelet's
//     projected plugin merges them): written with [WriteAtomic] into a tmpfs, always
//     read-only, and rewritten on every pod update so that label and
//     annotation files follow the pod. Tokens come from a [TokenSource],
//     node allocatable from an [AllocatableSource] and trust anchors (by
//     name, or by signerName and labelSelector; optional) from a
//     [TrustBundleSource], which the agent backs with kubelet's own
//     ClusterTrustBundle manager (deduplicated PEM blocks, shuffled once
//     per process). podCertificate sources get their key and chain from a
//     [PodCertificateSource] (kubelet's podcertificate manager, in the
//     agent) and fail with its error until the certificate is issued.
//
// Errors of Setup read like kubelet's FailedMount events:
// `MountVolume.SetUp failed for volume "cfg" : configmap "x" not found`.
//
// # Caveats
//
//   - sizeLimit of an emptyDir on disk is no limit here: as kubelet,
//     pocketkube enforces it by eviction (internal/node/eviction), which
//     measures the volume with [Manager.EmptyDirUsage] every 10 s, so a pod
//     may write past it for that long. Only tmpfs sizes are hard limits.
//   - hugepages media and emptyDir.mode (alpha EmptyDirVolumeMode) are not
//     supported.
//   - As with kubelet's writer, a reader whose path walk resolved the old
//     ..data target just before a swap can get ENOENT (never a partial file)
//     while the old directory is removed; readers that must not see that
//     retry, or watch ..data. It is rare: about one read in 100,000 during
//     back-to-back swaps in TestWriteAtomicConcurrentReader.
//   - Setup and TeardownPod of the same pod are serialised by the Manager; two
//     Managers on one PodsDir are not supported.
package volume
