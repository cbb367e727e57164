package etcd

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
)

// TestMemberFromSingle: the data of a single etcd (plain `up`), started
// again as a member (`up --cluster-init`), keeps its data, serves its
// peers at the member's peer URL (updated from the one the single etcd
// advertised, which nobody dials), and a second member joins it.
func TestMemberFromSingle(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	dir := filepath.Join(root, "one")
	single, err := Start(ctx, Config{DataDir: dir, ReserveBytes: -1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := startClient(t, single).Put(ctx, "/registry/k", "v"); err != nil {
		t.Fatal(err)
	}
	single.Close()

	p1 := memberPKI(t, filepath.Join(root, "pki1"), "one", "")
	m1 := member(p1, "one", nil, freePort(t), freePort(t))
	s1, err := Start(ctx, Config{DataDir: dir, ReserveBytes: -1, Member: m1})
	if err != nil {
		t.Fatal(err)
	}
	defer s1.Close()
	got, err := startClient(t, s1).Get(ctx, "/registry/k")
	if err != nil || len(got.Kvs) != 1 || string(got.Kvs[0].Value) != "v" {
		t.Fatalf("read the single etcd's data as a member: %v, %v", got, err)
	}
	self := s1.etcd.Server.Cluster().Member(s1.etcd.Server.MemberID())
	if u := m1.peerURL(); !slices.Equal(self.PeerURLs, []string{u.String()}) {
		t.Errorf("peer URLs %q, want %s", self.PeerURLs, u.String())
	}

	p2 := memberPKI(t, filepath.Join(root, "pki2"), "two", filepath.Join(root, "pki1"))
	s2, err := Start(ctx, Config{DataDir: filepath.Join(root, "two"), ReserveBytes: -1, Member: member(p2, "two", []string{clientURLOf(m1)}, freePort(t), freePort(t))})
	if err != nil {
		t.Fatalf("join the member that was a single etcd: %v", err)
	}
	defer s2.Close()
	got, err = startClient(t, s2).Get(ctx, "/registry/k")
	if err != nil || len(got.Kvs) != 1 || string(got.Kvs[0].Value) != "v" {
		t.Errorf("read through the member that joined: %v, %v", got, err)
	}
}
