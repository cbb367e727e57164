package network

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/cni/libcni"
	"github.com/pocketkube/pocketkube/internal/golden"
)

func TestConfList(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		portmap bool
	}{
		{name: "defaults", cfg: Config{PodCIDR: "10.244.0.0/24", Bridge: "pk0"}},
		{name: "hostports", cfg: Config{PodCIDR: "10.244.0.0/24", Bridge: "pk0"}, portmap: true},
		{name: "mtu", cfg: Config{PodCIDR: "10.244.1.0/24", Bridge: "pk0", MTU: 1400}},
		{name: "dual-stack", cfg: Config{PodCIDR: "10.244.0.0/24, fd00:10:244::/64", Bridge: "pk0"}},
		{name: "ipv6", cfg: Config{PodCIDR: "fd00:10:244::/64", Bridge: "pk0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw, err := buildConfList(tt.cfg, "/STATE/cni/ipam", tt.portmap)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := libcni.ConfListFromBytes(raw); err != nil {
				t.Fatalf("libcni rejects the conflist: %v", err)
			}
			golden.Check(t, "conflist/"+tt.name+".json", raw)
		})
	}
}

func TestConfListInvalid(t *testing.T) {
	for _, cidr := range []string{"10.244.0.0", "10.0.0.0/24,10.1.0.0/24", " , ", "a/b"} {
		t.Run(cidr, func(t *testing.T) {
			if _, err := buildConfList(Config{PodCIDR: cidr, Bridge: "pk0"}, "/x", false); err == nil {
				t.Fatalf("buildConfList(%q) succeeded", cidr)
			}
		})
	}
}

func TestNew(t *testing.T) {
	plugins := t.TempDir()
	for _, p := range []string{"bridge", "host-local", "portmap"} {
		if err := os.WriteFile(filepath.Join(plugins, p), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{name: "ok", cfg: Config{StateDir: t.TempDir(), PodCIDR: "10.244.0.0/24", PluginDirs: []string{plugins}}},
		{name: "no state dir", cfg: Config{PodCIDR: "10.244.0.0/24", PluginDirs: []string{plugins}}, wantErr: "StateDir is required"},
		{name: "no pod CIDR", cfg: Config{StateDir: t.TempDir(), PluginDirs: []string{plugins}}, wantErr: "PodCIDR is required"},
		{name: "bad pod CIDR", cfg: Config{StateDir: t.TempDir(), PodCIDR: "nope", PluginDirs: []string{plugins}}, wantErr: "parse pod CIDR"},
		{name: "long bridge name", cfg: Config{StateDir: t.TempDir(), PodCIDR: "10.244.0.0/24", PluginDirs: []string{plugins}, Bridge: "a-very-long-bridge"}, wantErr: "longer than 15"},
		{name: "missing plugins", cfg: Config{StateDir: t.TempDir(), PodCIDR: "10.244.0.0/24", PluginDirs: []string{t.TempDir()}}, wantErr: "find CNI plugin bridge"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := New(t.Context(), tt.cfg)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("New err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			written, err := os.ReadFile(filepath.Join(tt.cfg.StateDir, "pocketkube.conflist"))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(written, m.ConfList()) {
				t.Errorf("written conflist differs from ConfList()")
			}
			if !bytes.Contains(written, []byte(`"bridge": "pk0"`)) || !bytes.Contains(written, []byte(filepath.Join(tt.cfg.StateDir, "cni", "ipam"))) {
				t.Errorf("conflist lacks defaults:\n%s", written)
			}
			if uids, err := m.List(t.Context()); err != nil || len(uids) != 0 {
				t.Errorf("List on a new state dir = %v, %v", uids, err)
			}
			if _, err := m.Status(t.Context(), "nope"); !errors.Is(err, ErrNotFound) {
				t.Errorf("Status of unknown pod: %v, want ErrNotFound", err)
			}
		})
	}
}
