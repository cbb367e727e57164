package node

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// A stop while cluster DNS waits for its RBAC is a stop, not an error:
// `up` stopped a few seconds after it was up exited 1 with "node: cluster
// DNS: context canceled".
func TestRunClusterDNSStoppedWhileWaiting(t *testing.T) {
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	// An API server that refuses connections: the wait never ends on
	// its own.
	if err := os.WriteFile(kubeconfig, []byte(`apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {server: "https://127.0.0.1:1", insecure-skip-tls-verify: true}
users:
- name: u
  user: {token: t}
contexts:
- name: c
  context: {cluster: c, user: u}
current-context: c
`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		delay time.Duration
	}{
		{name: "cancelled before", delay: 0},
		{name: "cancelled while waiting", delay: 200 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			if tc.delay == 0 {
				cancel()
			} else {
				time.AfterFunc(tc.delay, cancel)
			}
			defer cancel()
			err := runClusterDNS(ctx, Config{ProxyKubeconfig: kubeconfig, DNSListen: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				t.Errorf("runClusterDNS stopped while waiting: %v, want nil", err)
			}
		})
	}
}
