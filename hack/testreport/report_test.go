package main

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the testdata/*.golden files")

// The inputs in testdata are real `go test -json` output of small packages
// (Go 1.26); NAME.golden is the report of NAME.json without -v and
// NAME.v.golden with -v.
func TestReport(t *testing.T) {
	tests := []struct {
		name    string
		verbose bool
		ok      bool
	}{
		{name: "pass", ok: true},
		{name: "pass", verbose: true, ok: true},
		{name: "skip_and_build_failure"},
		{name: "skip_and_build_failure", verbose: true},
		{name: "panic"},
		{name: "no_tests"},
	}
	for _, tc := range tests {
		golden := tc.name + ".golden"
		if tc.verbose {
			golden = tc.name + ".v.golden"
		}
		t.Run(golden, func(t *testing.T) {
			in, err := os.Open(filepath.Join("testdata", tc.name+".json"))
			if err != nil {
				t.Fatal(err)
			}
			defer in.Close()
			var out bytes.Buffer
			ok, err := report(in, &out, tc.verbose)
			if err != nil {
				t.Fatal(err)
			}
			if ok != tc.ok {
				t.Errorf("report() ok = %v, want %v", ok, tc.ok)
			}
			path := filepath.Join("testdata", golden)
			if *update {
				if err := os.WriteFile(path, out.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(string(want), out.String()); diff != "" {
				t.Errorf("report output (-want +got):\n%s", diff)
			}
		})
	}
}
