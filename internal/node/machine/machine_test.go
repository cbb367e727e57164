package machine

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestReadFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, data string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	mem, err := memTotal(write("meminfo", "MemFree: 1 kB\nMemTotal:       8048576 kB\n"))
	if err != nil || mem != 8048576<<10 {
		t.Errorf("memTotal = %d, %v", mem, err)
	}
	if _, err := memTotal(write("bad", "MemFree: 1 kB\n")); err == nil {
		t.Error("memTotal without MemTotal succeeded")
	}
	for _, tc := range []struct{ name, data, want string }{
		{"quoted", "NAME=x\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n", "Debian GNU/Linux 12 (bookworm)"},
		{"bare", "PRETTY_NAME=Alpine\n", "Alpine"},
		{"none", "NAME=x\n", "Linux"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := osImage(write(tc.name, tc.data)); got != tc.want {
				t.Errorf("osImage = %q, want %q", got, tc.want)
			}
		})
	}
	if got := osImage(filepath.Join(dir, "missing")); got != "Linux" {
		t.Errorf("osImage of a missing file = %q", got)
	}
	if got := bootTime(write("stat", "cpu  1 2 3\nbtime 1700000000\nprocesses 9\n")); !got.Equal(time.Unix(1700000000, 0)) {
		t.Errorf("bootTime = %v", got)
	}
	if got := bootTime(filepath.Join(dir, "missing")); !got.IsZero() {
		t.Errorf("bootTime of a missing file = %v", got)
	}
}

func TestRead(t *testing.T) {
	m, err := Read(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if m.NumCPU < 1 || m.MemoryBytes <= 0 || m.StorageBytes <= 0 || m.KernelVersion == "" || m.BootTime.IsZero() {
		t.Errorf("Read = %+v", m)
	}
}
