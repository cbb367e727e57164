package eviction

import (
	"context"
	"errors"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2/ktesting"
)

type fakeEvicter struct{ evicted map[string]string }

var _ Evicter = (*fakeEvicter)(nil)

func (f *fakeEvicter) Evict(_ context.Context, pod *v1.Pod, message string) {
	f.evicted[pod.Name] = message
}

func emptyDir(name, medium, limit string) v1.Volume {
	src := &v1.EmptyDirVolumeSource{Medium: v1.StorageMedium(medium)}
	if limit != "" {
		q := resource.MustParse(limit)
		src.SizeLimit = &q
	}
	return v1.Volume{Name: name, VolumeSource: v1.VolumeSource{EmptyDir: src}}
}

func TestSynchronize(t *testing.T) {
	tests := []struct {
		name    string
		volumes []v1.Volume
		usage   map[string]int64 // volume → bytes
		want    string           // the eviction message; "" for none
	}{
		{name: "under the limit", volumes: []v1.Volume{emptyDir("scratch", "", "1Mi")},
			usage: map[string]int64{"scratch": 1 << 20}},
		{name: "over the limit", volumes: []v1.Volume{emptyDir("scratch", "", "1Mi")},
			usage: map[string]int64{"scratch": 1<<20 + 4096}, want: `Usage of EmptyDir volume "scratch" exceeds the limit "1Mi". `},
		{name: "the first volume over its limit", volumes: []v1.Volume{emptyDir("a", "", "10Mi"), emptyDir("b", "", "500k"), emptyDir("c", "", "1k")},
			usage: map[string]int64{"a": 1 << 20, "b": 1 << 20, "c": 1 << 20}, want: `Usage of EmptyDir volume "b" exceeds the limit "500k". `},
		{name: "no sizeLimit", volumes: []v1.Volume{emptyDir("scratch", "", "")},
			usage: map[string]int64{"scratch": 1 << 40}},
		{name: "zero sizeLimit", volumes: []v1.Volume{emptyDir("scratch", "", "0")},
			usage: map[string]int64{"scratch": 1 << 20}},
		{name: "memory medium is the kernel's", volumes: []v1.Volume{emptyDir("shm", "Memory", "1Mi")},
			usage: map[string]int64{"shm": 2 << 20}},
		{name: "other volumes", volumes: []v1.Volume{{Name: "cfg", VolumeSource: v1.VolumeSource{ConfigMap: &v1.ConfigMapVolumeSource{}}}},
			usage: map[string]int64{"cfg": 1 << 40}},
		{name: "unmeasurable volume skipped", volumes: []v1.Volume{emptyDir("gone", "", "1k"), emptyDir("scratch", "", "1k")},
			usage: map[string]int64{"scratch": 1 << 20}, want: `Usage of EmptyDir volume "scratch" exceeds the limit "1k". `},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, ctx := ktesting.NewTestContext(t)
			pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "p", UID: types.UID("uid-1")}, Spec: v1.PodSpec{Volumes: tt.volumes}}
			ev := &fakeEvicter{evicted: map[string]string{}}
			m, err := New(Config{
				Pods: func() ([]*v1.Pod, error) { return []*v1.Pod{pod}, nil },
				EmptyDirUsage: func(uid, name string) (int64, error) {
					if uid != "uid-1" {
						t.Errorf("usage of pod %s", uid)
					}
					n, ok := tt.usage[name]
					if !ok {
						return 0, errors.New("no such volume")
					}
					return n, nil
				},
				Evicter: ev,
			})
			if err != nil {
				t.Fatal(err)
			}
			got, err := m.Synchronize(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if ev.evicted["p"] != tt.want || (tt.want == "") != (len(got) == 0) {
				t.Errorf("evicted %d pods, message %q; want %q", len(got), ev.evicted["p"], tt.want)
			}
		})
	}
}

func TestNewRequires(t *testing.T) {
	if _, err := New(Config{}); err == nil {
		t.Error("New without Pods, EmptyDirUsage and Evicter succeeded")
	}
}
