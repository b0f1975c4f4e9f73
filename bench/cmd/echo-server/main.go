// Command echo-server serves the bench.v1.Echo service in the foreground
// until SIGINT or SIGTERM, on our runtime or, for comparison, on grpc-go or
// connect-go, so that outside load generators can drive each the same way:
//
//	echo-server -addr 127.0.0.1:8080 [-impl micro|grpc|connect] [-stats] [-cpuprofile FILE] [-memprofile FILE]
//
// It prints one JSON line when it listens:
//
//	{"event":"listening","impl":"micro","addr":"127.0.0.1:8080","pid":123}
//
// With -stats it prints, on SIGUSR1 and at exit, one JSON line of what it
// served since it started and what the Go runtime allocated meanwhile:
//
//	{"event":"stats","impl":"micro","elapsed_ns":..,"rpcs":..,"msgs":..,"mallocs":..,"total_alloc":..,"num_gc":..}
//
// The difference of two such lines gives server allocations per call
// (mallocs/rpcs) or per streamed message (mallocs/msgs).
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/protoc-gen-micro/micro/bench/internal/echo"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "address to listen on; port 0 picks a free one")
	impl := flag.String("impl", "micro", "server implementation: micro, grpc or connect")
	stats := flag.Bool("stats", false, "print a JSON stats line on SIGUSR1 and at exit")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	memprofile := flag.String("memprofile", "", "write an allocation profile to this file at exit")
	flag.Parse()
	if err := run(*impl, *addr, *stats, *cpuprofile, *memprofile); err != nil {
		fmt.Fprintln(os.Stderr, "echo-server:", err)
		os.Exit(1)
	}
}

func run(impl, addr string, stats bool, cpuprofile, memprofile string) error {
	if cpuprofile != "" {
		f, err := os.Create(cpuprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	start := time.Now()
	srv, err := echo.Serve(impl, addr)
	if err != nil {
		return err
	}
	out := json.NewEncoder(os.Stdout)
	out.Encode(map[string]any{"event": "listening", "impl": impl, "addr": srv.Addr, "pid": os.Getpid()})

	sigs := []os.Signal{syscall.SIGINT, syscall.SIGTERM}
	if stats {
		sigs = append(sigs, syscall.SIGUSR1)
	}
	c := make(chan os.Signal, 1)
	signal.Notify(c, sigs...)
	for sig := range c {
		if sig == syscall.SIGUSR1 {
			out.Encode(snapshot(impl, start, srv.Counters))
			continue
		}
		break
	}
	signal.Stop(c)
	err = srv.Stop()
	if stats {
		out.Encode(snapshot(impl, start, srv.Counters))
	}
	if memprofile != "" {
		if perr := writeProfile("allocs", memprofile); err == nil {
			err = perr
		}
	}
	return err
}

func writeProfile(name, path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := pprof.Lookup(name).WriteTo(f, 0); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// statsLine is what -stats prints.
type statsLine struct {
	Event      string `json:"event"`
	Impl       string `json:"impl"`
	ElapsedNS  int64  `json:"elapsed_ns"`
	RPCs       uint64 `json:"rpcs"`
	Msgs       uint64 `json:"msgs"`
	Mallocs    uint64 `json:"mallocs"`
	TotalAlloc uint64 `json:"total_alloc"`
	NumGC      uint32 `json:"num_gc"`
}

func snapshot(impl string, start time.Time, n *echo.Counters) statsLine {
	// Read the counters first: ReadMemStats stops the world, and calls that
	// end meanwhile would otherwise count without their allocations.
	rpcs, msgs := n.RPCs.Load(), n.Msgs.Load()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return statsLine{
		Event:      "stats",
		Impl:       impl,
		ElapsedNS:  time.Since(start).Nanoseconds(),
		RPCs:       rpcs,
		Msgs:       msgs,
		Mallocs:    ms.Mallocs,
		TotalAlloc: ms.TotalAlloc,
		NumGC:      ms.NumGC,
	}
}
