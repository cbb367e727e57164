// Package e2e tests the real pocketkube binary with the real kubectl, curl
// and client-go. The tests carry the e2e build tag:
//
//	POCKETKUBE_BIN=$PWD/bin/pocketkube go test -tags e2e ./test/e2e/...
//
// TestMain builds the binary when POCKETKUBE_BIN is unset, makes an address
// pods can reach (framework.ListenAddress), starts one shared cluster in a
// temporary directory on free ports of it, and stops it after the tests.
// Tests that need a cluster of their own (restart, stop, external etcd)
// start one with StartCluster. The helpers (test/framework) are shared
// with the benchmarks in bench/.
//
// Tests that only add objects of their own (their own namespace, or
// names no other test uses) call t.Parallel(): go test runs them after
// the others, so they never overlap a test that restarts the cluster,
// makes every service account cluster-admin (apiaccess) or reads
// host-wide state (nftables, processes).
//
// One file per feature:
//
//	apiaccess_test.go        the API server from inside pods: curl through the kubernetes Service, ambassadors (walkthrough 4-5)
//	clients_test.go          client libraries (client-go, Python, Node) on the host and client-go in a pod
//	controllers_test.go      controller manager and scheduler: namespaces' defaults, Jobs
//	datadir_test.go          an existing data dir: private dirs made 0700, logs of deleted pods removed, a lost CA key refused
//	dns_test.go              cluster DNS records and pods' resolv.conf
//	downward_test.go         Downward API: env, volume, projected volume, the walkthrough's manifests
//	exec_test.go             kubectl exec (also -it on a terminal) and attach
//	expansion_test.go        $(VAR) expansion in env, command and subPathExpr
//	images_test.go           images: pull secrets against a private registry, the offline chapter images
//	kubectl_test.go          kubectl against the cluster; pocketkube proxy against kubectl proxy
//	kubelet_serving_test.go  the API server verifies the kubelet's serving certificate (no impostor kubelet)
//	lifecycle_test.go        `pocketkube up`: restart, second up refused, bad flags, external etcd
//	logs_test.go             kubectl logs: follow, previous, containers, tail, since, limit
//	network_test.go          pod networking: localhost between containers, pod to pod, port-forward
//	node_lifecycle_test.go   the node across Ctrl-C and kill -9 of `up`
//	node_test.go             the Node object, its lease and labels
//	pods_test.go             pod lifecycle: restart policies, termination messages, bad inputs, OOM, deletion
//	probes_test.go           probes and lifecycle hooks
//	rest_test.go             the REST API through pocketkube proxy, authn and TLS
//	security_test.go         securityContext: users, capabilities, read-only root, privileged
//	serviceaccounts_test.go  service account tokens and admission
//	services_test.go         Services: ClusterIP, NodePort, no endpoints, nftables rules
//	volumes_test.go          init containers and volumes (emptyDir, configMap, secret, hostPath)
//	helpers_test.go          wrappers kept for the older files; new code calls test/framework
package e2e
