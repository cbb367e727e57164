// Package pki owns the cluster's certificates and keys in one directory: the
// cluster CA, the front-proxy CA, the API server's serving and kubelet-client
// certificates, the client certificates of the upstream identities
// (kubernetes-admin, system:kube-controller-manager, system:kube-scheduler;
// with a node: system:node:<name> and system:kube-proxy) and the
// service-account signing key pair.
//
// Ensure generates what is missing and keeps what is valid, so a cluster that
// restarts keeps its identity and every kubeconfig written earlier stays good.
// A leaf certificate is issued again when it is missing, unreadable, not
// signed by the current CA, close to expiry, or lacks a name the caller now
// asks for (a new --listen host, say). CAs and the service-account key are
// never replaced: doing so would invalidate every token and kubeconfig. A CA
// whose certificate or key alone is missing is an error (ErrCAIncomplete),
// not a reason to make a new one.
//
// Caveats: the directory is kept 0700 (made so when it is looser) and
// private keys are written 0600; every file is replaced by
// rename, so a crash leaves either the old file or the new one. The package
// does not lock the directory; its caller holds the data directory's lock.
package pki
