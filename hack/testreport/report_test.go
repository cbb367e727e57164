package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/pocketkube/pocketkube/internal/golden"
)

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
		name := tc.name + ".golden"
		if tc.verbose {
			name = tc.name + ".v.golden"
		}
		t.Run(name, func(t *testing.T) {
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
			golden.Check(t, name, out.Bytes())
		})
	}
}
