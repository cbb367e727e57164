// Command dns is a small DNS client meant to run inside a pod (built
// statically, CGO_ENABLED=0, and added to a busybox image). It asks one
// server directly, without the pod's search path, so its answers are the
// server's own: rcode, AA bit and records.
//
//	dns query [--server 10.96.0.10:53] [--tcp] NAME TYPE
//
// prints the reply as one JSON object (see reply); test/e2e/dns_test.go
// reads it.
//
//	dns bench [--server 10.96.0.10:53] [--n 1000] [--rcode NOERROR] NAME TYPE
//
// sends N queries one after the other, each on a new UDP socket as a libc
// resolver does, checks every reply's rcode and prints one JSON object (see
// benchResult) with each successful query's latency. bench/dns_test.go
// (BenchmarkDNS) runs it in a pod.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/miekg/dns"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) == 0 {
		return errors.New("usage: dns query|bench [flags] NAME TYPE")
	}
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	server := fs.String("server", "10.96.0.10:53", "DNS server address")
	tcp := fs.Bool("tcp", false, "ask over TCP instead of UDP")
	n := fs.Int("n", 1000, "bench: number of queries")
	rcode := fs.String("rcode", "NOERROR", "bench: the rcode every reply must have")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if fs.NArg() != 2 {
		return errors.New("want NAME TYPE")
	}
	qtype, ok := dns.StringToType[strings.ToUpper(fs.Arg(1))]
	if !ok {
		return fmt.Errorf("unknown query type %q", fs.Arg(1))
	}
	c := &dns.Client{Timeout: 5 * time.Second}
	if *tcp {
		c.Net = "tcp"
	}
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(fs.Arg(0)), qtype)
	switch args[0] {
	case "query":
		return query(c, m, *server)
	case "bench":
		want, ok := dns.StringToRcode[*rcode]
		if !ok {
			return fmt.Errorf("unknown rcode %q", *rcode)
		}
		return bench(c, m, *server, *n, want)
	}
	return fmt.Errorf("unknown command %q", args[0])
}

// reply is what `dns query` prints. Records are in the presentation format
// (dig's), with each run of tabs and spaces made one space.
type reply struct {
	Rcode      string   `json:"rcode"`
	AA         bool     `json:"aa"`
	TC         bool     `json:"tc"`
	RA         bool     `json:"ra"`
	Answer     []string `json:"answer"`
	Authority  []string `json:"authority"`
	Additional []string `json:"additional"`
}

func query(c *dns.Client, m *dns.Msg, server string) error {
	r, _, err := c.Exchange(m, server)
	if err != nil {
		return fmt.Errorf("query %s: %w", m.Question[0].String(), err)
	}
	out := reply{
		Rcode: dns.RcodeToString[r.Rcode], AA: r.Authoritative, TC: r.Truncated, RA: r.RecursionAvailable,
		Answer: records(r.Answer), Authority: records(r.Ns), Additional: records(r.Extra),
	}
	return json.NewEncoder(os.Stdout).Encode(out)
}

// records formats rrs, leaving out the EDNS0 OPT pseudo-record.
func records(rrs []dns.RR) []string {
	out := []string{}
	for _, rr := range rrs {
		if rr.Header().Rrtype == dns.TypeOPT {
			continue
		}
		out = append(out, strings.Join(strings.Fields(rr.String()), " "))
	}
	return out
}

func bench(c *dns.Client, m *dns.Msg, server string, n int, want int) error {
	if n <= 0 {
		return errors.New("--n must be positive")
	}
	lat := make([]time.Duration, 0, n)
	errs := 0
	var firstErr error
	for range n {
		start := time.Now()
		r, _, err := c.Exchange(m, server)
		d := time.Since(start)
		if err == nil && r.Rcode != want {
			err = fmt.Errorf("rcode %s, want %s", dns.RcodeToString[r.Rcode], dns.RcodeToString[want])
		}
		if err == nil && want == dns.RcodeSuccess && len(r.Answer) == 0 {
			err = errors.New("empty answer")
		}
		if err != nil {
			errs++
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		lat = append(lat, d)
	}
	if len(lat) == 0 {
		return fmt.Errorf("every query failed, the first: %w", firstErr)
	}
	if firstErr != nil {
		fmt.Fprintf(os.Stderr, "%d of %d queries failed, the first: %v\n", errs, n, firstErr)
	}
	out := benchResult{Queries: n, Failed: errs, Latencies: lat}
	return json.NewEncoder(os.Stdout).Encode(out)
}

// benchResult is what `dns bench` prints.
type benchResult struct {
	Queries   int             `json:"queries"`
	Failed    int             `json:"failed"`
	Latencies []time.Duration `json:"latenciesNs"` // of the queries that succeeded, in order
}
