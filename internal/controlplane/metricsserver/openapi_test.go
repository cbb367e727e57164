package metricsserver

import (
	"maps"
	"slices"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	openapinamer "k8s.io/apiserver/pkg/endpoints/openapi"
	genericapiserver "k8s.io/apiserver/pkg/server"
	"k8s.io/kube-openapi/pkg/builder"
	"k8s.io/kube-openapi/pkg/common"
	"k8s.io/kube-openapi/pkg/validation/spec"
	kubeopenapi "k8s.io/kubernetes/pkg/generated/openapi"
	metricsv1beta1 "k8s.io/metrics/pkg/apis/metrics/v1beta1"
	"sigs.k8s.io/metrics-server/pkg/api"
)

func TestReachable(t *testing.T) {
	all := map[string]common.OpenAPIDefinition{
		"a.One":   {Dependencies: []string{"b.Two"}},
		"a.Three": {},
		"b.Two":   {Dependencies: []string{"c.Four", "x.Missing"}},
		"c.Four":  {Dependencies: []string{"b.Two"}},
		"c.Five":  {},
		"d.Six":   {Dependencies: []string{"c.Five"}},
	}
	for _, tc := range []struct {
		name  string
		seeds []string
		want  []string
	}{
		{"no seeds", nil, nil},
		{"seed without dependencies", []string{"a.Three"}, []string{"a.Three"}},
		{"dependencies transitively, cycles once, missing ones left out", []string{"a."}, []string{"a.One", "a.Three", "b.Two", "c.Four"}},
		{"several seeds", []string{"a.Three", "d."}, []string{"a.Three", "c.Five", "d.Six"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := slices.Sorted(maps.Keys(reachable(all, tc.seeds)))
			if !slices.Equal(got, tc.want) {
				t.Errorf("reachable(%v) = %v, want %v", tc.seeds, got, tc.want)
			}
		})
	}
}

// TestOpenAPIDefinitions: the cut-down definitions still build every
// model metrics-server serves, with everything they reference, and are a
// small part of the whole.
func TestOpenAPIDefinitions(t *testing.T) {
	ref := func(name string) spec.Ref { return spec.MustCreateRef("#/definitions/" + name) }
	defs := openAPIDefinitions(ref)
	whole := len(kubeopenapi.GetOpenAPIDefinitions(ref))
	t.Logf("%d of %d definitions", len(defs), whole)
	if len(defs) > whole/10 {
		t.Errorf("%d of %d definitions kept, want at most a tenth", len(defs), whole)
	}
	for name, def := range defs {
		for _, dep := range def.Dependencies {
			if _, ok := defs[dep]; !ok {
				t.Errorf("%s depends on %s, which is not kept", name, dep)
			}
		}
	}
	cfg := genericapiserver.DefaultOpenAPIConfig(openAPIDefinitions, openapinamer.NewDefinitionNamer(api.Scheme))
	names := []string{
		metricsv1beta1.NodeMetrics{}.OpenAPIModelName(), metricsv1beta1.NodeMetricsList{}.OpenAPIModelName(),
		metricsv1beta1.PodMetrics{}.OpenAPIModelName(), metricsv1beta1.PodMetricsList{}.OpenAPIModelName(),
		metav1.Status{}.OpenAPIModelName(), metav1.APIResourceList{}.OpenAPIModelName(), metav1.APIGroup{}.OpenAPIModelName(),
		metav1.WatchEvent{}.OpenAPIModelName(), metav1.DeleteOptions{}.OpenAPIModelName(), metav1.Table{}.OpenAPIModelName(),
	}
	swagger, err := builder.BuildOpenAPIDefinitionsForResources(cfg, names...)
	if err != nil {
		t.Fatalf("build the models metrics-server serves: %v", err)
	}
	for _, n := range names {
		if _, ok := swagger.Definitions[n]; !ok {
			t.Errorf("no definition of %s built", n)
		}
	}
}
