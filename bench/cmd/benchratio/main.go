// Command benchratio reads `go test -bench` output on standard input, copies
// it to standard output, and then prints each benchmark beside grpc-go's:
// for names of the form .../impl=NAME, the row with impl=grpc is the
// baseline, and each implementation gets its ns/op as a speed-up over
// grpc-go (above 1 is faster) and its allocs/op. Rows of BenchmarkBroker
// are set beside NATS instead: each of our implementations against the
// NATS one that makes the same promise (see brokerPeers), by msgs/s.
//
//	go test -run '^$' -bench . -benchmem ./... | go run ./cmd/benchratio
//
// It exits non-zero when the input reports a failure or holds no
// benchmark, so a pipe into it still fails a make target.
package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
)

func main() {
	if err := run(os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "benchratio:", err)
		os.Exit(1)
	}
}

// measurement is one benchmark line.
type measurement struct {
	group, impl          string
	nsPerOp, allocsPerOp float64
	hasAllocs            bool
	msgsPerSec           float64 // BenchmarkBroker's throughput; 0 when absent
}

// brokerPeers maps each implementation of the built-in broker in
// BenchmarkBroker to the NATS implementation it is measured against.
var brokerPeers = map[string]string{
	"micro-async":       "nats-core",
	"micro-sync":        "nats-request",
	"micro-sync-serial": "nats-request-serial",
}

func isBroker(impl string) bool {
	if _, ok := brokerPeers[impl]; ok {
		return true
	}
	return strings.HasPrefix(impl, "nats-")
}

func run(in io.Reader, out io.Writer) error {
	var ms []measurement
	failed := false
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		line := sc.Text()
		fmt.Fprintln(out, line)
		if strings.HasPrefix(line, "FAIL") || strings.HasPrefix(line, "--- FAIL") {
			failed = true
		}
		if m, ok := parse(line); ok {
			ms = append(ms, m)
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	printRatios(out, ms)
	printBrokerRatios(out, ms)
	switch {
	case failed:
		return fmt.Errorf("the benchmarks failed")
	case len(ms) == 0:
		return fmt.Errorf("no benchmark results in the input")
	}
	return nil
}

// parse reads a line such as
//
//	BenchmarkServer/rpc=unary-16B/impl=micro-2  174174  12796 ns/op  1.25 MB/s  5567 B/op  81 allocs/op
func parse(line string) (measurement, bool) {
	f := strings.Fields(line)
	if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
		return measurement{}, false
	}
	name := f[0]
	// Drop the -GOMAXPROCS suffix.
	if i := strings.LastIndexByte(name, '-'); i > 0 {
		if _, err := strconv.Atoi(name[i+1:]); err == nil {
			name = name[:i]
		}
	}
	var m measurement
	var rest []string
	for _, part := range strings.Split(name, "/") {
		if v, ok := strings.CutPrefix(part, "impl="); ok {
			m.impl = v
			continue
		}
		rest = append(rest, part)
	}
	if m.impl == "" {
		return measurement{}, false
	}
	m.group = strings.Join(rest, "/")
	found := false
	for i := 2; i+1 < len(f); i += 2 {
		v, err := strconv.ParseFloat(f[i], 64)
		if err != nil {
			continue
		}
		switch f[i+1] {
		case "ns/op":
			m.nsPerOp, found = v, true
		case "allocs/op":
			m.allocsPerOp, m.hasAllocs = v, true
		case "msgs/s":
			m.msgsPerSec = v
		}
	}
	return m, found
}

func printRatios(out io.Writer, ms []measurement) {
	var rpc []measurement
	for _, m := range ms {
		if !isBroker(m.impl) {
			rpc = append(rpc, m)
		}
	}
	if len(rpc) == 0 {
		return
	}
	ms = rpc
	// grpc-go is the baseline; in a row it does not serve (the Connect
	// protocol), connect-go is.
	base := map[string]measurement{}
	for _, m := range ms {
		if m.impl == "connect" {
			base[m.group] = m
		}
	}
	for _, m := range ms {
		if m.impl == "grpc" {
			base[m.group] = m
		}
	}
	fmt.Fprintln(out, "\nEach implementation against grpc-go, or connect-go in Connect-protocol rows (speed-up: the baseline's ns/op over its own; above 1 is faster):")
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "benchmark\timpl\tns/op\tspeed-up\tallocs/op\tbaseline allocs/op\t")
	for _, m := range ms {
		ratio, baseAllocs := "-", "-"
		if b, ok := base[m.group]; ok {
			ratio = fmt.Sprintf("%.2f×", b.nsPerOp/m.nsPerOp)
			if b.hasAllocs {
				baseAllocs = strconv.FormatFloat(b.allocsPerOp, 'f', -1, 64)
			}
		}
		allocs := "-"
		if m.hasAllocs {
			allocs = strconv.FormatFloat(m.allocsPerOp, 'f', -1, 64)
		}
		fmt.Fprintf(tw, "%s\t%s\t%.0f\t%s\t%s\t%s\t\n", m.group, m.impl, m.nsPerOp, ratio, allocs, baseAllocs)
	}
	tw.Flush()
}

// printBrokerRatios prints each of our broker implementations beside its
// NATS peer of the same row (shape and size): the ratio of messages per
// second, above 1 when ours delivers more.
func printBrokerRatios(out io.Writer, ms []measurement) {
	peers := map[[2]string]measurement{} // by group and impl
	for _, m := range ms {
		if isBroker(m.impl) {
			peers[[2]string{m.group, m.impl}] = m
		}
	}
	header := false
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	for _, m := range ms {
		peer, ok := brokerPeers[m.impl]
		if !ok {
			continue
		}
		if !header {
			fmt.Fprintln(out, "\nThe built-in broker against NATS (messages per second; above 1 delivers more):")
			fmt.Fprintln(tw, "benchmark\timpl\tmsgs/s\tNATS impl\tNATS msgs/s\tratio\t")
			header = true
		}
		ratio, theirs := "-", "-"
		if n, ok := peers[[2]string{m.group, peer}]; ok && n.msgsPerSec > 0 {
			ratio = fmt.Sprintf("%.2f×", m.msgsPerSec/n.msgsPerSec)
			theirs = fmt.Sprintf("%.0f", n.msgsPerSec)
		}
		fmt.Fprintf(tw, "%s\t%s\t%.0f\t%s\t%s\t%s\t\n", m.group, m.impl, m.msgsPerSec, peer, theirs, ratio)
	}
	tw.Flush()
}
