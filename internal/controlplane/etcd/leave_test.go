package etcd

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestLeaveAndRejoin: in a cluster of three members, the leader leaves
// (handing over its leadership); its data directory then refuses to start
// without Config.Member, and started again as a member without Join (as
// the first server restarted with --cluster-init) it joins the two that
// stayed as a new member, instead of starting a cluster of its own, and
// reads what they wrote. With another member down, a leave would cost the
// two left their quorum: etcd refuses it and the member stays.
func TestLeaveAndRejoin(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	names := []string{"one", "two", "three"}
	var members []*Member
	var servers []*Server
	for i, name := range names {
		caDir := ""
		if i > 0 {
			caDir = filepath.Join(root, "pki-one")
		}
		p := memberPKI(t, filepath.Join(root, "pki-"+name), name, caDir)
		var join []string
		if i > 0 {
			join = []string{clientURLOf(members[0])}
		}
		m := member(p, name, join, freePort(t), freePort(t))
		s, err := Start(ctx, Config{DataDir: filepath.Join(root, name), ReserveBytes: -1, Member: m})
		if err != nil {
			t.Fatalf("start %s: %v", name, err)
		}
		t.Cleanup(s.Close)
		members, servers = append(members, m), append(servers, s)
	}
	if _, err := startClient(t, servers[1]).Put(ctx, "/registry/k", "v"); err != nil {
		t.Fatal(err)
	}

	// The leader leaves.
	leaver := -1
	for i, s := range servers {
		if s.etcd.Server.Leader() == s.etcd.Server.MemberID() {
			leaver = i
		}
	}
	if leaver < 0 {
		t.Fatal("no member leads")
	}
	oldID := servers[leaver].etcd.Server.MemberID()
	lctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := servers[leaver].Leave(lctx); err != nil {
		t.Fatalf("%s leaves: %v", names[leaver], err)
	}
	servers[leaver].Close()
	stayed := []int{(leaver + 1) % 3, (leaver + 2) % 3}
	c, err := NewClient([]string{clientURLOf(members[stayed[0]])}, members[stayed[0]].CAFile, members[stayed[0]].ClientCertFile, members[stayed[0]].ClientKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	list := func() []string {
		t.Helper()
		ms, err := c.Members(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, m := range ms {
			got = append(got, m.Name)
			if m.IsLearner {
				t.Errorf("member %s is a learner", m.Name)
			}
		}
		slices.Sort(got)
		return got
	}
	want := []string{names[stayed[0]], names[stayed[1]]}
	slices.Sort(want)
	if got := list(); !slices.Equal(got, want) {
		t.Errorf("members after %s left: %q, want %q", names[leaver], got, want)
	}
	rejoin, err := os.ReadFile(filepath.Join(root, names[leaver], rejoinFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range stayed {
		if !strings.Contains(string(rejoin), clientURLOf(members[i])) {
			t.Errorf("rejoin file %q does not name %s's client URL", rejoin, names[i])
		}
	}

	// Its data never serves alone again.
	if _, err := Start(ctx, Config{DataDir: filepath.Join(root, names[leaver]), ReserveBytes: -1}); !errors.Is(err, ErrLeft) {
		t.Errorf("start the member that left without Member: %v, want ErrLeft", err)
	}

	// Started again without Join, it joins those that stayed.
	m := *members[leaver]
	m.Join = nil
	s, err := Start(ctx, Config{DataDir: filepath.Join(root, names[leaver]), ReserveBytes: -1, Member: &m})
	if err != nil {
		t.Fatalf("start %s again: %v", names[leaver], err)
	}
	t.Cleanup(s.Close)
	servers[leaver] = s
	if s.etcd.Server.MemberID() == oldID {
		t.Errorf("%s rejoined with its old ID %s", names[leaver], oldID)
	}
	if got := list(); !slices.Equal(got, []string{"one", "three", "two"}) {
		t.Errorf("members after %s rejoined: %q, want all three", names[leaver], got)
	}
	got, err := startClient(t, s).Get(ctx, "/registry/k")
	if err != nil || len(got.Kvs) != 1 || string(got.Kvs[0].Value) != "v" {
		t.Errorf("read through the rejoined member: %v, %v", got, err)
	}
	if _, err := os.Stat(filepath.Join(root, names[leaver], rejoinFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("rejoin file left after the rejoin: %v", err)
	}
	aside, _ := filepath.Glob(filepath.Join(root, names[leaver], "member-data.left-*"))
	if len(aside) != 1 {
		t.Errorf("the old member's data moved aside: %q, want one directory", aside)
	}

	// One of the others down: the two that would stay lack a quorum.
	servers[stayed[1]].Close()
	qctx, qcancel := context.WithTimeout(ctx, 3*time.Second)
	defer qcancel()
	if err := s.Leave(qctx); err == nil {
		t.Errorf("%s left while %s was down", names[leaver], names[stayed[1]])
	}
	if got := list(); len(got) != 3 {
		t.Errorf("members after a refused leave: %q, want all three", got)
	}
}

// TestLeaveLastMember: the only voting member stays.
func TestLeaveLastMember(t *testing.T) {
	root := t.TempDir()
	p := memberPKI(t, filepath.Join(root, "pki"), "one", "")
	s, err := Start(context.Background(), Config{DataDir: filepath.Join(root, "e"), ReserveBytes: -1, Member: member(p, "one", nil, freePort(t), freePort(t))})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Leave(context.Background()); !errors.Is(err, ErrLastMember) {
		t.Errorf("the only member leaves: %v, want ErrLastMember", err)
	}
	single, err := Start(context.Background(), Config{DataDir: filepath.Join(root, "single"), ReserveBytes: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer single.Close()
	if err := single.Leave(context.Background()); !errors.Is(err, ErrNotMember) {
		t.Errorf("a single etcd leaves: %v, want ErrNotMember", err)
	}
}

func clientURLOf(m *Member) string {
	u := m.clientURL()
	return u.String()
}

// TestRestartAfterRemoval: a member removed while it ran (`pocketkube
// etcd remove-member`), started again on its data with Join, finds that
// the others no longer count it and joins them as a new member instead
// of being refused.
func TestRestartAfterRemoval(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	p1 := memberPKI(t, filepath.Join(root, "pki1"), "one", "")
	p2 := memberPKI(t, filepath.Join(root, "pki2"), "two", filepath.Join(root, "pki1"))
	m1 := member(p1, "one", nil, freePort(t), freePort(t))
	s1, err := Start(ctx, Config{DataDir: filepath.Join(root, "e1"), ReserveBytes: -1, Member: m1})
	if err != nil {
		t.Fatal(err)
	}
	defer s1.Close()
	join := []string{clientURLOf(m1)}
	m2 := member(p2, "two", join, freePort(t), freePort(t))
	s2, err := Start(ctx, Config{DataDir: filepath.Join(root, "e2"), ReserveBytes: -1, Member: m2})
	if err != nil {
		t.Fatal(err)
	}
	old := s2.etcd.Server.MemberID()
	c, err := NewClient(join, p1.EtcdCA, p1.EtcdClient, p1.EtcdClientKey)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := c.RemoveMember(rctx, "two"); err != nil {
		t.Fatal(err)
	}
	s2.Close()
	m2again := *m2
	s2, err = Start(ctx, Config{DataDir: filepath.Join(root, "e2"), ReserveBytes: -1, Member: &m2again})
	if err != nil {
		t.Fatalf("start the removed member again: %v", err)
	}
	defer s2.Close()
	if s2.etcd.Server.MemberID() == old {
		t.Errorf("the removed member started with its old ID")
	}
	members, err := c.Members(ctx)
	if err != nil || len(members) != 2 {
		t.Errorf("members after the removed one started again: %v, %v", members, err)
	}
}
