// Package token is a port of kubelet's token manager (pkg/kubelet/token):
// it requests the service account tokens that projected volumes hold
// (the TokenRequest API, with the node's credentials, which the Node
// authorizer allows for the node's own pods), caches them by request and
// pod, and says when each pod's tokens are due for a refresh: after 80 %
// of their lifetime or 24 h, up to 10 s early.
//
// It leaves writing the tokens into volumes to internal/node/volume, and
// the refresh itself to the agent, which syncs the pod at NextRefresh as
// kubelet's volume manager remounts. A failed refresh keeps serving the old
// token until it expires, as kubelet does.
package token
