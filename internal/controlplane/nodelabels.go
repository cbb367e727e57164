package controlplane

import (
	"context"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// ServerNodeLabels are the labels k3s gives a node that also runs the
// control plane. NodeRestriction forbids a kubelet to set node-role labels
// on itself, so the control plane sets them with its own credentials.
var ServerNodeLabels = map[string]string{
	"node-role.kubernetes.io/control-plane": "true",
	"node-role.kubernetes.io/master":        "true",
}

// LabelServerNode waits for node to register, then adds ServerNodeLabels
// to it with the admin credentials in kubeconfig. It returns when the
// labels are set or ctx is done.
func LabelServerNode(ctx context.Context, kubeconfig, node string) error {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return fmt.Errorf("load %s: %w", kubeconfig, err)
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
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
	return wait.PollUntilContextCancel(ctx, 200*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		_, err := client.CoreV1().Nodes().Patch(ctx, node, types.StrategicMergePatchType, patch, metav1.PatchOptions{FieldManager: "pocketkube"})
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		return err == nil, nil
	})
}
