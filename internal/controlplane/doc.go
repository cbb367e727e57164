// Package controlplane starts and stops a Kubernetes control plane in this
// process, one server of the cluster (Config.Servers for several): storage (embedded etcd, or external endpoints), then
// kube-apiserver, and once it answers /readyz, kube-controller-manager and
// kube-scheduler. The upstream components are run by one adapter package
// each (apiserver, controllermanager, scheduler, etcd), the only places that
// know their flags.
//
// Run owns the data directory. It holds an exclusive lock on DIR/lock for as
// long as it runs, keeps the PKI in DIR/pki, etcd's data in DIR/etcd, the
// components' kubeconfigs in DIR/kubeconfigs, and writes the admin kubeconfig
// to DIR/kubeconfig once the API server is ready. Starting again on the same
// directory resumes the same cluster.
//
// Stopping is cancellation: Run stops the components in reverse order,
// giving each a bounded time, closes etcd and releases the lock.
//
// Caveats: the upstream components keep process-wide state, so Run may be
// called once per process.
package controlplane
