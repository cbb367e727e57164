package volume

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSubPath(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(t *testing.T, vol, outside string)
		subPath string
		want    string // relative to the resolved volume path
		wantErr string
	}{
		{name: "empty is the volume", subPath: "", want: "."},
		{name: "creates a directory", subPath: "a", want: "a"},
		{name: "creates nested directories", subPath: "a/b/c", want: "a/b/c"},
		{name: "existing file", subPath: "f", want: "f",
			setup: func(t *testing.T, vol, _ string) { write(t, vol+"/f") }},
		{name: "symlink inside the volume", subPath: "link/x", want: "real/x",
			setup: func(t *testing.T, vol, _ string) {
				mkdir(t, vol+"/real/x")
				symlink(t, "real", vol+"/link")
			}},
		{name: "configmap key through ..data", subPath: "key", want: "..2026_11_23_10_00_00.1/key",
			setup: func(t *testing.T, vol, _ string) {
				mkdir(t, vol+"/..2026_11_23_10_00_00.1")
				write(t, vol+"/..2026_11_23_10_00_00.1/key")
				symlink(t, "..2026_11_23_10_00_00.1", vol+"/..data")
				symlink(t, "..data/key", vol+"/key")
			}},
		{name: "absolute", subPath: "/etc", wantErr: "error SubPath `/etc` must not be an absolute path"},
		{name: "backsteps", subPath: "a/../../etc", wantErr: "unable to provision SubPath `a/../../etc`: must not contain '..'"},
		{name: "dotdot alone", subPath: "..", wantErr: "unable to provision SubPath `..`: must not contain '..'"},
		{name: "existing symlink escape", subPath: "esc", wantErr: "not within volume path",
			setup: func(t *testing.T, vol, outside string) { symlink(t, outside, vol+"/esc") }},
		{name: "relative symlink escape", subPath: "esc/x", wantErr: "not within volume path",
			setup: func(t *testing.T, vol, outside string) { symlink(t, "../outside", vol+"/esc") }},
		{name: "creation through an escaping symlink", subPath: "esc/new", wantErr: "create subpath",
			setup: func(t *testing.T, vol, outside string) { symlink(t, outside, vol+"/esc") }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			vol, outside := root+"/vol", root+"/outside"
			mkdir(t, outside+"/x")
			if err := os.Mkdir(vol, 0o750); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(vol, 0o750|os.ModeSetgid); err != nil {
				t.Fatal(err)
			}
			if tc.setup != nil {
				tc.setup(t, vol, outside)
			}
			got, err := SubPath(vol, tc.subPath)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("SubPath(%q) = %q, %v; want error containing %q", tc.subPath, got, err, tc.wantErr)
				}
				if _, err := os.Stat(outside + "/new"); !os.IsNotExist(err) {
					t.Errorf("a directory was created outside the volume: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			realVol, _ := filepath.EvalSymlinks(vol)
			if want := filepath.Join(realVol, tc.want); got != want && !(tc.subPath == "" && got == vol) {
				t.Errorf("SubPath(%q) = %q, want %q", tc.subPath, got, want)
			}
			if tc.setup == nil && tc.subPath != "" {
				// Created with the mode of the volume root, as kubelet does.
				for p := got; p != realVol; p = filepath.Dir(p) {
					fi, err := os.Stat(p)
					if err != nil {
						t.Fatal(err)
					}
					if want := os.ModeDir | os.ModeSetgid | 0o750; fi.Mode() != want {
						t.Errorf("%s mode = %v, want %v", p, fi.Mode(), want)
					}
				}
			}
		})
	}
}

func mkdir(t *testing.T, p string) {
	t.Helper()
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
}

func write(t *testing.T, p string) {
	t.Helper()
	if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
}

func symlink(t *testing.T, target, p string) {
	t.Helper()
	if err := os.Symlink(target, p); err != nil {
		t.Fatal(err)
	}
}
