//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"k8s.io/kubernetes/plugin/pkg/auth/authorizer/rbac/bootstrappolicy"

	"github.com/pocketkube/pocketkube/test/framework"
)

// startProxy runs `pocketkube proxy` against the shared cluster.
func startProxy(t *testing.T, args ...string) *framework.Proxy {
	t.Helper()
	p, err := framework.StartProxy(Binary, append([]string{"proxy", "--kubeconfig", shared.Kubeconfig}, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Stop)
	return p
}

// getJSON fetches url with curl and decodes the body into v.
func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	body, status, err := framework.Curl(t.Context(), url)
	if err != nil || status != 200 {
		t.Fatalf("GET %s: status %d, %v\n%s", url, status, err, body)
	}
	if err := json.Unmarshal([]byte(body), v); err != nil {
		t.Fatalf("GET %s: %v\n%s", url, err, body)
	}
}

// Walkthrough 3.3: the root path list through the proxy.
func TestRootPaths(t *testing.T) {
	t.Parallel()
	p := startProxy(t)
	var root struct{ Paths []string }
	getJSON(t, p.URL, &root)
	for _, want := range []string{
		"/.well-known/openid-configuration", "/api", "/api/v1", "/apis", "/apis/",
		"/apis/apps", "/apis/apps/v1", "/apis/batch", "/apis/batch/v1",
		"/apis/rbac.authorization.k8s.io/v1", "/apis/coordination.k8s.io/v1",
		"/healthz", "/livez", "/readyz", "/metrics", "/openapi/v2", "/openapi/v3",
		"/openid/v1/jwks", "/version",
	} {
		if !slices.Contains(root.Paths, want) {
			t.Errorf("paths lack %s", want)
		}
	}
	if !slices.IsSorted(root.Paths) {
		t.Errorf("paths are not sorted: %v", root.Paths)
	}
}

func TestBatchGroup(t *testing.T) {
	t.Parallel()
	p := startProxy(t)
	var group struct {
		Kind, APIVersion, Name string
		Versions               []struct{ GroupVersion, Version string }
		PreferredVersion       struct{ GroupVersion, Version string }
	}
	getJSON(t, p.URL+"/apis/batch", &group)
	if group.Kind != "APIGroup" || group.Name != "batch" || group.PreferredVersion.GroupVersion != "batch/v1" {
		t.Errorf("/apis/batch = %+v", group)
	}
	if len(group.Versions) == 0 || group.Versions[0].GroupVersion != "batch/v1" {
		t.Errorf("versions = %+v", group.Versions)
	}
}

type apiResource struct {
	Name, SingularName, Kind string
	Namespaced               bool
	Verbs, ShortNames        []string
	Categories               []string
}

type apiResourceList struct {
	Kind, GroupVersion string
	Resources          []apiResource
}

func (l apiResourceList) find(name string) *apiResource {
	for i := range l.Resources {
		if l.Resources[i].Name == name {
			return &l.Resources[i]
		}
	}
	return nil
}

func TestBatchV1Resources(t *testing.T) {
	t.Parallel()
	p := startProxy(t)
	var list apiResourceList
	getJSON(t, p.URL+"/apis/batch/v1", &list)
	if list.Kind != "APIResourceList" || list.GroupVersion != "batch/v1" {
		t.Fatalf("kind %q groupVersion %q", list.Kind, list.GroupVersion)
	}
	jobs := list.find("jobs")
	if jobs == nil {
		t.Fatal("no jobs resource")
	}
	if !jobs.Namespaced || jobs.Kind != "Job" || jobs.SingularName != "job" {
		t.Errorf("jobs = %+v", jobs)
	}
	wantVerbs := []string{"create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"}
	if !slices.Equal(jobs.Verbs, wantVerbs) {
		t.Errorf("jobs verbs = %v, want %v", jobs.Verbs, wantVerbs)
	}
	if !slices.Equal(jobs.Categories, []string{"all"}) {
		t.Errorf("jobs categories = %v", jobs.Categories)
	}
	status := list.find("jobs/status")
	if status == nil || !slices.Equal(status.Verbs, []string{"get", "patch", "update"}) {
		t.Errorf("jobs/status = %+v", status)
	}
	if list.find("cronjobs") == nil {
		t.Error("no cronjobs resource")
	}
}

