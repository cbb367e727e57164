package metricsserver

import (
	"strings"

	"k8s.io/kube-openapi/pkg/common"
	kubeopenapi "k8s.io/kubernetes/pkg/generated/openapi"
)

// openAPISeeds are the model-name prefixes of what metrics-server's API
// server serves: the metrics.k8s.io types and apimachinery's (Status,
// APIResourceList, the list and watch machinery, version.Info), which are
// what metrics-server's own generated definitions hold.
var openAPISeeds = []string{"io.k8s.metrics.pkg.apis.metrics.", "io.k8s.apimachinery."}

// openAPIDefinitions is k8s.io/kubernetes' GetOpenAPIDefinitions cut down
// to openAPISeeds and what they depend on. The API server's OpenAPI
// config keeps the map it is given for the life of the process (the v3
// config holds it, the v2 builder too), and the whole map, every type of
// every API group, was 16 MB of the idle heap; metrics-server's models
// need a few dozen of its ~5000 definitions.
func openAPIDefinitions(ref common.ReferenceCallback) map[string]common.OpenAPIDefinition {
	return reachable(kubeopenapi.GetOpenAPIDefinitions(ref), openAPISeeds)
}

// reachable returns the definitions of all whose names start with one of
// seeds, and those they depend on, transitively.
func reachable(all map[string]common.OpenAPIDefinition, seeds []string) map[string]common.OpenAPIDefinition {
	out := map[string]common.OpenAPIDefinition{}
	var queue []string
	for name := range all {
		for _, s := range seeds {
			if strings.HasPrefix(name, s) {
				queue = append(queue, name)
				break
			}
		}
	}
	for len(queue) > 0 {
		name := queue[len(queue)-1]
		queue = queue[:len(queue)-1]
		if _, done := out[name]; done {
			continue
		}
		def, ok := all[name]
		if !ok {
			// Left for the OpenAPI builder to report, as it would
			// with the whole map.
			continue
		}
		out[name] = def
		queue = append(queue, def.Dependencies...)
	}
	return out
}
