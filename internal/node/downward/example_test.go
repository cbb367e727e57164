package downward_test

import (
	"context"
	"fmt"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/pocketkube/pocketkube/internal/node/downward"
)

// noObjects is an ObjectGetter for pods that reference no ConfigMaps or
// Secrets.
type noObjects struct{}

func (noObjects) ConfigMap(_ context.Context, ns, name string) (*v1.ConfigMap, error) {
	return nil, fmt.Errorf("unexpected read of ConfigMap %s/%s", ns, name)
}

func (noObjects) Secret(_ context.Context, ns, name string) (*v1.Secret, error) {
	return nil, fmt.Errorf("unexpected read of Secret %s/%s", ns, name)
}

func ExampleEnvironment() {
	pod := &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "downward"},
		Spec: v1.PodSpec{EnableServiceLinks: ptr.To(true), Containers: []v1.Container{{
			Name: "main",
			Env: []v1.EnvVar{
				{Name: "POD_NAME", ValueFrom: &v1.EnvVarSource{FieldRef: &v1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.name"}}},
				{Name: "POD_IPS", ValueFrom: &v1.EnvVarSource{FieldRef: &v1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "status.podIPs"}}},
				{Name: "MEMORY_LIMIT_MI", ValueFrom: &v1.EnvVarSource{ResourceFieldRef: &v1.ResourceFieldSelector{Resource: "limits.memory", Divisor: resource.MustParse("1Mi")}}},
			},
		}}},
	}
	env, err := downward.Environment(context.Background(), downward.Input{
		Pod:       pod,
		Container: &pod.Spec.Containers[0],
		PodIPs:    []string{"10.244.0.5", "fd00::5"},
		// No memory limit: the node's allocatable is the limit.
		Allocatable: v1.ResourceList{v1.ResourceMemory: resource.MustParse("8Gi")},
		Objects:     noObjects{},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, e := range env {
		fmt.Printf("%s=%s\n", e.Name, e.Value)
	}
	// Output:
	// POD_NAME=downward
	// POD_IPS=10.244.0.5,fd00::5
	// MEMORY_LIMIT_MI=8192
}
