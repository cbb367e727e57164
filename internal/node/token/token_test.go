package token

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	core "k8s.io/client-go/testing"
	clocktesting "k8s.io/utils/clock/testing"
)

// Tokens are refreshed as kubelet's token manager does: after 80 % of their
// lifetime or 24 h, whichever comes first, up to 10 s early.
func TestTokenRefreshAt(t *testing.T) {
	issued := time.Date(2026, 11, 29, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		ttl  int64
		want time.Time
	}{
		{3607, issued.Add(time.Duration(0.8 * 3607 * float64(time.Second)))},
		{48 * 3600, issued.Add(24 * time.Hour)},
	} {
		for _, token := range []string{"a", "b", "c"} {
			tr := &authenticationv1.TokenRequest{
				Spec:   authenticationv1.TokenRequestSpec{ExpirationSeconds: &tc.ttl},
				Status: authenticationv1.TokenRequestStatus{Token: token, ExpirationTimestamp: metav1.NewTime(issued.Add(time.Duration(tc.ttl) * time.Second))},
			}
			got := refreshAt(tr, issued)
			if got.After(tc.want) || got.Before(tc.want.Add(-tokenMaxJitter)) || !got.Equal(refreshAt(tr, issued.Add(time.Hour))) {
				t.Errorf("ttl %d token %q: refresh at %v, want within 10 s before %v and stable", tc.ttl, token, got, tc.want)
			}
		}
	}
}

// Get serves the cached token until its refresh time, then requests a new
// one; when that fails, the old token is served until it expires.
func TestGetCachesAndRefreshes(t *testing.T) {
	ctx := context.Background()
	clock := clocktesting.NewFakeClock(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC))
	client := fake.NewSimpleClientset()
	var requests, issued int
	var fail bool
	client.PrependReactor("create", "serviceaccounts", func(action core.Action) (bool, k8sruntime.Object, error) {
		if action.GetSubresource() != "token" {
			return false, nil, nil
		}
		requests++
		if fail {
			return true, nil, errors.New("apiserver down")
		}
		issued++
		tr := action.(core.CreateAction).GetObject().(*authenticationv1.TokenRequest).DeepCopy()
		tr.Status = authenticationv1.TokenRequestStatus{Token: fmt.Sprint("t", issued),
			ExpirationTimestamp: metav1.NewTime(clock.Now().Add(time.Duration(*tr.Spec.ExpirationSeconds) * time.Second))}
		return true, tr, nil
	})
	m := NewManager(client, clock)
	ttl := int64(3600)
	req := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &ttl,
		BoundObjectRef: &authenticationv1.BoundObjectReference{Kind: "Pod", Name: "p", UID: "p-uid"}}}
	get := func() string {
		t.Helper()
		tr, err := m.Get(ctx, "ns", "default", req)
		if err != nil {
			t.Fatal(err)
		}
		return tr.Status.Token
	}
	if got := get(); got != "t1" {
		t.Errorf("token %s, want t1", got)
	}
	if got := get(); got != "t1" || requests != 1 {
		t.Errorf("token %s after %d requests, want t1 from the cache", got, requests)
	}
	next := m.NextRefresh("p-uid")
	if want := clock.Now().Add(48 * time.Minute); next.After(want) || next.Before(want.Add(-10*time.Second)) {
		t.Errorf("next refresh %v, want within 10 s before %v", next, want)
	}
	clock.SetTime(next)
	fail = true
	if got := get(); got != "t1" || requests != 2 {
		t.Errorf("token %s after %d requests, want t1 kept after a failed refresh", got, requests)
	}
	fail = false
	if got := get(); got != "t2" {
		t.Errorf("token %s, want t2", got)
	}
	m.Forget("p-uid")
	if !m.NextRefresh("p-uid").IsZero() {
		t.Error("tokens of a forgotten pod are still refreshed")
	}
}
