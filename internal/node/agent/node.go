package agent

import (
	"context"
	"fmt"
	"net"
	goruntime "runtime"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	v1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/record"
	"k8s.io/component-helpers/apimachinery/lease"
	nodeutil "k8s.io/component-helpers/node/util"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"

	"github.com/pocketkube/pocketkube/internal/node/machine"
)

// As kubelet's defaults (KubeletConfiguration).
const (
	maxPods                   = 110
	nodeStatusUpdateFrequency = 10 * time.Second
	nodeStatusReportFrequency = 5 * time.Minute
	nodeLeaseDurationSeconds  = 40
	nodeLeaseNamespace        = "kube-node-lease"
	// Eviction thresholds that kubelet subtracts from capacity to get
	// allocatable: memory.available<100Mi and nodefs.available<10%.
	evictionHardMemory       = 100 << 20
	evictionHardNodefsFactor = 0.10
	// controllerManagedAttachAnnotation tells the attach/detach controller
	// that it, not the kubelet, attaches this node's volumes.
	controllerManagedAttachAnnotation = "volumes.kubernetes.io/controller-managed-attach-detach"
	betaOSLabel                       = "beta.kubernetes.io/os"
	betaArchLabel                     = "beta.kubernetes.io/arch"
)

// nodeInfo is what the node reports besides the machine.
type nodeInfo struct {
	name           string
	hostname       string
	ips            []net.IP
	port           int32
	kubeletVersion string
	runtimeVersion string
	machine        machine.Machine
}

// initialNode is the Node kubelet registers (pkg/kubelet/kubelet_node_status.go
// initialNode): well-known labels, the attach/detach annotation, status.
func initialNode(info nodeInfo, now time.Time) *v1.Node {
	node := &v1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name: info.name,
			Labels: map[string]string{
				v1.LabelHostname:   info.hostname,
				v1.LabelOSStable:   goruntime.GOOS,
				v1.LabelArchStable: goruntime.GOARCH,
				betaOSLabel:        goruntime.GOOS,
				betaArchLabel:      goruntime.GOARCH,
			},
			Annotations: map[string]string{controllerManagedAttachAnnotation: "true"},
		},
	}
	setNodeStatus(node, info, pressureState{}, now)
	return node
}

// pressureState is the eviction manager's view of the node.
type pressureState struct{ memory, disk, pid bool }

// pressureConditions are kubelet's MemoryPressure, DiskPressure and
// PIDPressure conditions for p (pkg/kubelet/nodestatus/setters.go), and
// the node event each one's transition records.
func pressureConditions(p pressureState) []struct {
	v1.NodeCondition
	event string
} {
	type cond = struct {
		v1.NodeCondition
		event string
	}
	mem := cond{v1.NodeCondition{Type: v1.NodeMemoryPressure, Status: v1.ConditionFalse, Reason: "KubeletHasSufficientMemory", Message: "kubelet has sufficient memory available"}, "NodeHasSufficientMemory"}
	if p.memory {
		mem = cond{v1.NodeCondition{Type: v1.NodeMemoryPressure, Status: v1.ConditionTrue, Reason: "KubeletHasInsufficientMemory", Message: "kubelet has insufficient memory available"}, "NodeHasInsufficientMemory"}
	}
	disk := cond{v1.NodeCondition{Type: v1.NodeDiskPressure, Status: v1.ConditionFalse, Reason: "KubeletHasNoDiskPressure", Message: "kubelet has no disk pressure"}, "NodeHasNoDiskPressure"}
	if p.disk {
		disk = cond{v1.NodeCondition{Type: v1.NodeDiskPressure, Status: v1.ConditionTrue, Reason: "KubeletHasDiskPressure", Message: "kubelet has disk pressure"}, "NodeHasDiskPressure"}
	}
	pid := cond{v1.NodeCondition{Type: v1.NodePIDPressure, Status: v1.ConditionFalse, Reason: "KubeletHasSufficientPID", Message: "kubelet has sufficient PID available"}, "NodeHasSufficientPID"}
	if p.pid {
		pid = cond{v1.NodeCondition{Type: v1.NodePIDPressure, Status: v1.ConditionTrue, Reason: "KubeletHasInsufficientPID", Message: "kubelet has insufficient PID available"}, "NodeHasInsufficientPID"}
	}
	return []cond{mem, disk, pid}
}

