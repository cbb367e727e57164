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
// # One provisioner per node
//
// Every node runs this controller for itself (internal/node runs it beside
// the agent, in `up` and in `pocketkube agent` alike), with the node's own
// credentials, over its own DIR/storage (Config.Node, Config.Dir). The
// library asks a provisioner first whether a claim is its to provision
// ([controller.Qualifier]) and whether a released PV is its to delete
// ([controller.DeletionGuard]); this one answers yes only for claims whose
// selected node is Config.Node and for PVs whose node affinity names it.
// So exactly one controller acts on each claim and each PV, whatever the
// number of nodes and servers, without a lease; the others leave it
// without an event or an API call. The directory is made and removed on
// the machine that holds it, by the process that mounts it, as
// local-path-provisioner's helper pods do on theirs, without the helper
// pod (and the image it needs on every node).
//
// The alternative, one leader-elected provisioner on the servers that
// makes the PV only, with each node making the directory at its first
// mount and removing it behind a finalizer, needs the same grant to nodes
// (watch PVs, write their finalizers) plus a protocol of our own between
// the two halves; this design keeps the library's own protocol end to end.
//
// The Node authorizer lets a node get only the PVs and claims of its own
// pods, so the server binds group system:nodes to a ClusterRole that adds
// what the library needs (internal/bootstrap, NodesLocalPathRoleName):
// get, list and watch claims and StorageClasses; get, list, watch, create
// and delete PersistentVolumes. A ValidatingAdmissionPolicy
// (NodesLocalPathPolicyName) confines the PV writes: a node may create and
// delete only PVs whose node affinity is itself, so it cannot make a
// hostPath PV of another node's file system nor delete another node's
// volumes (TestLocalPathAgentNode checks both). Both are made only while
// the server serves storage (`up --disable storage` deletes them, so that
// a provisioner of the user's under the same name is left alone), and Run
// waits until the grant is there. What remains wider than the Node
// authorizer: a node's credentials read every claim's spec (names, sizes,
// no data), and a compromised node could offer PVs of its own machine to
// pending claims that match them, drawing their pods to itself. k3s runs
// local-path-provisioner with a service account of wider powers (any PV)
// in a pod; pocketkube's nodes are machines the cluster's owner joined
// with the cluster's token. A cluster that needs nodes confined to their
// own pods' objects should use `up --disable storage` and a CSI driver.
//
// Claims no node was selected for (a class with volumeBindingMode
// Immediate) follow Config.Unselected: the node of a single server
// provisions them on itself, as it did before nodes could join; the nodes
// of several servers each refuse them with a ProvisioningFailed event
// ("use a StorageClass with volumeBindingMode WaitForFirstConsumer"), as
// local-path-provisioner refuses a claim without a node; joined nodes
// leave them to the servers.
//
// Names come from the API server, which has validated them as DNS names,
// but paths are built as if they were hostile: every directory is made and
// removed through an [os.Root] opened on DIR, which refuses a name that
// would leave DIR (a separator, "..", a symbolic link), and Delete refuses
// a PV whose path is not a direct child of DIR.
//
// # Caveats
//
// A released PV whose node is gone (deleted, or never coming back) keeps
// its Delete reclaim policy waiting: no provisioner deletes it, as none
// would with local-path-provisioner's helper pod, which cannot be
// scheduled there; delete the PV by hand. A server run with
// `--disable-agent` has no node, hence no provisioner: with several
// servers of that kind and no server node, claims for no node stay
// Pending without an event. An agent that started while the server served
// storage keeps its provisioner running after a restart of the server
// with `--disable storage`; its requests are then refused (403) until it
// is restarted too.
//
// Capacity is not enforced: a volume can fill the file system DIR is on,
// as with local-path-provisioner. Block volumes are refused (the library
// reports it as a ProvisioningFailed event).
package localpath
