package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
)

// event is one line of `go test -json` (see `go doc test2json`).
type event struct {
	Action     string
	Package    string
	Test       string
	Output     string
	ImportPath string // build-output and build-fail events name the package here
}

type testID struct{ pkg, test string }

// skip is a skipped test and the lines it logged, which say why.
type skip struct {
	testID
	reason string
}

// tally follows the event stream: what each running test printed, and the
// counts so far.
type tally struct {
	w       io.Writer
	verbose bool

	output   map[testID][]string // output of tests still running
	failedIn map[string]int      // failed tests per package
	passed   int
	failed   int
	skipped  []skip
	broken   []string // packages that failed outside any test
}

// report copies the human output of the `go test -json` stream r to w, then
// the skipped tests and the "N passed, N failed" line. ok is false when
// anything failed or skipped, or when no test ran.
func report(r io.Reader, w io.Writer, verbose bool) (ok bool, err error) {
	t := &tally{w: w, verbose: verbose, output: map[testID][]string{}, failedIn: map[string]int{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 16*1024*1024)
	for sc.Scan() {
		line := sc.Bytes()
		var e event
		if len(line) == 0 || line[0] != '{' || json.Unmarshal(line, &e) != nil {
			// Not an event (go test -json prints a few lines of its own
			// when it cannot start): pass it through.
			fmt.Fprintf(w, "%s\n", line)
			continue
		}
		t.add(e)
	}
	if err := sc.Err(); err != nil {
		return false, fmt.Errorf("read go test -json output: %w", err)
	}
	return t.summary(), nil
}

func (t *tally) add(e event) {
	id := testID{e.Package, e.Test}
	switch {
	case e.Action == "build-output":
		fmt.Fprint(t.w, e.Output)
	case e.Action == "output" && e.Test == "":
		// Package lines: "ok  pkg 1.2s", "FAIL pkg", "?  pkg [no test
		// files]". The bare PASS is there only because -json runs the
		// test binary verbosely; go test without -v does not print it.
		if t.verbose || e.Output != "PASS\n" {
			fmt.Fprint(t.w, e.Output)
		}
	case e.Action == "output":
		if t.verbose {
			fmt.Fprint(t.w, e.Output)
		}
		t.output[id] = append(t.output[id], e.Output)
	case e.Action == "pass" && e.Test != "":
		t.passed++
		delete(t.output, id)
	case e.Action == "fail" && e.Test != "":
		t.failed++
		t.failedIn[e.Package]++
		t.flush(id)
	case e.Action == "skip" && e.Test != "":
		t.skipped = append(t.skipped, skip{id, reason(t.output[id])})
		t.flush(id)
	case e.Action == "fail": // a package
		t.packageFailed(e.Package)
	}
}

// flush prints what a failed or skipped test logged, as go test does
// without -v, and forgets it.
func (t *tally) flush(id testID) {
	if !t.verbose {
		for _, l := range t.output[id] {
			if !strings.HasPrefix(l, "=== ") {
				fmt.Fprint(t.w, l)
			}
		}
	}
	delete(t.output, id)
}

// packageFailed counts the tests of pkg that never finished (a panic or a
// timeout ends the binary under them) and, when none of its tests failed,
// the package itself: its build, TestMain or init failed.
func (t *tally) packageFailed(pkg string) {
	var unfinished []testID
	for id := range t.output {
		if id.pkg == pkg {
			unfinished = append(unfinished, id)
		}
	}
	sort.Slice(unfinished, func(i, j int) bool { return unfinished[i].test < unfinished[j].test })
	for _, id := range unfinished {
		fmt.Fprintf(t.w, "--- FAIL: %s (did not finish)\n", id.test)
		t.flush(id)
		t.failed++
		t.failedIn[pkg]++
	}
	if t.failedIn[pkg] == 0 {
		t.broken = append(t.broken, pkg)
		t.failed++
	}
}

// reason is what a skipped test logged: its t.Skip message and any t.Log
// before it, without the === and --- lines.
func reason(lines []string) string {
	var r []string
	for _, l := range lines {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "=== ") || strings.HasPrefix(l, "--- SKIP") {
			continue
		}
		r = append(r, l)
	}
	if len(r) == 0 {
		return "(no reason given)"
	}
	return strings.Join(r, " / ")
}

func (t *tally) summary() bool {
	fmt.Fprintln(t.w)
	for _, pkg := range t.broken {
		fmt.Fprintf(t.w, "FAIL: package %s failed outside its tests (build, init or TestMain; see above)\n", pkg)
	}
	if len(t.skipped) > 0 {
		fmt.Fprintf(t.w, "FAIL: %d tests skipped; a skip counts as a failure here, where every dependency is installed (make deps, as root):\n", len(t.skipped))
		for _, s := range t.skipped {
			fmt.Fprintf(t.w, "    SKIP %s %s: %s\n", s.pkg, s.test, s.reason)
		}
	}
	ran := t.passed + t.failed + len(t.skipped)
	if ran == 0 {
		fmt.Fprintln(t.w, "FAIL: no test ran")
	}
	fmt.Fprintf(t.w, "%d passed, %d failed\n", t.passed, t.failed+len(t.skipped))
	return ran > 0 && t.failed == 0 && len(t.skipped) == 0
}
