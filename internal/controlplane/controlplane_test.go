package controlplane

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestParseListen(t *testing.T) {
	tests := []struct {
		listen  string
		ip      string
		port    int
		wantErr string
	}{
		{"0.0.0.0:6443", "0.0.0.0", 6443, ""},
		{":6443", "0.0.0.0", 6443, ""},
		{"127.0.0.1:16443", "127.0.0.1", 16443, ""},
		{"[::1]:6443", "::1", 6443, ""},
		{"127.0.0.1", "", 0, "missing port"},
		{"127.0.0.1:0", "", 0, "port must be 1-65535"},
		{"127.0.0.1:http", "", 0, "port must be 1-65535"},
		{"localhost:6443", "", 0, "host must be an IP address"},
	}
	for _, tt := range tests {
		t.Run(tt.listen, func(t *testing.T) {
			ip, port, err := parseListen(tt.listen)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("err = %v, want %q", err, tt.wantErr)
				}
				if le := (*ListenError)(nil); !errors.As(err, &le) || le.Listen != tt.listen {
					t.Errorf("err = %v, want a ListenError for %q", err, tt.listen)
				}
				return
			}
			if err != nil || !ip.Equal(net.ParseIP(tt.ip)) || port != tt.port {
				t.Errorf("= %v, %d, %v; want %s, %d", ip, port, err, tt.ip, tt.port)
			}
		})
	}
}

func TestDialHost(t *testing.T) {
	tests := []struct{ bind, want string }{
		{"0.0.0.0", "127.0.0.1"},
		{"::", "::1"},
		{"192.0.2.2", "192.0.2.2"},
		{"127.0.0.1", "127.0.0.1"},
	}
	for _, tt := range tests {
		if got := dialHost(net.ParseIP(tt.bind)); !got.Equal(net.ParseIP(tt.want)) {
			t.Errorf("dialHost(%s) = %s, want %s", tt.bind, got, tt.want)
		}
	}
}

func TestAdvertiseAddressKeepsSpecificBind(t *testing.T) {
	ip, err := advertiseAddress(net.ParseIP("198.51.100.4"))
	if err != nil || !ip.Equal(net.ParseIP("198.51.100.4")) {
		t.Errorf("advertiseAddress = %v, %v", ip, err)
	}
	// Loopback and unspecified binds fall back to the address of the host
	// interface with the default route, which is never loopback (the
	// kubernetes Service must not point at 127.0.0.1). Without a default
	// route there is no such address, and the error says what to pass.
	defaultRoute := hasDefaultRoute(t)
	for _, bind := range []string{"127.0.0.1", "0.0.0.0", "::"} {
		ip, err := advertiseAddress(net.ParseIP(bind))
		switch {
		case !defaultRoute:
			if err == nil || !strings.Contains(err.Error(), "pass --advertise-address") {
				t.Errorf("advertiseAddress(%s) without a default route = %v, %v; want an error naming --advertise-address", bind, ip, err)
			}
		case err != nil:
			t.Errorf("advertiseAddress(%s) with a default route: %v", bind, err)
		case ip.IsLoopback() || !slices.ContainsFunc(hostIPs(), ip.Equal):
			t.Errorf("advertiseAddress(%s) = %v, want one of the host's addresses %v", bind, ip, hostIPs())
		}
	}
}

// hasDefaultRoute reports whether the host has an IPv4 or IPv6 default
// route, as the kernel lists them.
func hasDefaultRoute(t *testing.T) bool {
	t.Helper()
	v4, err := os.ReadFile("/proc/net/route")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(v4), "\n")[1:] {
		if f := strings.Fields(line); len(f) > 1 && f[1] == "00000000" {
			return true
		}
	}
	v6, _ := os.ReadFile("/proc/net/ipv6_route")
	for _, line := range strings.Split(string(v6), "\n") {
		if f := strings.Fields(line); len(f) > 9 && f[0] == strings.Repeat("0", 32) && f[1] == "00" && f[9] != "lo" {
			return true
		}
	}
	return false
}

func TestLockDir(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lock")
	l, err := lockDir(path)
	if err != nil {
		t.Fatal(err)
	}
	// flock locks belong to the open file description, so a second open in
	// this process conflicts just as another process would.
	_, err = lockDir(path)
	if !errors.Is(err, ErrDataDirInUse) || !strings.Contains(err.Error(), "pocketkube (pid ") {
		t.Errorf("second lock: %v, want ErrDataDirInUse naming the pid", err)
	}
	l.release()
	l2, err := lockDir(path)
	if err != nil {
		t.Fatalf("lock after release: %v", err)
	}
	l2.release()
}

func TestRunRequiresDataDir(t *testing.T) {
	if err := Run(t.Context(), Config{}); err == nil || !strings.Contains(err.Error(), "DataDir is required") {
		t.Errorf("Run without DataDir = %v", err)
	}
}
