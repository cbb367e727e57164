package etcd

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/pocketkube/pocketkube/internal/pki"
)

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// memberPKI makes the etcd PKI of member name in dir, with the etcd CA of
// caDir when set (a joining server's copy of the cluster's CA).
func memberPKI(t *testing.T, dir, name, caDir string) pki.Paths {
	t.Helper()
	if caDir != "" {
		for _, f := range []string{"ca.crt", "ca.key", "etcd/ca.crt", "etcd/ca.key"} {
			b, err := os.ReadFile(filepath.Join(caDir, f))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, f)), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, f), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	p, err := pki.Ensure(pki.Config{Dir: dir, ServiceIP: net.IPv4(10, 96, 0, 1), Etcd: &pki.EtcdMember{Name: name, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}}})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func member(p pki.Paths, name string, join []string, peer, client int) *Member {
	return &Member{
		Name: name, IP: net.IPv4(127, 0, 0, 1), PeerPort: peer, ClientPort: client, CAFile: p.EtcdCA,
		ServerCertFile: p.EtcdServer, ServerKeyFile: p.EtcdServerKey,
		PeerCertFile: p.EtcdPeer, PeerKeyFile: p.EtcdPeerKey,
		ClientCertFile: p.EtcdClient, ClientKeyFile: p.EtcdClientKey,
		Join: join,
	}
}

// TestMemberJoinAndRemove grows a cluster from one member to two through
// etcd's membership API over mutual TLS, and shrinks it again.
func TestMemberJoinAndRemove(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	p1 := memberPKI(t, filepath.Join(root, "pki1"), "one", "")
	p2 := memberPKI(t, filepath.Join(root, "pki2"), "two", filepath.Join(root, "pki1"))
	c1 := freePort(t)
	s1, err := Start(ctx, Config{DataDir: filepath.Join(root, "e1"), ReserveBytes: -1, Member: member(p1, "one", nil, freePort(t), c1)})
	if err != nil {
		t.Fatal(err)
	}
	defer s1.Close()
	join := []string{"https://127.0.0.1:" + itoa(c1)}
	s2, err := Start(ctx, Config{DataDir: filepath.Join(root, "e2"), ReserveBytes: -1, Member: member(p2, "two", join, freePort(t), freePort(t))})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if s2.etcd.Server.IsLearner() {
		t.Error("the joined member is still a learner")
	}

	// A write through one member is read through the other.
	if _, err := startClient(t, s2).Put(ctx, "/registry/k", "v"); err != nil {
		t.Fatal(err)
	}
	got, err := startClient(t, s1).Get(ctx, "/registry/k")
	if err != nil || len(got.Kvs) != 1 || string(got.Kvs[0].Value) != "v" {
		t.Fatalf("read through the first member: %v, %v", got, err)
	}

	c, err := NewClient(join, p1.EtcdCA, p1.EtcdClient, p1.EtcdClientKey)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	members, err := c.Members(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(members) != 2 {
		t.Fatalf("%d members, want 2: %v", len(members), members)
	}
	for _, m := range members {
		if m.IsLearner {
			t.Errorf("member %s is a learner", m.Name)
		}
	}
	if err := c.RemoveMember(ctx, "nobody"); !errors.Is(err, ErrNoMember) {
		t.Errorf("remove an unknown member: %v, want ErrNoMember", err)
	}
	rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	// etcd refuses to remove a member until the others have been
	// connected for a while (its strict reconfiguration check).
	for {
		err := c.RemoveMember(rctx, "two")
		if err == nil {
			break
		}
		if rctx.Err() != nil {
			t.Fatal(err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err := c.RemoveMember(rctx, "one"); !errors.Is(err, ErrLastMember) {
		t.Errorf("remove the last member: %v, want ErrLastMember", err)
	}
}

// TestMemberRefusesOtherCA: a client certificate of another etcd CA is
// refused on the member's client port.
func TestMemberRefusesOtherCA(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	p1 := memberPKI(t, filepath.Join(root, "pki1"), "one", "")
	other := memberPKI(t, filepath.Join(root, "other"), "x", "")
	c1 := freePort(t)
	s1, err := Start(ctx, Config{DataDir: filepath.Join(root, "e1"), ReserveBytes: -1, Member: member(p1, "one", nil, freePort(t), c1)})
	if err != nil {
		t.Fatal(err)
	}
	defer s1.Close()
	// The server's CA is trusted, the client certificate is not its CA's.
	c, err := NewClient([]string{"https://127.0.0.1:" + itoa(c1)}, p1.EtcdCA, other.EtcdClient, other.EtcdClientKey)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if _, err := c.Members(rctx); err == nil {
		t.Error("a client certificate of another CA listed the members")
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
