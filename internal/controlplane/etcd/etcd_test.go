package etcd

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

func startClient(t *testing.T, s *Server) *clientv3.Client {
	t.Helper()
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{s.Endpoint()}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestRestartKeepsData(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "etcd")
	s, err := Start(ctx, Config{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(s.Endpoint(), "unix://") {
		t.Errorf("endpoint %q is not a unix socket", s.Endpoint())
	}
	c := startClient(t, s)
	if _, err := c.Put(ctx, "/registry/x", "y"); err != nil {
		t.Fatal(err)
	}
	c.Close()
	s.Close()

	s, err = Start(ctx, Config{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := startClient(t, s).Get(ctx, "/registry/x")
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Kvs) != 1 || string(got.Kvs[0].Value) != "y" {
		t.Errorf("after restart got %v, want y", got.Kvs)
	}
}

func TestStaleSocketIsReplaced(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "etcd")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "etcd.sock"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := Start(context.Background(), Config{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
}

func TestStartErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"no data dir", Config{}, "DataDir is required"},
		{"socket path too long", Config{DataDir: "/tmp/" + strings.Repeat("d", 120)}, "use a shorter --data-dir"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Start(context.Background(), tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func BenchmarkStart(b *testing.B) {
	for b.Loop() {
		s, err := Start(context.Background(), Config{DataDir: filepath.Join(b.TempDir(), "etcd")})
		if err != nil {
			b.Fatal(err)
		}
		s.Close()
	}
}

// TestNoNetworkListener checks that etcd listens on no TCP or UDP port,
// only on its socket: a peer port served without client authentication
// let any local user or hostNetwork pod post raft messages or a snapshot
// (issue 13), and the member has no peer to talk to.
func TestNoNetworkListener(t *testing.T) {
	before := listeningInodes(t)
	dir := filepath.Join(t.TempDir(), "etcd")
	s, err := Start(context.Background(), Config{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for inode, addr := range listeningInodes(t) {
		if _, ok := before[inode]; !ok {
			t.Errorf("etcd listens on %s", addr)
		}
	}
}

// TestDataDirIsPrivate checks that a data directory made readable by
// others is made 0700 again: its mode is all that keeps other users off
// the client socket, which asks for no credentials.
func TestDataDirIsPrivate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "etcd")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	s, err := Start(context.Background(), Config{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 {
		t.Errorf("data dir mode %v, want 0700", fi.Mode().Perm())
	}
}

// listeningInodes returns this process's listening TCP sockets and bound
// UDP sockets (from /proc/net/{tcp,tcp6,udp,udp6}), by socket inode.
func listeningInodes(t *testing.T) map[string]string {
	t.Helper()
	mine := map[string]bool{}
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	for _, fd := range fds {
		link, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name()))
		if err == nil && strings.HasPrefix(link, "socket:[") {
			mine[strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]")] = true
		}
	}
	out := map[string]string{}
	for _, name := range []string{"tcp", "tcp6", "udp", "udp6"} {
		data, err := os.ReadFile("/proc/net/" + name)
		if err != nil {
			continue // no IPv6
		}
		for i, line := range strings.Split(string(data), "\n") {
			f := strings.Fields(line)
			if i == 0 || len(f) < 10 {
				continue
			}
			// st 0A is TCP_LISTEN; a UDP socket with no peer is 07.
			listening := (strings.HasPrefix(name, "tcp") && f[3] == "0A") || (strings.HasPrefix(name, "udp") && f[3] == "07")
			if listening && mine[f[9]] {
				out[f[9]] = name + " " + f[1]
			}
		}
	}
	return out
}
