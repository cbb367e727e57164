package atomicfile

import (
	"os"
	"path/filepath"
	"testing"
)

func TestWrite(t *testing.T) {
	tests := []struct {
		name  string
		write func(string, []byte, os.FileMode) error
		old   []byte
		mode  os.FileMode
	}{
		{"new file", Write, nil, 0o600},
		{"replaces", Write, []byte("old content that is longer"), 0o644},
		{"executable", Write, []byte("old"), 0o755},
		{"unsynced new file", WriteUnsynced, nil, 0o600},
		{"unsynced replaces", WriteUnsynced, []byte("old content that is longer"), 0o644},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "f")
			if tt.old != nil {
				if err := os.WriteFile(path, tt.old, 0o666); err != nil {
					t.Fatal(err)
				}
			}
			if err := tt.write(path, []byte("new"), tt.mode); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(path)
			if err != nil || string(got) != "new" {
				t.Fatalf("read back %q, %v", got, err)
			}
			fi, _ := os.Stat(path)
			if fi.Mode().Perm() != tt.mode {
				t.Errorf("mode %v, want %v", fi.Mode().Perm(), tt.mode)
			}
			entries, _ := os.ReadDir(dir)
			if len(entries) != 1 {
				t.Errorf("%d files left in dir, want 1", len(entries))
			}
		})
	}
}

func TestWriteMissingDir(t *testing.T) {
	if err := Write(filepath.Join(t.TempDir(), "no", "f"), nil, 0o600); err == nil {
		t.Error("Write into a missing directory succeeded")
	}
}
