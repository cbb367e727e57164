package runtime

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"k8s.io/klog/v2/ktesting"
)

func TestInstallShim(t *testing.T) {
	bin := []byte("#!/bin/sh\necho shim\n")
	tests := []struct {
		name   string
		before map[string]string // file name in dir → content; "$" = bin's own name
		mode   os.FileMode       // of "$" when present
	}{
		{name: "fresh"},
		{name: "reused", before: map[string]string{"$": string(bin)}, mode: 0o755},
		{name: "wrong mode fixed", before: map[string]string{"$": string(bin)}, mode: 0o600},
		{name: "torn copy replaced", before: map[string]string{"$": "#!/bin/sh\nec"}, mode: 0o755},
		{name: "other versions removed", before: map[string]string{
			"pocketkube-shim-0123456789abcdef": "old", "README": "kept", ".pocketkube-shim-x.tmp1": "in progress"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "bin")
			want, err := installShim(t.TempDir(), bin) // the name only
			if err != nil {
				t.Fatal(err)
			}
			name := filepath.Base(want)
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			var inode uint64
			for n, content := range tt.before {
				mode := os.FileMode(0o644)
				if n == "$" {
					n, mode = name, tt.mode
				}
				p := filepath.Join(dir, n)
				if err := os.WriteFile(p, []byte(content), mode); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(p, mode); err != nil {
					t.Fatal(err)
				}
				if n == name {
					inode = inodeOf(t, p)
				}
			}
			got, err := installShim(dir, bin)
			if err != nil {
				t.Fatal(err)
			}
			if got != filepath.Join(dir, name) {
				t.Errorf("path = %s, want %s", got, filepath.Join(dir, name))
			}
			if !strings.HasPrefix(name, "pocketkube-shim-") || len(name) != len("pocketkube-shim-")+16 {
				t.Errorf("name %q is not pocketkube-shim-<16 hex digits>", name)
			}
			b, err := os.ReadFile(got)
			if err != nil || !bytes.Equal(b, bin) {
				t.Errorf("content = %q, %v; want %q", b, err, bin)
			}
			st, err := os.Stat(got)
			if err != nil || st.Mode() != 0o755 {
				t.Errorf("mode = %v, %v; want 0755", st.Mode(), err)
			}
			if tt.name == "reused" && inodeOf(t, got) != inode {
				t.Errorf("an identical copy was rewritten")
			}
			entries, _ := os.ReadDir(dir)
			var names []string
			for _, e := range entries {
				names = append(names, e.Name())
			}
			wantNames := []string{name}
			if tt.name == "other versions removed" {
				wantNames = []string{".pocketkube-shim-x.tmp1", "README", name}
			}
			if strings.Join(names, " ") != strings.Join(wantNames, " ") {
				t.Errorf("dir holds %v, want %v", names, wantNames)
			}
		})
	}
}

func TestInstallShimRuns(t *testing.T) {
	p, err := installShim(t.TempDir(), []byte("#!/bin/sh\necho ran \"$@\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	cmd, err := startRetryBusy(func() *exec.Cmd {
		cmd := exec.Command(p, "--bundle", "x")
		cmd.Stdout = &out
		return cmd
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil || out.String() != "ran --bundle x\n" {
		t.Errorf("extracted shim printed %q, %v", out.String(), err)
	}
}

// TestNewDefaultShim checks the default ShimPath: the shim embedded by
// `make build`, extracted under StateDir/bin, or else this binary's
// runtime-shim command.
func TestNewDefaultShim(t *testing.T) {
	runc := requireRunc(t)
	_, ctx := ktesting.NewTestContext(t)
	stateDir := t.TempDir()
	r, err := New(ctx, Config{StateDir: stateDir, RuncPath: runc})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	bin := embeddedShim()
	if bin == nil {
		exe, _ := os.Executable()
		if r.cfg.ShimPath != exe || strings.Join(r.cfg.ShimArgs, " ") != "runtime-shim" {
			t.Errorf("shim = %s %v, want %s runtime-shim", r.cfg.ShimPath, r.cfg.ShimArgs, exe)
		}
		t.Log("no embedded shim (run `make build` first to test the extraction by New)")
		return
	}
	if filepath.Dir(r.cfg.ShimPath) != filepath.Join(stateDir, "bin") || len(r.cfg.ShimArgs) != 0 {
		t.Errorf("shim = %s %v, want StateDir/bin/pocketkube-shim-… without args", r.cfg.ShimPath, r.cfg.ShimArgs)
	}
	b, err := os.ReadFile(r.cfg.ShimPath)
	if err != nil || !bytes.Equal(b, bin) {
		t.Errorf("extracted shim differs from the embedded one (%v)", err)
	}
	// The real shim binary answers bad arguments with exit code 2.
	err = exec.Command(r.cfg.ShimPath).Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 {
		t.Errorf("shim without --bundle: %v, want exit code 2", err)
	}
}

func inodeOf(t *testing.T, path string) uint64 {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Sys().(*syscall.Stat_t).Ino
}
