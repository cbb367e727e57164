// Package localpath provisions PersistentVolumes for the cluster's default
// StorageClass, local-path: a directory of the node that runs the pod, as
// k3s's and kind's local-path-provisioner do, under the same provisioner
// name (ProvisionerName, rancher.io/local-path), so that manifests and
// charts written for those clusters work unchanged.
//
// The controller is upstream's: sigs.k8s.io/sig-storage-lib-external-provisioner,
// the library every external provisioner is built on. It watches claims of
// classes with provisioner ProvisionerName and, once the scheduler has
// picked a node for a WaitForFirstConsumer claim
// (volume.kubernetes.io/selected-node), calls Provision; it calls Delete
// for a Released volume whose reclaim policy is Delete. What is ours is
// the [controller.Provisioner]:
//
//   - Provision makes the directory DIR/<pv name>_<namespace>_<claim name>
//     (mode 0777, as local-path-provisioner does, so that pods running as
//     any user can write) and returns a hostPath PV for it (type
//     DirectoryOrCreate) with the claim's capacity and access modes, the
//     class's reclaim policy, and a node affinity to the selected node,
//     which the scheduler then respects for every later pod of the claim.
//   - Delete removes the directory and everything in it. A Retain class
//     keeps it: the library never calls Delete for such a volume, and the
//     directory outlives its PV until an operator removes it.
//
// Names come from the API server, which has validated them as DNS names,
// but paths are built as if they were hostile: every directory is made and
// removed through an [os.Root] opened on DIR, which refuses a name that
// would leave DIR (a separator, "..", a symbolic link), and Delete refuses
// a PV whose path is not a direct child of DIR.
//
// # Caveats
//
// pocketkube runs the control plane and its one node in one process, so
// this controller makes and removes the directories itself, on the machine
// it runs on, and refuses a claim whose selected node is another one
// (Config.Node). A cluster of several nodes needs the node that owns the
// path to do that work: the controller would create the PV only, and each
// node agent would make the directory when it first mounts the volume (the
// PV's hostPath type DirectoryOrCreate already asks for that) and remove
// it when the controller marks the PV's directory for deletion (a helper
// pod pinned to the node, as local-path-provisioner runs, or a node-side
// controller over Released PVs with the node's affinity).
//
// Capacity is not enforced: a volume can fill the file system DIR is on,
// as with local-path-provisioner. Block volumes are refused (the library
// reports it as a ProvisioningFailed event).
package localpath
