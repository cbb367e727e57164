package kubeletapi

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/client-go/rest"
)

func TestAuth(t *testing.T) {
	env := newTestEnv(t, &fakeProvider{pods: nil})
	other := newTestCA(t, "other-ca")
	foreign := env.restConfig("")
	foreign.CertData, foreign.KeyData = other.issue(t, "kube-apiserver-kubelet-client", []string{"system:masters"}, false)
	token := env.restConfig("")
	token.BearerToken = "good-token"
	badToken := env.restConfig("")
	badToken.BearerToken = "bad-token"

	tests := []struct {
		name     string
		cfg      *rest.Config
		path     string
		wantCode int
		wantBody string
	}{
		{name: "api server cert", cfg: env.apiServer(), path: "/healthz", wantCode: http.StatusOK, wantBody: "ok"},
		{name: "no credentials", cfg: env.restConfig(""), path: "/healthz", wantCode: http.StatusUnauthorized, wantBody: "Unauthorized"},
		{name: "cert of another CA", cfg: foreign, path: "/healthz", wantCode: http.StatusUnauthorized, wantBody: "Unauthorized"},
		{name: "good token", cfg: token, path: "/pods", wantCode: http.StatusOK},
		{name: "bad token", cfg: badToken, path: "/pods", wantCode: http.StatusUnauthorized, wantBody: "Unauthorized"},
		{
			name: "denied user", cfg: env.restConfig("nobody"), path: "/containerLogs/default/web/app",
			wantCode: http.StatusForbidden, wantBody: "Forbidden (user=nobody, verb=get, resource=nodes, subresource(s)=[proxy])\n",
		},
		{
			name: "denied user on healthz tries healthz then proxy", cfg: env.restConfig("nobody"), path: "/healthz",
			wantCode: http.StatusForbidden, wantBody: "Forbidden (user=nobody, verb=get, resource=nodes, subresource(s)=[healthz proxy])\n",
		},
		{name: "nodes/proxy reader", cfg: env.restConfig("reader"), path: "/healthz", wantCode: http.StatusOK, wantBody: "ok"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := env.get(tt.cfg, tt.path)
			if code != tt.wantCode {
				t.Errorf("status = %d, want %d (body %q)", code, tt.wantCode, body)
			}
			if tt.wantBody != "" && body != tt.wantBody {
				t.Errorf("body = %q, want %q", body, tt.wantBody)
			}
		})
	}

	env.mu.Lock()
	defer env.mu.Unlock()
	if len(env.sars) == 0 {
		t.Fatal("no SubjectAccessReview was sent")
	}
	ra := env.sars[0].ResourceAttributes
	if ra == nil || ra.Resource != "nodes" || ra.Name != testNode || ra.Verb != "get" {
		t.Errorf("first SubjectAccessReview attributes = %+v, want get nodes/%s", ra, testNode)
	}
}

func TestRequestAttributes(t *testing.T) {
	tests := []struct {
		method, path string
		wantVerb     string
		wantSubs     []string
	}{
		{http.MethodGet, "/containerLogs/ns/pod/c", "get", []string{"proxy"}},
		{http.MethodPost, "/exec/ns/pod/c", "create", []string{"proxy"}},
		{http.MethodGet, "/exec/ns/pod/c", "get", []string{"proxy"}},
		{http.MethodPost, "/portForward/ns/pod", "create", []string{"proxy"}},
		{http.MethodGet, "/logs/", "get", []string{"log"}},
		{http.MethodGet, "/stats/summary", "get", []string{"stats"}},
		{http.MethodGet, "/metrics/cadvisor", "get", []string{"metrics"}},
		{http.MethodGet, "/pods", "get", []string{"pods", "proxy"}},
		{http.MethodGet, "/runningpods/", "get", []string{"pods", "proxy"}},
		{http.MethodGet, "/healthz/ping", "get", []string{"healthz", "proxy"}},
		{http.MethodGet, "/configz", "get", []string{"configz", "proxy"}},
		{http.MethodGet, "/flagz", "get", []string{"configz"}},
		{http.MethodGet, "/podsx", "get", []string{"proxy"}},
	}
	for _, tt := range tests {
		t.Run(tt.method+tt.path, func(t *testing.T) {
			r := httptest.NewRequest(tt.method, tt.path, nil)
			attrs := requestAttributes(testNode, &user.DefaultInfo{Name: "u"}, r)
			var subs []string
			for _, a := range attrs {
				subs = append(subs, a.GetSubresource())
				if a.GetVerb() != tt.wantVerb || a.GetResource() != "nodes" || a.GetName() != testNode || a.GetAPIVersion() != "v1" || !a.IsResourceRequest() {
					t.Errorf("attributes = %+v, want verb %s on nodes/%s", a, tt.wantVerb, testNode)
				}
			}
			if len(subs) != len(tt.wantSubs) {
				t.Fatalf("subresources = %v, want %v", subs, tt.wantSubs)
			}
			for i := range subs {
				if subs[i] != tt.wantSubs[i] {
					t.Errorf("subresources = %v, want %v", subs, tt.wantSubs)
				}
			}
		})
	}
}
