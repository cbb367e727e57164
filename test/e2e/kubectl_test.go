//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pocketkube/pocketkube/test/framework"
)

// forEachKubectl runs f as a subtest for every kubectl version, skipping (and
// saying so) a version whose binary this machine lacks.
func forEachKubectl(t *testing.T, f func(t *testing.T, v string)) {
	for _, v := range framework.KubectlVersions {
		t.Run("kubectl-"+v, func(t *testing.T) {
			if _, err := os.Stat(filepath.Join(framework.KubectlDir, "kubectl."+v)); err != nil {
				t.Skipf("kubectl %s is not installed at %s", v, framework.KubectlDir)
			}
			f(t, v)
		})
	}
}

var ansi = regexp.MustCompile("\x1b\\[[0-9;]*m")

// Walkthrough 3.1.
func TestKubectlClusterInfo(t *testing.T) {
	t.Parallel()
	forEachKubectl(t, func(t *testing.T, v string) {
		out, err := shared.Kubectl(t.Context(), v, "cluster-info")
		if err != nil {
			t.Fatal(err)
		}
		// kubectl 1.27 colours its output even when it is not a terminal.
		out = ansi.ReplaceAllString(out, "")
		want := "Kubernetes control plane is running at " + shared.Server
		if !strings.Contains(out, want) {
			t.Errorf("cluster-info:\n%s\nwant it to contain %q", out, want)
		}
	})
}

func TestKubectlVersionAndNamespaces(t *testing.T) {
	t.Parallel()
	forEachKubectl(t, func(t *testing.T, v string) {
		ctx := t.Context()
		out, err := shared.Kubectl(ctx, v, "version", "-o", "json")
		if err != nil {
			t.Fatal(err)
		}
		var ver struct {
			ServerVersion struct{ GitVersion, Major, Minor string }
		}
		if err := json.Unmarshal([]byte(out), &ver); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		if ver.ServerVersion.GitVersion != "v1.37.2" || ver.ServerVersion.Major != "1" || ver.ServerVersion.Minor != "37" {
			t.Errorf("server version = %+v", ver.ServerVersion)
		}
		out, err = shared.Kubectl(ctx, v, "get", "ns", "-o", "name")
		if err != nil {
			t.Fatal(err)
		}
		for _, ns := range []string{"namespace/default", "namespace/kube-node-lease", "namespace/kube-public", "namespace/kube-system"} {
			if !strings.Contains(out, ns+"\n") {
				t.Errorf("get ns lacks %s:\n%s", ns, out)
			}
		}
	})
}

// Walkthrough 3.3 with kubectl get --raw, and the documents client
// libraries are generated from (6.3).
func TestKubectlGetRaw(t *testing.T) {
	t.Parallel()
	forEachKubectl(t, func(t *testing.T, v string) {
		ctx := t.Context()
		tests := []struct {
			path string
			want []string
		}{
			{"/apis/batch/v1", []string{`"kind":"APIResourceList"`, `"name":"jobs"`}},
			{"/openapi/v2", []string{`"swagger":"2.0"`, `"io.k8s.api.batch.v1.Job"`}},
			{"/openapi/v3", []string{`"paths"`, `"apis/batch/v1"`, `"api/v1"`}},
			{"/openapi/v3/apis/batch/v1", []string{`"openapi":"3.0.0"`, `"io.k8s.api.batch.v1.Job"`}},
			{"/.well-known/openid-configuration", []string{`"issuer":"https://kubernetes.default.svc.cluster.local"`, `"jwks_uri":`, `"RS256"`}},
			{"/openid/v1/jwks", []string{`"keys":[{`, `"alg":"RS256"`, `"use":"sig"`}},
			{"/version", []string{`"gitVersion": "v1.37.2"`}},
			{"/readyz", []string{"ok"}},
			{"/livez?verbose", []string{"[+]etcd ok", "livez check passed"}},
		}
		for _, tt := range tests {
			out, err := shared.Kubectl(ctx, v, "get", "--raw", tt.path)
			if err != nil {
				t.Errorf("get --raw %s: %v", tt.path, err)
				continue
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("get --raw %s lacks %s:\n%.400s", tt.path, w, out)
				}
			}
		}
	})
}

// jobYAML is the walkthrough's Job (name, image): the image is
// batchJobImage's luksa/batch-job, from a registry the test starts.
const jobYAML = `apiVersion: batch/v1
kind: Job
metadata:
  name: %s
spec:
  template:
    metadata:
      labels:
        app: batch-job
    spec:
      restartPolicy: OnFailure
      containers:
      - name: main
        image: %s
`