func TestCoreV1Pods(t *testing.T) {
	t.Parallel()
	p := startProxy(t)
	var list apiResourceList
	getJSON(t, p.URL+"/api/v1", &list)
	pods := list.find("pods")
	if pods == nil || !slices.Equal(pods.ShortNames, []string{"po"}) || pods.Kind != "Pod" {
		t.Errorf("pods = %+v", pods)
	}
	for _, sub := range []string{"pods/log", "pods/exec", "pods/status", "pods/binding", "pods/eviction"} {
		if list.find(sub) == nil {
			t.Errorf("no %s", sub)
		}
	}
}

func TestJobListAcrossNamespaces(t *testing.T) {
	t.Parallel()
	p := startProxy(t)
	var list struct {
		Kind, APIVersion string
		Metadata         struct{ ResourceVersion string }
	}
	getJSON(t, p.URL+"/apis/batch/v1/jobs", &list)
	if list.Kind != "JobList" || list.APIVersion != "batch/v1" || list.Metadata.ResourceVersion == "" {
		t.Errorf("/apis/batch/v1/jobs = %+v", list)
	}
}

const jobJSON = `{
  "apiVersion": "batch/v1",
  "kind": "Job",
  "metadata": {"name": "%s", "labels": {"e2e": "rest"}},
  "spec": {"template": {"spec": {"restartPolicy": "OnFailure",
    "containers": [{"name": "main", "image": "busybox", "command": ["true"]}]}}}
}`

