package runtime

import (
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

func rl(kv ...string) v1.ResourceList {
	out := v1.ResourceList{}
	for i := 0; i < len(kv); i += 2 {
		out[v1.ResourceName(kv[i])] = resource.MustParse(kv[i+1])
	}
	return out
}

func ctr(req, lim v1.ResourceList) v1.Container {
	return v1.Container{Name: "c", Resources: v1.ResourceRequirements{Requests: req, Limits: lim}}
}

// Numbers from kubelet's helpers_linux_test.go and kuberuntime_container_linux_test.go.
func TestContainerResources(t *testing.T) {
	tests := []struct {
		name string
		c    v1.Container
		want Resources
	}{
		{name: "no resources", c: ctr(nil, nil), want: Resources{CPUShares: 2, CPUPeriod: 100000}},
		{name: "cpu 250m request, 1250m limit", c: ctr(rl("cpu", "250m"), rl("cpu", "1250m")), want: Resources{CPUShares: 256, CPUQuota: 125000, CPUPeriod: 100000}},
		{name: "limit only defaults request", c: ctr(nil, rl("cpu", "500m", "memory", "128Mi")), want: Resources{CPUShares: 512, CPUQuota: 50000, CPUPeriod: 100000, MemoryLimit: 134217728}},
		{name: "tiny request is 2 shares", c: ctr(rl("cpu", "1m"), nil), want: Resources{CPUShares: 2, CPUPeriod: 100000}},
		{name: "tiny limit is 1000 quota", c: ctr(rl("cpu", "1m"), rl("cpu", "5m")), want: Resources{CPUShares: 2, CPUQuota: 1000, CPUPeriod: 100000}},
		{name: "two cpus", c: ctr(rl("cpu", "2"), rl("cpu", "2", "memory", "1Gi")), want: Resources{CPUShares: 2048, CPUQuota: 200000, CPUPeriod: 100000, MemoryLimit: 1 << 30}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ContainerResources(&tt.c); got != tt.want {
				t.Errorf("ContainerResources = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestMilliCPU(t *testing.T) {
	tests := []struct {
		milli  int64
		shares uint64
		quota  int64
	}{
		{0, 2, 0}, {1, 2, 1000}, {5, 5, 1000}, {9, 9, 1000}, {10, 10, 1000}, {200, 204, 20000},
		{250, 256, 25000}, {1000, 1024, 100000}, {1250, 1280, 125000}, {300000, 262144, 30000000},
	}
	for _, tt := range tests {
		if got := MilliCPUToShares(tt.milli); got != tt.shares {
			t.Errorf("MilliCPUToShares(%d) = %d, want %d", tt.milli, got, tt.shares)
		}
		if got := MilliCPUToQuota(tt.milli, 100000); got != tt.quota {
			t.Errorf("MilliCPUToQuota(%d) = %d, want %d", tt.milli, got, tt.quota)
		}
	}
}

func TestPodResources(t *testing.T) {
	pod := func(cs ...v1.Container) *v1.Pod { return &v1.Pod{Spec: v1.PodSpec{Containers: cs}} }
	tests := []struct {
		name string
		pod  *v1.Pod
		qos  string
		want Resources
	}{
		{name: "besteffort", pod: pod(ctr(nil, nil)), qos: "BestEffort", want: Resources{CPUShares: 2}},
		{name: "burstable no limits", pod: pod(ctr(rl("cpu", "100m", "memory", "64Mi"), nil)), qos: "Burstable", want: Resources{CPUShares: 102}},
		{name: "burstable with limits", pod: pod(ctr(rl("cpu", "100m", "memory", "100Mi"), rl("cpu", "200m", "memory", "200Mi"))), qos: "Burstable",
			want: Resources{CPUShares: 102, CPUQuota: 20000, CPUPeriod: 100000, MemoryLimit: 200 << 20}},
		{name: "burstable partial limits", pod: pod(ctr(rl("cpu", "100m"), rl("cpu", "200m", "memory", "200Mi")), ctr(rl("cpu", "100m"), nil)), qos: "Burstable",
			want: Resources{CPUShares: 204}},
		{name: "guaranteed", pod: pod(ctr(rl("cpu", "250m", "memory", "64Mi"), rl("cpu", "250m", "memory", "64Mi")), ctr(rl("cpu", "1", "memory", "64Mi"), rl("cpu", "1", "memory", "64Mi"))), qos: "Guaranteed",
			want: Resources{CPUShares: 1280, CPUQuota: 125000, CPUPeriod: 100000, MemoryLimit: 128 << 20}},
		{name: "init container max", pod: &v1.Pod{Spec: v1.PodSpec{
			InitContainers: []v1.Container{ctr(rl("cpu", "2", "memory", "1Gi"), rl("cpu", "2", "memory", "1Gi"))},
			Containers:     []v1.Container{ctr(rl("cpu", "1", "memory", "64Mi"), rl("cpu", "1", "memory", "64Mi"))},
		}}, qos: "Guaranteed", want: Resources{CPUShares: 2048, CPUQuota: 200000, CPUPeriod: 100000, MemoryLimit: 1 << 30}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := QOSClass(tt.pod); got != tt.qos {
				t.Errorf("QOSClass = %s, want %s", got, tt.qos)
			}
			if got := PodResources(tt.pod); got != tt.want {
				t.Errorf("PodResources = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestPodCgroupPath(t *testing.T) {
	for qos, want := range map[string]string{
		"Guaranteed": "/kubepods/podU", "Burstable": "/kubepods/burstable/podU", "BestEffort": "/kubepods/besteffort/podU", "": "/kubepods/besteffort/podU",
	} {
		if got := podCgroup("/kubepods", qos, "U"); got != want {
			t.Errorf("podCgroup(%q) = %s, want %s", qos, got, want)
		}
	}
	if got := sharesToWeight(1024); got != 39 {
		t.Errorf("sharesToWeight(1024) = %d, want 39 (runc)", got)
	}
}