// Walkthrough 3.4: the object at the REST path is the one kubectl shows.
func TestKubectlJobMatchesREST(t *testing.T) {
	t.Parallel()
	image := batchJobImage(t)
	forEachKubectl(t, func(t *testing.T, v string) {
		ctx := t.Context()
		name := "my-job-" + strings.ReplaceAll(v, ".", "-")
		if _, err := shared.KubectlStdin(ctx, v, fmt.Sprintf(jobYAML, name, image), "apply", "-f", "-"); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { shared.Kubectl(context.Background(), v, "delete", "job", name, "--wait=false") })
		p := startProxy(t)
		// The job controller updates the object as it creates the pod: read
		// both ways until both reads see one version.
		var fromKubectl, fromREST map[string]any
		rv := func(o map[string]any) any { return o["metadata"].(map[string]any)["resourceVersion"] }
		for deadline := time.Now().Add(10 * time.Second); ; {
			out, err := shared.Kubectl(ctx, v, "get", "job", name, "-o", "json")
			if err != nil {
				t.Fatal(err)
			}
			json.Unmarshal([]byte(out), &fromKubectl)
			getJSON(t, p.URL+"/apis/batch/v1/namespaces/default/jobs/"+name, &fromREST)
			if rv(fromKubectl) == rv(fromREST) || time.Now().After(deadline) {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		// kubectl hides managedFields unless --show-managed-fields.
		meta := fromREST["metadata"].(map[string]any)
		if _, ok := meta["managedFields"]; !ok {
			t.Error("GET lacks metadata.managedFields")
		}
		delete(meta, "managedFields")
		if !reflect.DeepEqual(fromKubectl, fromREST) {
			a, _ := json.MarshalIndent(fromKubectl, "", " ")
			b, _ := json.MarshalIndent(fromREST, "", " ")
			t.Errorf("kubectl get -o json and GET differ:\n%s\n---\n%s", a, b)
		}
		ann, _ := fromREST["metadata"].(map[string]any)["annotations"].(map[string]any)
		if _, ok := ann["kubectl.kubernetes.io/last-applied-configuration"]; !ok {
			t.Errorf("no last-applied-configuration annotation after kubectl apply: %v", ann)
		}
	})
}

// `pocketkube proxy` is kubectl proxy: the same answers for the same
// requests, and the same default filters.
func TestProxyMatchesKubectlProxy(t *testing.T) {
	t.Parallel()
	forEachKubectl(t, func(t *testing.T, v string) {
		ctx := t.Context()
		ours := startProxy(t)
		theirs, err := framework.StartProxy(filepath.Join(framework.KubectlDir, "kubectl."+v), "proxy", "--kubeconfig", shared.Kubeconfig)
		if err != nil {
			t.Fatal(err)
		}
		defer theirs.Stop()
		for _, tt := range []struct {
			method, path string
		}{
			{"GET", "/"},
			{"GET", "/apis/batch/v1"},
			{"GET", "/api/v1/namespaces/default/pods/nope"},
			{"POST", "/api/v1/namespaces/default/pods/x/exec"}, // rejected by --reject-paths
			{"GET", "/api/v1/namespaces/default/pods/x/attach"},
		} {
			a, sa, _ := framework.Curl(ctx, "-X", tt.method, ours.URL+tt.path)
			b, sb, _ := framework.Curl(ctx, "-X", tt.method, theirs.URL+tt.path)
			if sa != sb || a != b {
				t.Errorf("%s %s: pocketkube proxy %d %.200q, kubectl proxy %d %.200q", tt.method, tt.path, sa, a, sb, b)
			}
		}
		// A host outside --accept-hosts is refused the same way.
		a, sa, _ := framework.Curl(ctx, "-H", "Host: evil.example", ours.URL+"/api")
		b, sb, _ := framework.Curl(ctx, "-H", "Host: evil.example", theirs.URL+"/api")
		if sa != 403 || sa != sb || a != b {
			t.Errorf("foreign host: ours %d %q, kubectl %d %q", sa, a, sb, b)
		}
	})
}

func TestVersionCommand(t *testing.T) {
	t.Parallel()
	out, err := framework.Run(t.Context(), nil, Binary, "version")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out, "pocketkube ") || !strings.Contains(out, "\nKubernetes v1.37.2\n") {
		t.Errorf("pocketkube version:\n%s", out)
	}
}
