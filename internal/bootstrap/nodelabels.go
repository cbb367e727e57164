package bootstrap

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
)

// ServerNodeLabels are the labels k3s gives a node that also runs the
// control plane. NodeRestriction forbids a kubelet to set node-role labels
// on itself, so the control plane sets them with its own credentials.
var ServerNodeLabels = map[string]string{
	"node-role.kubernetes.io/control-plane": "true",
	"node-role.kubernetes.io/master":        "true",
}

// labelServerNode waits for node to register, then adds ServerNodeLabels
// to it. It returns when the labels are set or ctx is done.
func labelServerNode(ctx context.Context, client kubernetes.Interface, node string) error {
	patch := []byte(`{"metadata":{"labels":{`)
	first := true
	for k, v := range ServerNodeLabels {
		if !first {
			patch = append(patch, ',')
		}
		first = false
		patch = fmt.Appendf(patch, "%q:%q", k, v)
	}
	patch = append(patch, "}}}"...)
	return wait.PollUntilContextCancel(ctx, retryInterval, true, func(ctx context.Context) (bool, error) {
		_, err := client.CoreV1().Nodes().Patch(ctx, node, types.StrategicMergePatchType, patch, metav1.PatchOptions{FieldManager: "pocketkube"})
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		return err == nil, nil
	})
}
