package shim

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func TestCopyLog(t *testing.T) {
	long := strings.Repeat("x", maxLogLineSize+10)
	tests := []struct {
		name  string
		input string
		want  []string // "<stream> <tag> <text>"
	}{
		{name: "lines", input: "a\nb\n", want: []string{"stdout F a", "stdout F b"}},
		{name: "empty line", input: "\n", want: []string{"stdout F "}},
		// containerd: a last line without a newline is partial, so that
		// `echo -n DONE` reads back as "DONE", not "DONE\n".
		{name: "no final newline", input: "a\nb", want: []string{"stdout F a", "stdout P b"}},
		{name: "crlf", input: "a\r\nb\n", want: []string{"stdout F a", "stdout F b"}},
		{name: "long line is split", input: long + "\n", want: []string{"stdout P " + long[:maxLogLineSize], "stdout F " + long[maxLogLineSize:]}},
	}
	ts := regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d) `)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "0.log")
			lw, err := newLogWriter(path, defaultLogMaxSize, defaultLogMaxFiles)
			if err != nil {
				t.Fatal(err)
			}
			copyLog(lw, "stdout", strings.NewReader(tt.input))
			lw.Close()
			b, _ := os.ReadFile(path)
			lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
			if len(lines) != len(tt.want) {
				t.Fatalf("got %d entries, want %d: %q", len(lines), len(tt.want), b)
			}
			for i, l := range lines {
				if !ts.MatchString(l) {
					t.Errorf("entry %d has no RFC3339Nano timestamp: %q", i, l)
				}
				if got := ts.ReplaceAllString(l, ""); got != tt.want[i] {
					t.Errorf("entry %d = %.40q, want %.40q", i, got, tt.want[i])
				}
			}
		})
	}
}

func TestLogRotation(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "0.log")
	lw, err := newLogWriter(path, 1000, 3)
	if err != nil {
		t.Fatal(err)
	}
	line := []byte(strings.Repeat("y", 200))
	for i := 0; i < 40; i++ {
		lw.WriteEntry("stdout", false, line)
	}
	lw.Close()
	files, _ := filepath.Glob(path + "*")
	if len(files) != 3 {
		t.Errorf("files = %v, want the live log and 2 rotated ones", files)
	}
	for _, f := range files {
		st, _ := os.Stat(f)
		if st.Size() > 1000 {
			t.Errorf("%s has %d bytes, over the 1000 limit", f, st.Size())
		}
	}
	if _, err := os.Stat(path); err != nil {
		t.Errorf("live log: %v", err)
	}
}

// A shim lives as long as its container: a container that logs without a
// pause must not make its shim allocate per line (the runtime collects no
// heap below 4 MiB, so garbage stays resident: 6 MiB per chatty shim).
func TestWriteEntryAllocatesNothing(t *testing.T) {
	lw, err := newLogWriter(filepath.Join(t.TempDir(), "0.log"), defaultLogMaxSize, defaultLogMaxFiles)
	if err != nil {
		t.Fatal(err)
	}
	defer lw.Close()
	line := []byte(strings.Repeat("z", 80))
	if n := testing.AllocsPerRun(1000, func() { lw.WriteEntry("stdout", false, line) }); n != 0 {
		t.Errorf("%v allocations per entry, want 0", n)
	}
}
