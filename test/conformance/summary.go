package main

import (
	"encoding/xml"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"
)

// result is what a ginkgo JUnit report says of a run.
type result struct {
	Passed, Failed, Skipped int
	// NotSelected counts the specs focus and skip left out: ginkgo lists
	// them as skipped without a reason.
	NotSelected int
	// Failures are the failed specs' names, each with the first line of
	// its failure; suite nodes ([SynchronizedBeforeSuite], …) that failed
	// are among them and counted.
	Failures []failure
	// Skips are the specs that ran and skipped themselves, with the
	// reason.
	Skips []failure
}

type failure struct{ Name, Reason string }

// junitTestcase is the part of ginkgo v2's JUnit testcase the summary
// reads.
type junitTestcase struct {
	Name    string `xml:"name,attr"`
	Status  string `xml:"status,attr"`
	Skipped *struct {
		Message string `xml:"message,attr"`
	} `xml:"skipped"`
	Failure *struct {
		Message string `xml:"message,attr"`
	} `xml:"failure"`
	Error *struct {
		Message string `xml:"message,attr"`
	} `xml:"error"`
}

func readJUnit(path string) (result, error) {
	var r result
	data, err := os.ReadFile(path)
	if err != nil {
		return r, err
	}
	var doc struct {
		Suites []struct {
			Cases []junitTestcase `xml:"testcase"`
		} `xml:"testsuite"`
	}
	if err := xml.Unmarshal(data, &doc); err != nil {
		return r, fmt.Errorf("read %s: %w", path, err)
	}
	for _, s := range doc.Suites {
		for _, tc := range s.Cases {
			name := strings.TrimPrefix(tc.Name, "[It] ")
			// Specs are It nodes; the others are suite nodes
			// ([SynchronizedBeforeSuite], [ReportAfterSuite] …).
			suiteNode := !strings.HasPrefix(tc.Name, "[It] ")
			switch {
			case tc.Status == "passed":
				if !suiteNode {
					r.Passed++
				}
			case tc.Status == "skipped" || tc.Status == "pending":
				reason := ""
				if tc.Skipped != nil {
					reason = strings.TrimPrefix(strings.TrimPrefix(tc.Skipped.Message, "skipped"), " - ")
				}
				if reason == "" {
					r.NotSelected++
				} else {
					r.Skipped++
					r.Skips = append(r.Skips, failure{name, firstLine(reason)})
				}
			default: // failed, panicked, interrupted, aborted, timedout
				msg := tc.Status
				if tc.Failure != nil && tc.Failure.Message != "" {
					msg = tc.Failure.Message
				} else if tc.Error != nil && tc.Error.Message != "" {
					msg = tc.Error.Message
				}
				r.Failed++
				r.Failures = append(r.Failures, failure{name, tc.Status + ": " + firstLine(msg)})
			}
		}
	}
	sort.Slice(r.Failures, func(i, j int) bool { return r.Failures[i].Name < r.Failures[j].Name })
	sort.Slice(r.Skips, func(i, j int) bool { return r.Skips[i].Name < r.Skips[j].Name })
	return r, nil
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// summary is the run's summary.txt.
type summary struct {
	Date       time.Time
	Pocketkube string
	Suite      string
	Focus      string
	Skip       string
	Procs      int
	Wall       time.Duration
	Usage      processUsage
	Result     result
}

// String ends with the plain "N passed, N failed, N skipped" line.
func (s summary) String() string {
	var b strings.Builder
	r := s.Result
	fmt.Fprintf(&b, "conformance run of %s\n", s.Date.Format(time.RFC3339))
	fmt.Fprintf(&b, "pocketkube: %s\ne2e.test: %s\n", s.Pocketkube, s.Suite)
	fmt.Fprintf(&b, "focus: %s\nskip: %s\nginkgo procs: %d\n", s.Focus, s.Skip, s.Procs)
	fmt.Fprintf(&b, "wall time: %s\n", s.Wall.Round(time.Second))
	fmt.Fprintf(&b, "pocketkube up: peak RSS %d MiB, CPU %s\n", s.Usage.PeakRSSKiB/1024, s.Usage.CPU.Round(time.Second))
	fmt.Fprintf(&b, "specs not selected by focus/skip: %d\n", r.NotSelected)
	if len(r.Failures) > 0 {
		fmt.Fprintf(&b, "\nfailed (%d):\n", len(r.Failures))
		for _, f := range r.Failures {
			fmt.Fprintf(&b, "- %s\n    %s\n", f.Name, f.Reason)
		}
	}
	if len(r.Skips) > 0 {
		fmt.Fprintf(&b, "\nskipped by the spec itself (%d):\n", len(r.Skips))
		for _, f := range r.Skips {
			fmt.Fprintf(&b, "- %s\n    %s\n", f.Name, f.Reason)
		}
	}
	fmt.Fprintf(&b, "\n%d passed, %d failed, %d skipped\n", r.Passed, r.Failed, r.Skipped)
	return b.String()
}

// strictErr is what a CI run makes of the result: an error when a spec
// (or a suite node) failed, or when nothing passed (a focus that selects
// nothing must not pass for a green run).
func (r result) strictErr() error {
	switch {
	case r.Failed > 0:
		return fmt.Errorf("%d of %d specs failed", r.Failed, r.Passed+r.Failed)
	case r.Passed == 0:
		return fmt.Errorf("no spec passed (%d skipped): the focus selects nothing that runs", r.Skipped)
	}
	return nil
}
