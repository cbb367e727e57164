package agent

import (
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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
