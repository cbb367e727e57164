package kubeletapi

import (
	"fmt"
	"net/http"
	"strings"

	"k8s.io/apiserver/pkg/apis/apiserver"
	"k8s.io/apiserver/pkg/authentication/authenticator"
	"k8s.io/apiserver/pkg/authentication/authenticatorfactory"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	"k8s.io/apiserver/pkg/authorization/authorizerfactory"
	"k8s.io/apiserver/pkg/server/dynamiccertificates"
	genericoptions "k8s.io/apiserver/pkg/server/options"
	"k8s.io/klog/v2"
)

// buildAuthn builds kubelet's authenticator (cmd/kubelet/app/auth.go
// BuildAuthn with anonymous off and the webhook on): x509 client
// certificates verified against cfg.ClientCAFile, then bearer tokens through
// TokenReview.
func buildAuthn(cfg Config) (authenticator.Request, *dynamiccertificates.DynamicFileCAContent, error) {
	clientCA, err := dynamiccertificates.NewDynamicCAContentFromFile("client-ca-bundle", cfg.ClientCAFile)
	if err != nil {
		return nil, nil, fmt.Errorf("load client CA %s: %w", cfg.ClientCAFile, err)
	}
	authn, _, err := authenticatorfactory.DelegatingAuthenticatorConfig{
		Anonymous:                          &apiserver.AnonymousAuthConfig{Enabled: false},
		CacheTTL:                           cfg.AuthCacheTTL,
		ClientCertificateCAContentProvider: clientCA,
		TokenAccessReviewClient:            cfg.Client.AuthenticationV1(),
		WebhookRetryBackoff:                genericoptions.DefaultAuthWebhookRetryBackoff(),
	}.New()
	if err != nil {
		return nil, nil, fmt.Errorf("build authenticator: %w", err)
	}
	return authn, clientCA, nil
}

// buildAuthz builds kubelet's webhook authorizer (BuildAuthz, mode Webhook).
func buildAuthz(cfg Config) (authorizer.Authorizer, error) {
	authz, err := authorizerfactory.DelegatingAuthorizerConfig{
		SubjectAccessReviewClient: cfg.Client.AuthorizationV1(),
		AllowCacheTTL:             cfg.AuthorizedCacheTTL,
		DenyCacheTTL:              cfg.UnauthorizedCacheTTL,
		WebhookRetryBackoff:       genericoptions.DefaultAuthWebhookRetryBackoff(),
	}.New()
	if err != nil {
		return nil, fmt.Errorf("build authorizer: %w", err)
	}
	return authz, nil
}

// withAuth is upstream's InstallAuthFilter: 401 for unauthenticated
// requests, then one SubjectAccessReview per candidate subresource until one
// allows, else 403.
func (s *Server) withAuth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		logger := klog.FromContext(r.Context())
		info, ok, err := s.authn.AuthenticateRequest(r)
		if err != nil {
			logger.Error(err, "Unable to authenticate the request due to an error")
			writeError(w, http.StatusUnauthorized, "Unauthorized")
			return
		}
		if !ok {
			writeError(w, http.StatusUnauthorized, "Unauthorized")
			return
		}
		attrs := requestAttributes(s.cfg.NodeName, info.User, r)
		var subresources []string
		for _, attr := range attrs {
			subresources = append(subresources, attr.GetSubresource())
			decision, _, err := s.authz.Authorize(r.Context(), attr)
			if err != nil {
				logger.Error(err, "Authorization error", "user", attr.GetUser().GetName(), "verb", attr.GetVerb(), "resource", attr.GetResource(), "subresource", attr.GetSubresource())
				writeError(w, http.StatusInternalServerError, fmt.Sprintf("Authorization error (user=%s, verb=%s, resource=%s, subresource=%s)", attr.GetUser().GetName(), attr.GetVerb(), attr.GetResource(), attr.GetSubresource()))
				return
			}
			if decision == authorizer.DecisionAllow {
				next.ServeHTTP(w, r)
				return
			}
		}
		logger.V(2).Info("Forbidden", "user", attrs[0].GetUser().GetName(), "verb", attrs[0].GetVerb(), "resource", attrs[0].GetResource(), "subresource(s)", subresources)
		writeError(w, http.StatusForbidden, fmt.Sprintf("Forbidden (user=%s, verb=%s, resource=%s, subresource(s)=%v)\n", attrs[0].GetUser().GetName(), attrs[0].GetVerb(), attrs[0].GetResource(), subresources))
	})
}

// requestAttributes is upstream's nodeAuthorizerAttributesGetter with
// KubeletFineGrainedAuthz (GA and locked on since 1.36): verb from the HTTP
// method, resource nodes/<nodeName>, and the subresources to try in order.
func requestAttributes(nodeName string, u user.Info, r *http.Request) []authorizer.Attributes {
	verb := ""
	switch r.Method {
	case http.MethodPost:
		verb = "create"
	case http.MethodGet:
		verb = "get"
	case http.MethodPut:
		verb = "update"
	case http.MethodPatch:
		verb = "patch"
	case http.MethodDelete:
		verb = "delete"
	}
	path := r.URL.Path

	var subresources []string
	if sub, ok := subresourceOf(path, fineGrainedSubresources); ok {
		subresources = append(subresources, sub)
	}
	if sub, ok := subresourceOf(path, subresourcesOfPaths); ok {
		subresources = append(subresources, sub)
	} else {
		subresources = append(subresources, "proxy")
	}

	attrs := make([]authorizer.Attributes, 0, len(subresources))
	for _, sub := range subresources {
		attrs = append(attrs, authorizer.AttributesRecord{
			User:            u,
			Verb:            verb,
			APIVersion:      "v1",
			Resource:        "nodes",
			Subresource:     sub,
			Name:            nodeName,
			ResourceRequest: true,
			Path:            path,
		})
	}
	return attrs
}

// A pathSubresource is the subresource of nodes that authorizes the paths
// at and below path.
type pathSubresource struct{ path, subresource string }

// fineGrainedSubresources are tried first, then subresourcesOfPaths, whose
// default is "proxy"; the first match of each counts. The order is
// upstream's.
var (
	fineGrainedSubresources = []pathSubresource{
		{"/allocatedPods", "pods"},
		{"/pods", "pods"},
		{"/healthz", "healthz"},
		{"/configz", "configz"},
		{"/runningpods/", "pods"},
	}
	subresourcesOfPaths = []pathSubresource{
		{"/stats/", "stats"},
		{"/metrics", "metrics"},
		{"/logs/", "log"}, // "log" to match other log subresources (pods/log, etc)
		{"/checkpoint/", "checkpoint"},
		{"/statusz", "statusz"},
		{"/flagz", "configz"},
	}
)

// subresourceOf returns the subresource of the first entry of table that
// path is at or below.
func subresourceOf(path string, table []pathSubresource) (string, bool) {
	for _, e := range table {
		if isSubpath(path, e.path) {
			return e.subresource, true
		}
	}
	return "", false
}

func isSubpath(subpath, path string) bool {
	path = strings.TrimSuffix(path, "/")
	return subpath == path || (strings.HasPrefix(subpath, path) && subpath[len(path)] == '/')
}
