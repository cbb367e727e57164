package shim

import (
	"testing"
	"time"
)

func TestParseReady(t *testing.T) {
	start, end := time.Unix(1700000000, 123456789), time.Unix(1700000000, 223456789)
	for _, tc := range []struct {
		name       string
		report     string
		ok         bool
		start, end time.Time
	}{
		{name: "with runc times", report: readyReport(start, end), ok: true, start: start, end: end},
		{name: "bare ok of an older shim", report: "ok\n", ok: true},
		{name: "runc error", report: `exec: "nope": executable file not found in $PATH`},
		{name: "error text starting with ok", report: "ok, but no: something failed"},
		{name: "empty (the shim died)", report: ""},
		{name: "unparsable times", report: "ok x y", ok: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, e, ok := ParseReady(tc.report)
			if ok != tc.ok || !s.Equal(tc.start) || !e.Equal(tc.end) {
				t.Errorf("ParseReady(%q) = %v, %v, %v; want %v, %v, %v", tc.report, s, e, ok, tc.start, tc.end, tc.ok)
			}
		})
	}
}
