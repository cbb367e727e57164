package downward

import (
	"fmt"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pocketkube/pocketkube/internal/golden"
)

func resources(kv ...string) v1.ResourceList {
	l := v1.ResourceList{}
	for i := 0; i < len(kv); i += 2 {
		l[v1.ResourceName(kv[i])] = resource.MustParse(kv[i+1])
	}
	return l
}

// testAllocatable is a node's allocatable as kubelet reports it: cpu in
// cores, memory in Ki, ephemeral-storage in bytes.
var testAllocatable = resources("cpu", "2", "memory", "8025436Ki", "ephemeral-storage", "94580335255", "pods", "110", "hugepages-2Mi", "64Mi")

// resourcePod has a container with every resource set (main), one with no
// limits and a zero cpu limit (nolimits), and an init container without
// limits.
func resourcePod() *v1.Pod {
	return &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "res"},
		Spec: v1.PodSpec{
			InitContainers: []v1.Container{{Name: "init"}},
			Containers: []v1.Container{
				{Name: "main", Resources: v1.ResourceRequirements{
					Requests: resources("cpu", "15m", "memory", "100Ki", "ephemeral-storage", "1Gi", "hugepages-2Mi", "4Mi", "hugepages-1Gi", "2Gi"),
					Limits:   resources("cpu", "100m", "memory", "20Mi", "hugepages-2Mi", "4Mi", "hugepages-1Gi", "2Gi"),
				}},
				{Name: "nolimits", Resources: v1.ResourceRequirements{
					Requests: resources("cpu", "250m", "memory", "1500M"),
					Limits:   resources("cpu", "0"),
				}},
			},
		},
	}
}

// TestResourceValueGolden pins resourceFieldRef values: the quantity
// divided by the divisor and rounded up (kubelet's
// convertResource*ToString, math.Ceil on float64), cpu in millicores, and
// unset or zero cpu, memory and ephemeral-storage limits read as the
// node's allocatable (or the pod-level limit). Each golden line is
// "container  selector  divisor  value".
func TestResourceValueGolden(t *testing.T) {
	type row struct {
		container string // "" for c itself
		resource  string
		divisors  []string // "" is an unset divisor
	}
	cpu := []string{"", "1", "1m", "100m"}
	mem := []string{"", "1", "1Ki", "1Mi", "1Gi"}
	for _, tc := range []struct {
		name string
		pod  func() *v1.Pod
		c    string
		rows []row
	}{
		{name: "container", pod: resourcePod, c: "main", rows: []row{
			{"", "requests.cpu", cpu},
			{"", "limits.cpu", cpu},
			{"", "requests.memory", mem},
			{"", "limits.memory", mem},
			{"", "requests.ephemeral-storage", []string{"1", "1Mi", "1Gi"}},
			{"", "limits.ephemeral-storage", []string{"1", "1Mi", "1Gi"}},
			{"", "requests.hugepages-2Mi", []string{"1", "1Mi", "2Mi"}},
			{"", "limits.hugepages-2Mi", []string{"1", "1Mi", "2Mi"}},
			{"", "requests.hugepages-1Gi", []string{"1", "1Mi", "1Gi"}},
			{"", "limits.hugepages-1Gi", []string{"1", "1Mi", "1Gi"}},
		}},
		{name: "unset-limits", pod: resourcePod, c: "main", rows: []row{
			{"nolimits", "requests.cpu", []string{"1", "1m", "100m"}},
			{"nolimits", "limits.cpu", []string{"1", "1m", "100m"}},
			{"nolimits", "requests.memory", []string{"1", "1Mi", "1Gi"}},
			{"nolimits", "limits.memory", []string{"1", "1Ki", "1Mi", "1Gi"}},
			{"nolimits", "limits.ephemeral-storage", []string{"1", "1Gi"}},
			{"nolimits", "limits.hugepages-2Mi", []string{"1"}},
			{"init", "limits.cpu", []string{"1m"}},
			{"init", "limits.memory", []string{"1"}},
			{"main", "limits.cpu", []string{"1m"}},
		}},
		{name: "unset-limits-self", pod: resourcePod, c: "nolimits", rows: []row{
			{"", "limits.cpu", []string{"1m"}},
			{"", "limits.memory", []string{"1Mi"}},
		}},
		{name: "unset-limits-init-self", pod: resourcePod, c: "init", rows: []row{
			{"", "limits.cpu", []string{"1m"}},
			{"", "limits.memory", []string{"1Mi"}},
		}},
		{name: "pod-level-limits", c: "c", pod: func() *v1.Pod {
			return &v1.Pod{Spec: v1.PodSpec{
				Resources:  &v1.ResourceRequirements{Limits: resources("cpu", "500m", "memory", "64Mi", "ephemeral-storage", "2Gi")},
				Containers: []v1.Container{{Name: "c"}, {Name: "d", Resources: v1.ResourceRequirements{Limits: resources("memory", "16Mi")}}},
			}}
		}, rows: []row{
			{"", "limits.cpu", []string{"1m"}},
			{"", "limits.memory", []string{"1Mi"}},
			{"", "limits.ephemeral-storage", []string{"1Gi"}},
			{"d", "limits.cpu", []string{"1m"}},
			{"d", "limits.memory", []string{"1Mi"}},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pod := tc.pod()
			c := findContainer(pod, tc.c)
			var b strings.Builder
			for _, r := range tc.rows {
				for _, d := range r.divisors {
					fs := &v1.ResourceFieldSelector{ContainerName: r.container, Resource: r.resource}
					if d != "" {
						fs.Divisor = resource.MustParse(d)
					}
					got, err := resourceValue(fs, pod, c, testAllocatable)
					if err != nil {
						t.Fatalf("%+v: %v", fs, err)
					}
					name, div := r.container, d
					if name == "" {
						name = tc.c
					}
					if div == "" {
						div = "unset"
					}
					fmt.Fprintf(&b, "%s\t%s\t%s\t%s\n", name, r.resource, div, got)
				}
			}
			golden.Check(t, "resources/"+tc.name+".golden", []byte(b.String()))
		})
	}
	// The pod and container are read, never written.
	pod := resourcePod()
	if _, err := resourceValue(&v1.ResourceFieldSelector{Resource: "limits.memory"}, pod, &pod.Spec.Containers[1], testAllocatable); err != nil {
		t.Fatal(err)
	}
	if l := pod.Spec.Containers[1].Resources.Limits; len(l) != 1 || !l.Cpu().IsZero() {
		t.Errorf("container limits changed to %v", l)
	}
}

func TestResourceValueErrors(t *testing.T) {
	pod := resourcePod()
	for _, tc := range []struct {
		name string
		fs   v1.ResourceFieldSelector
		want string
	}{
		{name: "extended resource", fs: v1.ResourceFieldSelector{Resource: "limits.nvidia.com/gpu"}, want: "unsupported container resource : limits.nvidia.com/gpu"},
		{name: "unknown container", fs: v1.ResourceFieldSelector{ContainerName: "nope", Resource: "limits.cpu"}, want: "container nope not found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := resourceValue(&tc.fs, pod, &pod.Spec.Containers[0], testAllocatable)
			if err == nil || err.Error() != tc.want {
				t.Errorf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

func findContainer(pod *v1.Pod, name string) *v1.Container {
	for i := range pod.Spec.Containers {
		if pod.Spec.Containers[i].Name == name {
			return &pod.Spec.Containers[i]
		}
	}
	for i := range pod.Spec.InitContainers {
		if pod.Spec.InitContainers[i].Name == name {
			return &pod.Spec.InitContainers[i]
		}
	}
	return nil
}
