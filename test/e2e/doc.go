// Package e2e tests the real pocketkube binary with the real kubectl, curl
// and client-go. The tests carry the e2e build tag:
//
//	POCKETKUBE_BIN=$PWD/bin/pocketkube go test -tags e2e ./test/e2e/...
//
// To run them with crun as the OCI runtime, point POCKETKUBE_BIN at a
// script that adds the flag to `up` and `agent`:
// `case "$1" in up|agent) exec BIN "$@" --oci-runtime crun;; esac; exec BIN "$@"`.
//
// TestMain (with framework.NewEnv) builds the binary when POCKETKUBE_BIN is
// unset, makes an address pods can reach (framework.ListenAddress), starts
// one shared cluster in a temporary directory on free ports of it, and
// stops it after the tests.
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
//	agent_lifecycle_test.go  a server and two agents: DaemonSet, topology spread, cordon, drain under a PDB, kill -9 of an
//	                         agent (NotReady, unreachable taints, pods evicted and replaced), kubectl delete node (podgc)
//	apiaccess_test.go        the API server from inside pods: curl through the kubernetes Service, ambassadors (walkthrough 4-5)
//	clients_test.go          client libraries (client-go, Python, Node) on the host and client-go in a pod
//	controllers_test.go      controller manager and scheduler: namespaces' defaults, Jobs
//	debug_test.go            kubectl debug: ephemeral containers (--target, -it, never restarted), upstream's
//	                         ephemeral_containers.go specs, --copy-to, node/NAME
//	diskfull_test.go         etcd's filesystem filled: writes refused with "database space exceeded", reads served,
//	                         writes back once space is freed, nothing acknowledged lost across a restart
//	dns_test.go              cluster DNS records and pods' resolv.conf; no open resolver for strangers
//	downward_test.go         Downward API: env, volume, projected volume, the walkthrough's manifests
//	exec_test.go             kubectl exec (also -it on a terminal, -i with stdin left open) and attach
//	expansion_test.go        $(VAR) expansion in env, command and subPathExpr
//	pressure_test.go         node pressure (--eviction-hard): DiskPressure (False again after a restart with the defaults) and
//	                         MemoryPressure with kubelet's reasons; pods refused
//	                         under them; a Guaranteed pod evicted with kubelet's message and DisruptionTarget
//	exhaustion_test.go       resource exhaustion: a fork bomb stops at --pod-max-pids; emptyDir sizeLimit eviction;
//	                         medium: Memory emptyDir sizes
//	hostport_test.go         hostPort on the node address; a clash leaves the second pod Pending
//	images_test.go           images: pull secrets against a private registry, the offline chapter images, re-import under running pods
//	imagegc_test.go          image GC under imagefs pressure on a small image filesystem: unused images go, no pod evicted
//	imagestore_test.go       the image store against hostile images: poisoned archive blobs, /etc/passwd links out of the image
//	join_test.go             joining: kubeadm's token discovery and kubelet's TLS bootstrap with DIR/node-token
//	kubectl_test.go          kubectl against the cluster; pocketkube proxy against kubectl proxy
//	lifecycle_test.go        `pocketkube up`: restart, second up refused, bad flags, external etcd, Ctrl-C early after up,
//	                         --node-name, --kubelet-port, --cluster-dns; an existing data dir (private dirs made
//	                         0700, logs of deleted pods removed, a lost CA key refused)
//	localpath_test.go        the default StorageClass local-path: WaitForFirstConsumer, provisioned hostPath PVs under
//	                         DATA_DIR/storage, data across pods, Delete and Retain; a StatefulSet without a class;
//	                         data across `up` restarts; --disable storage removes the class
//	localpath_nodes_test.go  local-path on several nodes: a claim of a pod on a joined agent provisioned by that node in
//	                         its DATA_DIR/storage and deleted there, node credentials confined to their own PVs; with
//	                         three servers (TestServers), one servicelb leads (its Lease) and server-2's claim is its own
//	logs_test.go             kubectl logs: follow, previous, containers, tail, since, limit
//	metrics_test.go          kubelet /metrics, a busy pod's /metrics/resource and /metrics/cadvisor (parsed with expfmt:
//	                         growing CPU counter, working set, CPU quota, pod and machine series) through the node
//	                         proxy; 401 without credentials; healthz on 127.0.0.1:10248
//	network_test.go          pod networking: localhost between containers, pod to pod, port-forward
//	netpol_test.go           NetworkPolicy, upstream's one-node netpol cases: default-deny ingress and egress, podSelector,
//	                         namespaceSelector (and both), ipBlock with except, ports, named ports, endPort, egress to DNS;
//	                         the node still reaches its pods; traffic flows again once a policy is deleted
//	node_lifecycle_test.go   the node across Ctrl-C and kill -9 of `up`, and the API server out of its reach
//	node_test.go             the Node object, its lease and labels
//	pods_test.go             pod lifecycle: restart policies, termination messages, bad inputs, OOM, deletion
//	reboot_test.go           a reboot (sandboxes and shims gone) resumes pods with SandboxChanged; a killed shim's
//	                         container restarts with exit 255 Unknown
//	resources_test.go        CPU and memory limits as the container reads them in its cgroup
//	resize_test.go           in-place pod resize: cgroups from inside, RestartContainer policy, memory limit below
//	                         usage (Error), Deferred beside another pod and retried, beyond allocatable refused
//	probes_test.go           probes and lifecycle hooks; exec probes' output and time bounded
//	rest_test.go             the REST API through pocketkube proxy, authn and TLS
//	seccomp_test.go          seccompProfile RuntimeDefault and Localhost seen from inside; AppArmor refused as kubelet
//	security_test.go         securityContext: users, capabilities, read-only root, privileged; every listening port
//	                         authenticated; the kubelet API's 401s and 403s, and the
//	                         API server verifies its serving certificate;
//	                         sysctls, runtimeClassName, procMount, shareProcessNamespace
//	servers_test.go          three servers (up --cluster-init, up --server) in network namespaces: writes through each read
//	                         through the others; kill -9 one, the others take writes, it rejoins as the same member;
//	                         kill two, writes refused (no quorum), nothing acknowledged lost; a wrong certificate key refused;
//	                         a clean stop removes the member, started again it rejoins as a new one (the first too);
//	                         --cluster-init on a plain up's data dir keeps its objects and a second server joins
//	serviceaccounts_test.go  service account tokens and admission
//	sidecar_test.go          native sidecars (hook target, completion, restarts, termination order); init
//	                         container statuses; termination messages (upstream runtime.go)
//	services_test.go         Services: ClusterIP, NodePort, no endpoints, nftables rules; spec updates, named
//	                         targetPorts, session affinity; LoadBalancer addresses and port clashes (servicelb)
//	storage_test.go          persistentVolumeClaim volumes on hostPath and local PVs (node affinity, WaitForFirstConsumer),
//	                         kubelet's events for missing and unbound claims, generic ephemeral volumes,
//	                         StatefulSet volumeClaimTemplates keeping data across pod deletion; image volumes
//	                         (upstream's e2e_node ImageVolume cases); projected clusterTrustBundle sources
//	                         (upstream's conformance cases); a StatefulSet's local PV and image volume across
//	                         Ctrl-C (mounts gone, data kept) and a restart
//	subpath_test.go          subPath against symlink swaps and links out of the volume; configMap and emptyDir subPaths;
//	                         the bind mounts go with Ctrl-C
//	volumes_test.go          init containers and volumes (emptyDir, configMap, secret, hostPath); FailedMount
//	helpers_test.go          podYAML (the manifest kubectl-applied pods build on), busyboxNamespace
//	top_test.go              /stats/summary with and without nodes/stats; kubectl top node and pod --containers through
//	                         metrics-server (metrics.k8s.io); an HPA on CPU utilization scales a busy Deployment up;
//	                         --disable metrics removes the APIService
//	testpods_test.go         busybox pods and checks of the mount, resource, hostPort, Service and kubelet API tests
package e2e
