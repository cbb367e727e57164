package agent

import (
	"context"
	"fmt"
	"hash/fnv"
	"strings"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Kubelet's token manager (pkg/kubelet/token): a token is requested again
// once 80 % of its lifetime, or 24 h, has passed, up to 10 s early (a random
// jitter, so that the tokens of many pods are not all refreshed at once).
const (
	tokenRefreshFraction = 0.8
	tokenMaxAge          = 24 * time.Hour
	tokenMaxJitter       = 10 * time.Second
)

func tokenKey(namespace, sa string, req *authenticationv1.TokenRequest) string {
	key := fmt.Sprintf("%s/%s/%v/%d", namespace, sa, req.Spec.Audiences, ptrOr(req.Spec.ExpirationSeconds, 0))
	if ref := req.Spec.BoundObjectRef; ref != nil {
		key += "/" + ref.Kind + "/" + ref.Name + "/" + string(ref.UID)
	}
	return key
}

func ptrOr(p *int64, d int64) int64 {
	if p == nil {
		return d
	}
	return *p
}

// refreshAt is when kubelet would request a token again.
func refreshAt(tr *authenticationv1.TokenRequest, now time.Time) time.Time {
	exp := tr.Status.ExpirationTimestamp.Time
	ttl := time.Duration(ptrOr(tr.Spec.ExpirationSeconds, 3600)) * time.Second
	issued := exp.Add(-ttl)
	at := issued.Add(time.Duration(tokenRefreshFraction * float64(ttl)))
	if m := issued.Add(tokenMaxAge); m.Before(at) {
		at = m
	}
	return at.Add(-tokenJitter(tr))
}

// tokenJitter is a token's refresh jitter in [0, tokenMaxJitter): drawn
// from the token's own bytes, so that every check of one token agrees.
func tokenJitter(tr *authenticationv1.TokenRequest) time.Duration {
	h := fnv.New64a()
	h.Write([]byte(tr.Status.Token))
	return time.Duration(h.Sum64() % uint64(tokenMaxJitter))
}

// ServiceAccountToken returns a cached token for req, or requests one.
// When a refresh fails, the old token is used until it expires, as
// kubelet does.
func (o *apiObjects) ServiceAccountToken(ctx context.Context, namespace, sa string, req *authenticationv1.TokenRequest) (*authenticationv1.TokenRequest, error) {
	key := tokenKey(namespace, sa, req)
	now := o.clock.Now()
	o.mu.Lock()
	cached := o.tokens[key]
	o.mu.Unlock()
	if cached != nil && now.Before(refreshAt(cached, now)) {
		return cached, nil
	}
	ctx, cancel := context.WithTimeout(ctx, apiTimeout)
	defer cancel()
	tr, err := o.client.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, sa, req, metav1.CreateOptions{})
	if err != nil {
		if cached != nil && now.Before(cached.Status.ExpirationTimestamp.Time) {
			return cached, nil
		}
		return nil, err
	}
	o.mu.Lock()
	o.tokens[key] = tr
	o.mu.Unlock()
	return tr, nil
}

// nextTokenRefresh is the soonest refresh of pod uid's tokens, or zero.
func (o *apiObjects) nextTokenRefresh(uid string) time.Time {
	o.mu.Lock()
	defer o.mu.Unlock()
	var next time.Time
	for k, tr := range o.tokens {
		if strings.HasSuffix(k, "/"+uid) {
			if at := refreshAt(tr, o.clock.Now()); next.IsZero() || at.Before(next) {
				next = at
			}
		}
	}
	return next
}

// forgetTokens drops pod uid's tokens once the pod is gone.
func (o *apiObjects) forgetTokens(uid string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for k := range o.tokens {
		if strings.HasSuffix(k, "/"+uid) {
			delete(o.tokens, k)
		}
	}
}