// setNodeStatus fills node.Status as kubelet's setters do
// (pkg/kubelet/nodestatus/setters.go), keeping condition transition times
// that did not change, and returns the events of the pressure conditions
// that changed (or are new), as kubelet's setters record them.
func setNodeStatus(node *v1.Node, info nodeInfo, p pressureState, now time.Time) (events []string) {
	m := info.machine
	capacity := v1.ResourceList{
		v1.ResourceCPU:              *resource.NewMilliQuantity(int64(m.NumCPU)*1000, resource.DecimalSI),
		v1.ResourceMemory:           *resource.NewQuantity(m.MemoryBytes, resource.BinarySI),
		v1.ResourceEphemeralStorage: *resource.NewQuantity(m.StorageBytes, resource.BinarySI),
		v1.ResourcePods:             *resource.NewQuantity(maxPods, resource.DecimalSI),
	}
	for _, size := range m.HugePageSizes {
		capacity[v1.ResourceName(v1.ResourceHugePagesPrefix+resource.NewQuantity(size, resource.BinarySI).String())] = *resource.NewQuantity(0, resource.BinarySI)
	}
	allocatable := capacity.DeepCopy()
	mem := allocatable[v1.ResourceMemory]
	mem.Sub(*resource.NewQuantity(evictionHardMemory, resource.BinarySI))
	allocatable[v1.ResourceMemory] = mem
	storage := allocatable[v1.ResourceEphemeralStorage]
	storage.Sub(*resource.NewQuantity(int64(float64(m.StorageBytes)*evictionHardNodefsFactor), resource.BinarySI))
	allocatable[v1.ResourceEphemeralStorage] = storage

	node.Status.Capacity = capacity
	node.Status.Allocatable = allocatable
	node.Status.Addresses = nil
	for _, ip := range info.ips {
		node.Status.Addresses = append(node.Status.Addresses, v1.NodeAddress{Type: v1.NodeInternalIP, Address: ip.String()})
	}
	node.Status.Addresses = append(node.Status.Addresses, v1.NodeAddress{Type: v1.NodeHostName, Address: info.hostname})
	node.Status.DaemonEndpoints.KubeletEndpoint.Port = info.port
	node.Status.NodeInfo = v1.NodeSystemInfo{
		MachineID:               m.MachineID,
		SystemUUID:              m.SystemUUID,
		BootID:                  m.BootID,
		KernelVersion:           m.KernelVersion,
		OSImage:                 m.OSImage,
		ContainerRuntimeVersion: info.runtimeVersion,
		KubeletVersion:          info.kubeletVersion,
		OperatingSystem:         goruntime.GOOS,
		Architecture:            goruntime.GOARCH,
	}
	nowT := metav1.NewTime(now)
	var want []v1.NodeCondition
	eventOf := map[v1.NodeConditionType]string{}
	for _, c := range pressureConditions(p) {
		want = append(want, c.NodeCondition)
		eventOf[c.Type] = c.event
	}
	want = append(want, v1.NodeCondition{Type: v1.NodeReady, Status: v1.ConditionTrue, Reason: "KubeletReady", Message: "kubelet is posting ready status"})
	var conditions []v1.NodeCondition
	for _, c := range want {
		c.LastHeartbeatTime = nowT
		c.LastTransitionTime = nowT
		changed := true
		for _, old := range node.Status.Conditions {
			if old.Type == c.Type && old.Status == c.Status {
				c.LastTransitionTime = old.LastTransitionTime
				changed = false
			}
		}
		if changed && eventOf[c.Type] != "" {
			events = append(events, eventOf[c.Type])
		}
		conditions = append(conditions, c)
	}
	// Conditions others own (e.g. NetworkUnavailable) stay.
	for _, old := range node.Status.Conditions {
		switch old.Type {
		case v1.NodeMemoryPressure, v1.NodeDiskPressure, v1.NodePIDPressure, v1.NodeReady:
		default:
			conditions = append(conditions, old)
		}
	}
	node.Status.Conditions = conditions
	return events
}

// nodeStatusChanged reports whether a status differs in more than
// heartbeat times: kubelet skips the update when nothing changed.
func nodeStatusChanged(a, b *v1.NodeStatus) bool {
	strip := func(s *v1.NodeStatus) *v1.NodeStatus {
		s = s.DeepCopy()
		for i := range s.Conditions {
			s.Conditions[i].LastHeartbeatTime = metav1.Time{}
		}
		return s
	}
	return !apiequality.Semantic.DeepEqual(strip(a), strip(b))
}