// Walkthrough 3.6: every verb of the table through the proxy, with curl.
func TestVerbsThroughProxy(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	p := startProxy(t)
	base := p.URL + "/apis/batch/v1/namespaces/default/jobs"
	name := "rest-verbs"
	t.Cleanup(func() { framework.Curl(context.Background(), "-X", "DELETE", base+"/"+name) })

	// watch: GET ?watch=true streams events while the others run. It
	// starts from the list's resourceVersion, so that it sees every change
	// after the list however late the stream opens.
	var list struct {
		Metadata struct{ ResourceVersion string }
	}
	getJSON(t, base+"?labelSelector=e2e%3Drest", &list)
	if list.Metadata.ResourceVersion == "" {
		t.Fatal("job list without a resourceVersion")
	}
	watchCtx, stopWatch := context.WithCancel(ctx)
	watch := exec.CommandContext(watchCtx, "curl", "-sSN", base+"?watch=true&labelSelector=e2e%3Drest&resourceVersion="+list.Metadata.ResourceVersion)
	out, err := watch.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := watch.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { stopWatch(); watch.Wait() }()
	events := make(chan string, 1024)
	go func() {
		defer close(events)
		s := bufio.NewScanner(out)
		s.Buffer(make([]byte, 1<<20), 1<<20)
		for s.Scan() {
			var ev struct{ Type string }
			json.Unmarshal(s.Bytes(), &ev)
			select {
			case events <- ev.Type:
			case <-watchCtx.Done():
				return
			}
		}
	}()

	steps := []struct {
		verb, method string
		args         []string
		url          string
		wantStatus   int
		wantInBody   string
	}{
		{"create", "POST", []string{"-H", "Content-Type: application/json", "-d", strings.ReplaceAll(jobJSON, "%s", name)}, base, 201, `"name": "rest-verbs"`},
		{"create again", "POST", []string{"-H", "Content-Type: application/json", "-d", strings.ReplaceAll(jobJSON, "%s", name)}, base, 409, `jobs.batch \"rest-verbs\" already exists`},
		{"get", "GET", nil, base + "/" + name, 200, `"kind": "Job"`},
		{"list", "GET", nil, base, 200, `"kind": "JobList"`},
		{"patch", "PATCH", []string{"-H", "Content-Type: application/merge-patch+json", "-d", `{"metadata":{"annotations":{"step":"patched"}}}`}, base + "/" + name, 200, `"step": "patched"`},
		{"get missing", "GET", nil, base + "/no-such-job", 404, `jobs.batch \"no-such-job\" not found`},
		{"delete", "DELETE", nil, base + "/" + name, 200, `"kind": "Job"`},
	}
	for _, s := range steps {
		args := append([]string{"-X", s.method}, s.args...)
		body, status, err := framework.Curl(ctx, append(args, s.url)...)
		if err != nil || status != s.wantStatus || !strings.Contains(body, s.wantInBody) {
			t.Fatalf("%s (%s %s): status %d (want %d), %v, body lacks %q:\n%s", s.verb, s.method, s.url, status, s.wantStatus, err, s.wantInBody, body)
		}
	}

	// update: PUT needs the current object, resourceVersion included.
	name2 := "rest-update"
	t.Cleanup(func() { framework.Curl(context.Background(), "-X", "DELETE", base+"/"+name2) })
	body, status, _ := framework.Curl(ctx, "-X", "POST", "-H", "Content-Type: application/json", "-d", strings.ReplaceAll(jobJSON, "%s", name2), base)
	if status != 201 {
		t.Fatalf("create %s: %d %s", name2, status, body)
	}
	// The job controller writes the Job too, so a PUT of what was read can
	// conflict: read, modify, PUT, and again on 409, as clients do.
	var updated []byte
	for attempt := 0; ; attempt++ {
		body, _, _ = framework.Curl(ctx, base+"/"+name2)
		var job map[string]any
		json.Unmarshal([]byte(body), &job)
		job["metadata"].(map[string]any)["annotations"] = map[string]any{"step": "updated"}
		updated, _ = json.Marshal(job)
		body, status, _ = framework.Curl(ctx, "-X", "PUT", "-H", "Content-Type: application/json", "-d", string(updated), base+"/"+name2)
		if status == 200 && strings.Contains(body, `"step": "updated"`) {
			break
		}
		if status != 409 || attempt == 5 {
			t.Fatalf("update: %d %s", status, body)
		}
	}
	// The same PUT again carries a stale resourceVersion: upstream's conflict.
	body, status, _ = framework.Curl(ctx, "-X", "PUT", "-H", "Content-Type: application/json", "-d", string(updated), base+"/"+name2)
	if status != 409 || !strings.Contains(body, "the object has been modified") {
		t.Fatalf("stale update: %d %s", status, body)
	}

	// deletecollection: DELETE on the collection.
	body, status, _ = framework.Curl(ctx, "-X", "DELETE", base+"?labelSelector=e2e%3Drest")
	if status != 200 || !strings.Contains(body, `"kind": "JobList"`) {
		t.Fatalf("deletecollection: %d %s", status, body)
	}

	var seen []string
	timeout := time.After(10 * time.Second)
	for !slices.Contains(seen, "DELETED") || len(seen) < 5 {
		select {
		case ev, ok := <-events:
			if !ok {
				t.Fatalf("watch ended early; events %v", seen)
			}
			seen = append(seen, ev)
		case <-timeout:
			t.Fatalf("watch events %v: want ADDED, MODIFIED and DELETED", seen)
		}
	}
	for _, want := range []string{"ADDED", "MODIFIED", "DELETED"} {
		if !slices.Contains(seen, want) {
			t.Errorf("watch saw %v, no %s", seen, want)
		}
	}
}

// Walkthrough 3.2: anonymous requests are authenticated as
// system:anonymous and forbidden by RBAC, with upstream's exact Status.
func TestAnonymousForbidden(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	body, status, err := framework.Curl(ctx, "-k", shared.Server)
	if err != nil || status != 403 {
		t.Fatalf("curl -k: status %d, %v", status, err)
	}
	want := `{
  "kind": "Status",
  "apiVersion": "v1",
  "metadata": {},
  "status": "Failure",
  "message": "forbidden: User \"system:anonymous\" cannot get path \"/\"",
  "reason": "Forbidden",
  "details": {},
  "code": 403
}`
	if body != want {
		t.Errorf("body:\n%s\nwant:\n%s", body, want)
	}
}

func TestTLSVerification(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	// Without the cluster CA, curl refuses the certificate (exit 60).
	_, _, err := framework.Curl(ctx, shared.Server)
	if framework.ExitCode(err) != 60 {
		t.Errorf("curl without CA: %v, want exit code 60", err)
	}
	// With it, the server is verified under every name in its certificate.
	ca := shared.DataDir + "/pki/ca.crt"
	for _, host := range []string{"localhost", "kubernetes", "kubernetes.default.svc.cluster.local"} {
		_, status, err := framework.Curl(ctx, "--cacert", ca, "--resolve", host+":"+strconv.Itoa(shared.Port)+":"+shared.Host, "https://"+host+":"+strconv.Itoa(shared.Port)+"/version")
		if err != nil || status != 200 {
			t.Errorf("curl --cacert https://%s: status %d, %v", host, status, err)
		}
	}
}

