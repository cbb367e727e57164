// Command testreport reads `go test -json` on stdin and prints what go test
// prints (with -v, every line of it; without, the package lines and the
// output of each test that failed or skipped). It then lists every skipped
// test with its reason, prints "N passed, N failed" as its last line, and
// exits 1 when a test failed or skipped, a package failed outside its tests
// (a build failure, a panic, a timeout) or no test ran at all.
//
// A skip counts as a failure because `make test` runs where every dependency
// is installed: a test that skips there tests nothing, and would pass
// whatever the product does.
//
//	go test -json ./... | testreport
package main

import (
	"flag"
	"fmt"
	"os"
)

func main() {
	verbose := flag.Bool("v", false, "print the output of every test, as go test -v does")
	flag.Parse()
	ok, err := report(os.Stdin, os.Stdout, *verbose)
	if err != nil {
		fmt.Fprintf(os.Stderr, "testreport: %v\n", err)
		os.Exit(2)
	}
	if !ok {
		os.Exit(1)
	}
}
