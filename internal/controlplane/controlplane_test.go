package controlplane

import (
	"errors"
	"net"
	"path/filepath"
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
	// Loopback and unspecified binds fall back to a host address, which is
	// never loopback (the kubernetes Service must not point at 127.0.0.1).
	if ip, err := advertiseAddress(net.ParseIP("127.0.0.1")); err == nil && ip.IsLoopback() {
		t.Errorf("advertiseAddress(127.0.0.1) = %v, a loopback address", ip)
	}
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