// nodeStatus registers the node and keeps its status and lease fresh.
type nodeStatus struct {
	client kubernetes.Interface
	info   nodeInfo
	clock  clock.Clock
	// pressure is the eviction manager; nil means no pressure.
	pressure Pressure
	// recorder records the node's events once the agent has one.
	recorder record.EventRecorder
	// last is the node as last written; only the run loop touches it.
	last       *v1.Node
	lastReport time.Time
}

// register creates the Node, or adopts an existing one and brings its
// labels and status up to date (kubelet's tryRegisterWithAPIServer).
func (n *nodeStatus) register(ctx context.Context) error {
	logger := klog.FromContext(ctx)
	node := initialNode(n.info, n.clock.Now())
	created, err := n.client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
	if err == nil {
		logger.Info("Registered node", "node", klog.KObj(created))
		n.last, n.lastReport = created, n.clock.Now()
		return nil
	}
	if !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("register node %s: %w", n.info.name, err)
	}
	existing, err := n.client.CoreV1().Nodes().Get(ctx, n.info.name, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("get node %s: %w", n.info.name, err)
	}
	updated := existing.DeepCopy()
	for k, v := range node.Labels {
		updated.Labels = setKey(updated.Labels, k, v)
	}
	updated.Annotations = setKey(updated.Annotations, controllerManagedAttachAnnotation, "true")
	if !apiequality.Semantic.DeepEqual(existing.ObjectMeta, updated.ObjectMeta) {
		if existing, err = n.client.CoreV1().Nodes().Update(ctx, updated, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("update node %s: %w", n.info.name, err)
		}
	}
	n.last = existing
	if err := n.update(ctx, true); err != nil {
		return err
	}
	logger.Info("Node already registered; status updated", "node", klog.KObj(existing))
	return nil
}

func setKey(m map[string]string, k, v string) map[string]string {
	if m == nil {
		m = map[string]string{}
	}
	m[k] = v
	return m
}

// update patches the node's status when it changed, or when
// nodeStatusReportFrequency passed since the last report.
func (n *nodeStatus) update(ctx context.Context, force bool) error {
	now := n.clock.Now()
	node := n.last.DeepCopy()
	var p pressureState
	if n.pressure != nil {
		p = pressureState{memory: n.pressure.IsUnderMemoryPressure(), disk: n.pressure.IsUnderDiskPressure(), pid: n.pressure.IsUnderPIDPressure()}
	}
	events := setNodeStatus(node, n.info, p, now)
	if !force && !nodeStatusChanged(&n.last.Status, &node.Status) && now.Sub(n.lastReport) < nodeStatusReportFrequency {
		return nil
	}
	updated, _, err := nodeutil.PatchNodeStatus(n.client.CoreV1(), types.NodeName(n.info.name), n.last, node)
	if err != nil {
		return fmt.Errorf("patch status of node %s: %w", n.info.name, err)
	}
	n.last, n.lastReport = updated, now
	if n.recorder != nil {
		// Kubelet's recordNodeStatusEvent, about its nodeRef (UID: the name).
		ref := &v1.ObjectReference{Kind: "Node", Name: n.info.name, UID: types.UID(n.info.name)}
		for _, e := range events {
			n.recorder.Eventf(ref, v1.EventTypeNormal, e, "Node %s status is now: %s", n.info.name, e)
		}
	}
	return nil
}

// run renews the lease and the status until ctx is done.
func (n *nodeStatus) run(ctx context.Context) {
	logger := klog.FromContext(ctx)
	leases := lease.NewController(n.clock, n.client, n.info.name, nodeLeaseDurationSeconds, nil,
		nodeStatusUpdateFrequency, n.info.name, nodeLeaseNamespace, n.setLeaseOwner(ctx))
	go leases.Run(ctx)
	wait.UntilWithContext(ctx, func(ctx context.Context) {
		if err := n.update(ctx, false); err != nil {
			logger.Error(err, "Updating node status")
		}
	}, nodeStatusUpdateFrequency)
}

// setLeaseOwner makes the Node own its Lease, so deleting the Node deletes
// it (kubelet's SetNodeOwnerFunc).
func (n *nodeStatus) setLeaseOwner(ctx context.Context) lease.ProcessLeaseFunc {
	return func(l *coordinationv1.Lease) error {
		if len(l.OwnerReferences) > 0 {
			return nil
		}
		node, err := n.client.CoreV1().Nodes().Get(ctx, n.info.name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		l.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: node.Name, UID: node.UID}}
		return nil
	}
}