// The system priority classes exist once /readyz answers, as upstream's
// scheduling/bootstrap-system-priority-classes hook makes them: pocketkube
// runs its own hook under that name (it tries at once instead of after
// 1 s), and /readyz waits for it.
func TestSystemPriorityClasses(t *testing.T) {
	t.Parallel()
	p := startProxy(t)
	body, status, err := framework.Curl(t.Context(), p.URL+"/readyz?verbose")
	if err != nil || status != 200 {
		t.Fatalf("GET /readyz?verbose: status %d, %v\n%s", status, err, body)
	}
	// Under upstream's name, once: upstream's health handlers spec
	// (test/e2e/apimachinery/health_handlers.go) looks for it.
	if n := strings.Count(body, "[+]poststarthook/scheduling/bootstrap-system-priority-classes ok"); n != 1 {
		t.Errorf("/readyz?verbose lists the priority class hook %d times, want once:\n%s", n, body)
	}
	for name, value := range map[string]int64{"system-node-critical": 2000001000, "system-cluster-critical": 2000000000} {
		var pc struct {
			Value            int64
			GlobalDefault    bool
			Description      string
			PreemptionPolicy string
		}
		getJSON(t, p.URL+"/apis/scheduling.k8s.io/v1/priorityclasses/"+name, &pc)
		if pc.Value != value || pc.GlobalDefault || pc.Description == "" || pc.PreemptionPolicy != "PreemptLowerPriority" {
			t.Errorf("%s: %+v, want value %d, not global default, a description, PreemptLowerPriority", name, pc, value)
		}
	}
}

// Upstream's bootstrap RBAC policy is in place once /readyz answers, as
// upstream's rbac/bootstrap-roles hook makes it: pocketkube runs a copy
// of that hook under its name (it tries at once instead of after 1 s),
// and /readyz waits for it.
func TestBootstrapRoles(t *testing.T) {
	t.Parallel()
	p := startProxy(t)
	body, status, err := framework.Curl(t.Context(), p.URL+"/readyz?verbose")
	if err != nil || status != 200 {
		t.Fatalf("GET /readyz?verbose: status %d, %v\n%s", status, err, body)
	}
	if n := strings.Count(body, "[+]poststarthook/rbac/bootstrap-roles ok"); n != 1 {
		t.Errorf("/readyz?verbose lists the bootstrap roles hook %d times, want once:\n%s", n, body)
	}
	type list struct {
		Items []struct {
			Metadata struct{ Name, Namespace string }
		}
	}
	names := func(path string) map[string]bool {
		var l list
		getJSON(t, p.URL+path, &l)
		m := map[string]bool{}
		for _, i := range l.Items {
			m[i.Metadata.Namespace+"/"+i.Metadata.Name] = true
		}
		return m
	}
	want := func(kind string, have map[string]bool, ns, name string) {
		if !have[ns+"/"+name] {
			t.Errorf("%s %s/%s of upstream's bootstrap policy is missing", kind, ns, name)
		}
	}
	have := names("/apis/rbac.authorization.k8s.io/v1/clusterroles")
	for _, r := range append(bootstrappolicy.ClusterRoles(), bootstrappolicy.ControllerRoles()...) {
		want("clusterrole", have, "", r.Name)
	}
	have = names("/apis/rbac.authorization.k8s.io/v1/clusterrolebindings")
	for _, b := range append(bootstrappolicy.ClusterRoleBindings(), bootstrappolicy.ControllerRoleBindings()...) {
		want("clusterrolebinding", have, "", b.Name)
	}
	have = names("/apis/rbac.authorization.k8s.io/v1/roles")
	for ns, roles := range bootstrappolicy.NamespaceRoles() {
		for _, r := range roles {
			want("role", have, ns, r.Name)
		}
	}
	have = names("/apis/rbac.authorization.k8s.io/v1/rolebindings")
	for ns, bindings := range bootstrappolicy.NamespaceRoleBindings() {
		for _, b := range bindings {
			want("rolebinding", have, ns, b.Name)
		}
	}
}
