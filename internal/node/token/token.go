package token

import (
	"context"
	"fmt"
	"hash/fnv"
	"strings"
	"sync"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/clock"
)

// requestTimeout bounds one TokenRequest.
const requestTimeout = 10 * time.Second

// Manager caches the service account tokens of the node's pods and
// requests them again before they expire. Its methods are safe for
// concurrent use.
type Manager struct {
	client kubernetes.Interface
	clock  clock.Clock

	mu     sync.Mutex
	tokens map[string]*authenticationv1.TokenRequest
}

// NewManager returns a Manager that requests tokens through client, which
// has the node's credentials, and reads the time from clock (the real
// clock if nil).
func NewManager(client kubernetes.Interface, clk clock.Clock) *Manager {
	if clk == nil {
		clk = clock.RealClock{}
	}
	return &Manager{client: client, clock: clk, tokens: map[string]*authenticationv1.TokenRequest{}}
}

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

// Get returns a cached token for req, or requests one.
// When a refresh fails, the old token is used until it expires, as
// kubelet does.
func (m *Manager) Get(ctx context.Context, namespace, sa string, req *authenticationv1.TokenRequest) (*authenticationv1.TokenRequest, error) {
	key := tokenKey(namespace, sa, req)
	now := m.clock.Now()
	m.mu.Lock()
	cached := m.tokens[key]
	m.mu.Unlock()
	if cached != nil && now.Before(refreshAt(cached, now)) {
		return cached, nil
	}
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	tr, err := m.client.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, sa, req, metav1.CreateOptions{})
	if err != nil {
		if cached != nil && now.Before(cached.Status.ExpirationTimestamp.Time) {
			return cached, nil
		}
		return nil, err
	}
	m.mu.Lock()
	m.tokens[key] = tr
	m.mu.Unlock()
	return tr, nil
}

// NextRefresh is the soonest refresh of pod uid's tokens, or zero.
func (m *Manager) NextRefresh(uid string) time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	var next time.Time
	for k, tr := range m.tokens {
		if strings.HasSuffix(k, "/"+uid) {
			if at := refreshAt(tr, m.clock.Now()); next.IsZero() || at.Before(next) {
				next = at
			}
		}
	}
	return next
}

// Forget drops pod uid's tokens once the pod is gone.
func (m *Manager) Forget(uid string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for k := range m.tokens {
		if strings.HasSuffix(k, "/"+uid) {
			delete(m.tokens, k)
		}
	}
}
