package join

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/klog/v2/ktesting"
)

// TestJoinRefusesBeforeWriting checks the refusals that need no server:
// nothing is written to Dir, which is not even made. (Refusals of a wrong
// token or CA hash by a real server: e2e TestAgentJoin.)
func TestJoinRefusesBeforeWriting(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	hash := "sha256:" + strings.Repeat("a", 64)
	for _, tt := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"no https", Config{Server: "http://192.0.2.1:6443", Token: "abcdef.0123456789abcdef", CACertHashes: []string{hash}}, "want https://HOST:PORT"},
		{"a path", Config{Server: "https://192.0.2.1:6443/api", Token: "abcdef.0123456789abcdef", CACertHashes: []string{hash}}, "want https://HOST:PORT"},
		{"not a token", Config{Server: "https://192.0.2.1:6443", Token: "secret", CACertHashes: []string{hash}}, "not a bootstrap token"},
		{"no hash", Config{Server: "https://192.0.2.1:6443", Token: "abcdef.0123456789abcdef"}, "--discovery-token-ca-cert-hash is required"},
		{"a malformed hash", Config{Server: "https://192.0.2.1:6443", Token: "abcdef.0123456789abcdef", CACertHashes: []string{"md5:00"}}, "--discovery-token-ca-cert-hash: "},
		{"an unreachable server", Config{Server: "https://127.0.0.1:1", Token: "abcdef.0123456789abcdef", CACertHashes: []string{hash}, DiscoveryTimeout: time.Second}, "refused to join https://127.0.0.1:1"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "agent")
			tt.cfg.Dir, tt.cfg.NodeName = dir, "n1"
			_, err := Join(ctx, tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Join: %v, want an error with %q", err, tt.want)
			}
			if _, err := os.Stat(dir); !os.IsNotExist(err) {
				t.Errorf("Join refused but made %s (%v)", dir, err)
			}
		})
	}
}

func TestEndpointOf(t *testing.T) {
	for server, want := range map[string]string{
		"https://192.0.2.1:6443":  "192.0.2.1:6443",
		"https://192.0.2.1":       "192.0.2.1:6443",
		"https://[2001:db8::1]:7": "[2001:db8::1]:7",
		"https://example.test/":   "example.test:6443",
	} {
		if got, err := endpointOf(server); err != nil || got != want {
			t.Errorf("endpointOf(%q) = %q, %v; want %q", server, got, err, want)
		}
	}
}

// TestJoinStopsDuringDiscovery checks that a stop does not wait for
// kubeadm's discovery, which retries an unreachable server until its
// timeout, and that nothing is written.
func TestJoinStopsDuringDiscovery(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	ctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	dir := filepath.Join(t.TempDir(), "agent")
	// Waiting for the discovery would end in its own error, a minute on.
	_, err := Join(ctx, Config{Server: "https://127.0.0.1:1", Token: "abcdef.0123456789abcdef",
		CACertHashes: []string{"sha256:" + strings.Repeat("a", 64)}, Dir: dir, NodeName: "n1", DiscoveryTimeout: time.Minute})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Join: %v, want the context's end", err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("Join stopped but made %s (%v)", dir, err)
	}
}
