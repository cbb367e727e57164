//go:build bench

package bench

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/pocketkube/pocketkube/test/framework"
)

// BenchmarkServerJoin times a second server joining a running first one
// (issue 15): a first server (`up --cluster-init`) in a network namespace
// on a test segment; each iteration starts `up` with DIR/server-token's
// flags and a new data dir and node name in a namespace of its own on the
// segment, and measures its start → its own API server's /readyz answers
// 200 (discovery, the kubeadm-certs download, the PKI, etcd's
// MemberAddAsLearner, the learner's catch-up and promotion, the API
// server's start). The joining server runs no node (--disable-agent): the
// figure is the control plane's. Its etcd member is then removed
// (`pocketkube etcd remove-member`, while it runs: with two members, one
// stopped first would leave no quorum to remove it with), which ends it,
// so that every iteration joins a cluster of one member.
func BenchmarkServerJoin(b *testing.B) {
	stopPodsCluster()
	ctx := b.Context()
	seg, err := framework.NewSegment()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { seg.Remove() })
	c, err := framework.StartCluster(framework.ClusterConfig{
		Binary: binary, DataDir: filepath.Join(b.TempDir(), "s1"), NetNS: true, Segment: seg,
		Args: []string{"--cluster-init", "--node-name", "bench-s1"},
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		stopCluster(b, c)
		if err := c.Cleanup(); err != nil {
			b.Errorf("clean up the first server: %v", err)
		}
	})
	var flags []string
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
		data, err := os.ReadFile(filepath.Join(c.DataDir, "server-token"))
		flags = strings.Fields(string(data))
		return err == nil && len(flags) == 8, nil
	})
	if err != nil {
		b.Fatalf("server-token: %q, %v", flags, err)
	}
	caPEM, err := os.ReadFile(filepath.Join(c.DataDir, "pki", "ca.crt"))
	if err != nil {
		b.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	httpc := &http.Client{Timeout: time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}

	var toReady []time.Duration
	i := 0
	for b.Loop() {
		b.StopTimer()
		i++
		name := fmt.Sprintf("bench-s%d", i+1)
		ns, err := framework.NewNetNS()
		if err != nil {
			b.Fatal(err)
		}
		ip, err := seg.Attach(ns)
		if err != nil {
			b.Fatal(err)
		}
		dataDir := filepath.Join(b.TempDir(), "s")
		readyz := "https://" + ip + ":6443/readyz"
		b.StartTimer()
		start := time.Now()
		p, err := framework.StartIn(ns, binary, append([]string{"up", "--data-dir", dataDir, "--listen", ip + ":6443",
			"--node-name", name, "--disable-agent"}, flags...)...)
		if err != nil {
			b.Fatal(err)
		}
		removed := false
		b.Cleanup(func() {
			// After a failure: what this iteration left.
			if !removed {
				p.Stop(15 * time.Second)
				ns.Remove(dataDir)
			}
		})
		err = wait.PollUntilContextTimeout(ctx, 5*time.Millisecond, 2*time.Minute, true, func(context.Context) (bool, error) {
			resp, err := httpc.Get(readyz)
			if err != nil {
				return false, nil
			}
			resp.Body.Close()
			return resp.StatusCode == http.StatusOK, nil
		})
		if err != nil {
			b.Fatalf("server %s: /readyz: %v\n%s", name, err, framework.Tail(p.Output(), 40))
		}
		toReady = append(toReady, time.Since(start))
		b.StopTimer()
		if out, err := framework.Run(ctx, nil, binary, "etcd", "remove-member", name, "--data-dir", c.DataDir); err != nil {
			b.Fatalf("remove etcd member %s: %v\n%s", name, err, out)
		}
		// Removed from etcd, the server stops with an error.
		p.Stop(15 * time.Second)
		removed = true
		if err := ns.Remove(dataDir); err != nil {
			b.Errorf("clean up server %s: %v", name, err)
		}
		b.StartTimer()
	}
	noNsPerOp(b)
	reportQuantiles(b, "start-to-readyz", toReady, true)
}
