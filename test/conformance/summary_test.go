package main

import (
	"strings"
	"testing"
	"time"
)

func TestReadJUnit(t *testing.T) {
	r, err := readJUnit("testdata/junit.xml")
	if err != nil {
		t.Fatal(err)
	}
	if r.Passed != 1 || r.Failed != 1 || r.Skipped != 1 || r.NotSelected != 2 {
		t.Errorf("passed %d, failed %d, skipped %d, not selected %d; want 1, 1, 1, 2 (the suite node is not a spec)",
			r.Passed, r.Failed, r.Skipped, r.NotSelected)
	}
	wantFailure := failure{
		Name:   "[sig-node] ConfigMap should be consumable via the environment [NodeConformance] [Conformance] [Conformance, NodeConformance, sig-node]",
		Reason: "failed: Expected",
	}
	if len(r.Failures) != 1 || r.Failures[0] != wantFailure {
		t.Errorf("failures %q, want [%q]", r.Failures, wantFailure)
	}
	if len(r.Skips) != 1 || r.Skips[0].Reason != "Requires at least 2 nodes (not 1)" {
		t.Errorf("skips %q, want the 2-node spec with its reason", r.Skips)
	}
	text := summary{Date: time.Unix(0, 0), Wall: time.Minute, Result: r}.String()
	if !strings.HasSuffix(text, "\n1 passed, 1 failed, 1 skipped\n") {
		t.Errorf("summary does not end with the counts line:\n%s", text)
	}
}

func TestStrictErr(t *testing.T) {
	tests := []struct {
		name string
		r    result
		want string
	}{
		{"all passed", result{Passed: 17, NotSelected: 3189}, ""},
		{"one failed", result{Passed: 16, Failed: 1}, "1 of 17 specs failed"},
		{"nothing ran", result{NotSelected: 3206}, "no spec passed (0 skipped): the focus selects nothing that runs"},
		{"all skipped themselves", result{Skipped: 2}, "no spec passed (2 skipped): the focus selects nothing that runs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.r.strictErr()
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tt.want {
				t.Errorf("strictErr() = %q, want %q", got, tt.want)
			}
		})
	}
}
