package runtime

import (
	"os"
	"path/filepath"
	"testing"
)

func TestFindRunc(t *testing.T) {
	// $PATH's runc, the fallback: a fake one in a directory of its own.
	pathDir := t.TempDir()
	pathRunc := filepath.Join(pathDir, "runc")
	if err := os.WriteFile(pathRunc, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", pathDir)
	for _, tc := range []struct {
		name   string
		beside func(t *testing.T, path string) // makes bin/runc, or not
		want   string                          // "beside" or "path"
	}{
		{name: "executable beside", want: "beside", beside: func(t *testing.T, p string) {
			if err := os.WriteFile(p, []byte("#!/bin/sh\n"), 0o755); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "none beside", want: "path", beside: func(*testing.T, string) {}},
		{name: "not executable beside", want: "path", beside: func(t *testing.T, p string) {
			if err := os.WriteFile(p, []byte("#!/bin/sh\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "directory beside", want: "path", beside: func(t *testing.T, p string) {
			if err := os.Mkdir(p, 0o755); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bin := t.TempDir()
			tc.beside(t, filepath.Join(bin, "runc"))
			got, err := findRunc(filepath.Join(bin, "pocketkube"))
			if err != nil {
				t.Fatal(err)
			}
			want := pathRunc
			if tc.want == "beside" {
				want = filepath.Join(bin, "runc")
			}
			if got != want {
				t.Errorf("findRunc = %q, want %q", got, want)
			}
		})
	}
	t.Run("none anywhere", func(t *testing.T) {
		t.Setenv("PATH", t.TempDir())
		if p, err := findRunc(filepath.Join(t.TempDir(), "pocketkube")); err == nil {
			t.Errorf("findRunc = %q, want an error", p)
		}
	})
}
