package runtime

import (
	"os"
	"path/filepath"
	"testing"
)

func TestCgroupStats(t *testing.T) {
	write := func(t *testing.T, dir string, files map[string]string) {
		t.Helper()
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, content := range files {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	tests := []struct {
		name  string
		setup func(t *testing.T, root string) *cgroupFS
		want  CgroupStats
	}{
		{name: "v2 unlimited", setup: func(t *testing.T, root string) *cgroupFS {
			write(t, filepath.Join(root, "kubepods/besteffort/podU"), map[string]string{
				"memory.current": "10000\n", "memory.max": "max\n", "pids.current": "3\n",
				"memory.stat": "anon 6000\nfile 4000\nactive_file 1000\ninactive_file 3000\n",
			})
			return &cgroupFS{v2: true, root: root}
		}, want: CgroupStats{MemoryUsage: 10000, MemoryWorkingSet: 7000, Pids: 3}},
		{name: "v1 limited", setup: func(t *testing.T, root string) *cgroupFS {
			write(t, filepath.Join(root, "memory/kubepods/besteffort/podU"), map[string]string{
				"memory.usage_in_bytes": "10000\n", "memory.limit_in_bytes": "65536\n",
				"memory.stat": "cache 4000\ninactive_file 9\ntotal_inactive_file 2000\n",
			})
			write(t, filepath.Join(root, "pids/kubepods/besteffort/podU"), map[string]string{"pids.current": "7\n"})
			return &cgroupFS{mounts: map[string]string{"memory": filepath.Join(root, "memory"), "pids": filepath.Join(root, "pids")}}
		}, want: CgroupStats{MemoryUsage: 10000, MemoryWorkingSet: 8000, MemoryLimit: 65536, Pids: 7}},
		{name: "v1 unlimited", setup: func(t *testing.T, root string) *cgroupFS {
			write(t, filepath.Join(root, "memory/kubepods/besteffort/podU"), map[string]string{
				"memory.usage_in_bytes": "100\n", "memory.limit_in_bytes": "9223372036854771712\n",
				"memory.stat": "total_inactive_file 200\n",
			})
			return &cgroupFS{mounts: map[string]string{"memory": filepath.Join(root, "memory"), "pids": filepath.Join(root, "pids")}}
		}, want: CgroupStats{MemoryUsage: 100}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.setup(t, t.TempDir())
			got, err := c.stats(podCgroup("/kubepods", qosBestEffort, "U"))
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("stats = %+v, want %+v", got, tt.want)
			}
		})
	}
}
