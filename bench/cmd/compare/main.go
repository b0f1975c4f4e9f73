// Command compare measures each Echo server with the server pinned to one
// core: for every implementation (ours, grpc-go, connect-go) and workload it
// starts echo-server as a separate process under `taskset -c 0` with
// GOMAXPROCS=1, drives it from the other core at a fixed concurrency, and
// prints calls or messages per second, the ratio to grpc-go, the server's
// allocations per call (from its -stats lines), how busy its core was, and
// the rate per second of server CPU time.
//
//	go run ./cmd/compare [-duration 5s] [-warmup 1s] [-loadgen auto|h2load|go]
//
// The load is 16 connections × 16 concurrent streams of 16-byte messages:
//
//   - unary: Unary calls;
//   - bidi: Bidi calls that each send 100 messages, half-close and read the
//     100 echoes (counted per message);
//   - serverstream: ServerStream calls of 1000 messages each (counted per
//     message).
//
// h2load (Debian's nghttp2-client) is the load generator when it is
// installed: it costs the server nothing extra and leaves the measurement to
// the server. Otherwise a grpc-go client per connection generates the load
// from this process, which then runs pinned to the client core; a loaded
// client core then shows as server CPU below 100%.
//
// Rates come from the server's own counters between two SIGUSR1 stats lines
// taken after the warm-up and at the end of the measured window, so load
// generator start-up and wind-down are not counted.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/protoc-gen-micro/micro/bench/internal/echo"
	benchv1 "github.com/protoc-gen-micro/micro/bench/proto/bench/v1"
	"google.golang.org/protobuf/proto"
)

// childEnv marks the process re-executed under taskset.
const childEnv = "BENCH_COMPARE_PINNED"

type config struct {
	server     string
	impls      []string
	workloads  []string
	duration   time.Duration
	warmup     time.Duration
	conns      int
	streams    int
	size       int
	bidiBatch  int
	streamN    int
	loadgen    string
	serverCPU  string
	clientCPU  string
	cpuprofile string
	memprofile string
	pin        bool
}

func main() {
	var c config
	var impls, workloads string
	flag.StringVar(&c.server, "server", "", "echo-server binary; built from this module when empty")
	flag.StringVar(&impls, "impls", strings.Join(echo.Impls, ","), "server implementations to measure")
	flag.StringVar(&workloads, "workloads", "unary,bidi,serverstream", "workloads to run")
	flag.DurationVar(&c.duration, "duration", 5*time.Second, "measured time per run")
	flag.DurationVar(&c.warmup, "warmup", time.Second, "load before the measured time")
	flag.IntVar(&c.conns, "c", 16, "connections")
	flag.IntVar(&c.streams, "m", 16, "concurrent streams per connection")
	flag.IntVar(&c.size, "size", 16, "payload bytes per message")
	flag.IntVar(&c.bidiBatch, "bidi-batch", 100, "messages per bidi call")
	flag.IntVar(&c.streamN, "stream-n", 1000, "messages per server-stream call")
	flag.StringVar(&c.loadgen, "loadgen", "auto", "load generator: h2load, go, or auto (h2load when installed)")
	flag.StringVar(&c.serverCPU, "server-cpu", "0", "CPU the server is pinned to")
	flag.StringVar(&c.clientCPU, "client-cpu", "1", "CPU the load generator is pinned to")
	flag.StringVar(&c.cpuprofile, "cpuprofile", "", "directory for a CPU profile of each server run (IMPL-WORKLOAD.pprof)")
	flag.StringVar(&c.memprofile, "memprofile", "", "directory for an allocation profile of each server run (IMPL-WORKLOAD.allocs.pprof)")
	flag.Parse()
	c.impls = strings.Split(impls, ",")
	c.workloads = strings.Split(workloads, ",")
	if err := run(c); err != nil {
		fmt.Fprintln(os.Stderr, "compare:", err)
		os.Exit(1)
	}
}

func run(c config) error {
	for _, w := range c.workloads {
		if _, ok := workloadsByName[w]; !ok {
			return fmt.Errorf("unknown workload %q", w)
		}
	}
	switch c.loadgen {
	case "auto":
		c.loadgen = "go"
		if _, err := exec.LookPath("h2load"); err == nil {
			c.loadgen = "h2load"
		}
	case "h2load", "go":
	default:
		return fmt.Errorf("unknown load generator %q", c.loadgen)
	}
	// A re-executed child sees only the client CPU, so it trusts its parent.
	_, err := exec.LookPath("taskset")
	c.pin = os.Getenv(childEnv) != "" || err == nil && runtime.NumCPU() >= 2
	if !c.pin {
		fmt.Fprintln(os.Stderr, "compare: no taskset or fewer than 2 CPUs: running unpinned, figures are not comparable with pinned ones")
	}
	if c.server == "" {
		dir, err := os.MkdirTemp("", "compare")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		c.server = filepath.Join(dir, "echo-server")
		build := exec.Command("go", "build", "-o", c.server, "github.com/protoc-gen-micro/micro/bench/cmd/echo-server")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			return fmt.Errorf("building echo-server (run from the bench module, or pass -server): %w", err)
		}
	}
	if c.pin && os.Getenv(childEnv) == "" {
		return rerunPinned(c)
	}

	fmt.Fprintf(os.Stderr, "compare: load generator %s, %d connections × %d streams, %d B messages, %v warm-up + %v measured per run\n",
		c.loadgen, c.conns, c.streams, c.size, c.warmup, c.duration)
	var results []result
	for _, w := range c.workloads {
		for _, impl := range c.impls {
			r, err := measure(c, impl, workloadsByName[w])
			if err != nil {
				return fmt.Errorf("%s %s: %w", impl, w, err)
			}
			fmt.Fprintf(os.Stderr, "compare: %-12s %-8s %12.0f %s/s\n", w, impl, r.rate, r.unit)
			results = append(results, r)
		}
	}
	printTable(os.Stdout, c, results)
	return nil
}

// rerunPinned runs this program again pinned to the client CPU, so that the
// load generator (this process or its h2load child) stays off the server's
// core. The server's taskset overrides the inherited mask.
func rerunPinned(c config) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	args := append([]string{"-c", c.clientCPU, self, "-server", c.server}, os.Args[1:]...)
	cmd := exec.Command("taskset", args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), childEnv+"=1")
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			os.Exit(ee.ExitCode())
		}
		return err
	}
	return nil
}

// workload is one kind of load.
type workload struct {
	name    string
	path    string
	perMsg  bool                                                      // rate and allocations count messages, not calls
	body    func(c config) []byte                                     // h2load's request body
	goLoad  func(ctx context.Context, c config, cl echo.Client) error // one call from the Go load generator
	caption func(c config) string
}

var workloadsByName = map[string]*workload{
	"unary": {
		name: "unary", path: benchv1.EchoUnaryProcedure,
		body:    func(c config) []byte { return envelope(nil, &benchv1.Msg{Payload: make([]byte, c.size)}) },
		goLoad:  unaryCall,
		caption: func(c config) string { return fmt.Sprintf("unary %dB", c.size) },
	},
	"bidi": {
		name: "bidi", path: benchv1.EchoBidiProcedure, perMsg: true,
		body: func(c config) []byte {
			var b []byte
			for range c.bidiBatch {
				b = envelope(b, &benchv1.Msg{Payload: make([]byte, c.size)})
			}
			return b
		},
		goLoad:  bidiCall,
		caption: func(c config) string { return fmt.Sprintf("bidi %d×%dB", c.bidiBatch, c.size) },
	},
	"serverstream": {
		name: "serverstream", path: benchv1.EchoServerStreamProcedure, perMsg: true,
		body: func(c config) []byte {
			return envelope(nil, &benchv1.Count{N: uint32(c.streamN), PayloadSize: uint32(c.size)})
		},
		goLoad:  serverStreamCall,
		caption: func(c config) string { return fmt.Sprintf("server-stream %d×%dB", c.streamN, c.size) },
	},
}

// envelope appends m in a gRPC message envelope.
func envelope(b []byte, m proto.Message) []byte {
	data, err := proto.Marshal(m)
	if err != nil {
		panic(err)
	}
	b = append(b, 0, 0, 0, 0, 0)
	binary.BigEndian.PutUint32(b[len(b)-4:], uint32(len(data)))
	return append(b, data...)
}

func unaryCall(ctx context.Context, c config, cl echo.Client) error {
	_, err := cl.Unary(ctx, &benchv1.Msg{Payload: make([]byte, c.size)})
	return err
}

func bidiCall(ctx context.Context, c config, cl echo.Client) error {
	s, err := cl.Bidi(ctx)
	if err != nil {
		return err
	}
	m := &benchv1.Msg{Payload: make([]byte, c.size)}
	for range c.bidiBatch {
		if err := s.Send(m); err != nil {
			return err
		}
	}
	if err := s.CloseSend(); err != nil {
		return err
	}
	return drain(s)
}

func serverStreamCall(ctx context.Context, c config, cl echo.Client) error {
	s, err := cl.ServerStream(ctx, &benchv1.Count{N: uint32(c.streamN), PayloadSize: uint32(c.size)})
	if err != nil {
		return err
	}
	return drain(s)
}

func drain(s echo.RecvStream) error {
	for {
		if _, err := s.Recv(); err == io.EOF {
			return nil
		} else if err != nil {
			return err
		}
	}
}

// stats is an echo-server -stats line.
type stats struct {
	Event      string `json:"event"`
	Addr       string `json:"addr"`
	ElapsedNS  int64  `json:"elapsed_ns"`
	RPCs       uint64 `json:"rpcs"`
	Msgs       uint64 `json:"msgs"`
	Mallocs    uint64 `json:"mallocs"`
	TotalAlloc uint64 `json:"total_alloc"`
	NumGC      uint32 `json:"num_gc"`
}

// result is one measured run.
type result struct {
	impl      string
	w         *workload
	unit      string  // "RPC" or "msg"
	rate      float64 // units per second
	allocs    float64 // server mallocs per unit
	bytes     float64 // server bytes allocated per unit
	cpu       float64 // server CPU use, 1 = one core busy
	loadCPU   float64 // load generator CPU use
	gcs       uint32
	loadNotes string
}

func measure(c config, impl string, w *workload) (result, error) {
	r := result{impl: impl, w: w, unit: "RPC"}
	if w.perMsg {
		r.unit = "msg"
	}
	args := []string{"-addr", "127.0.0.1:0", "-impl", impl, "-stats"}
	if c.cpuprofile != "" {
		if err := os.MkdirAll(c.cpuprofile, 0o755); err != nil {
			return r, err
		}
		args = append(args, "-cpuprofile", filepath.Join(c.cpuprofile, impl+"-"+w.name+".pprof"))
	}
	if c.memprofile != "" {
		if err := os.MkdirAll(c.memprofile, 0o755); err != nil {
			return r, err
		}
		args = append(args, "-memprofile", filepath.Join(c.memprofile, impl+"-"+w.name+".allocs.pprof"))
	}
	var cmd *exec.Cmd
	if c.pin {
		cmd = exec.Command("taskset", append([]string{"-c", c.serverCPU, c.server}, args...)...)
	} else {
		cmd = exec.Command(c.server, args...)
	}
	cmd.Env = append(os.Environ(), "GOMAXPROCS=1")
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return r, err
	}
	if err := cmd.Start(); err != nil {
		return r, err
	}
	lines := make(chan stats, 4)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var s stats
			if json.Unmarshal(sc.Bytes(), &s) == nil {
				lines <- s
			}
		}
	}()
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		for range lines {
		}
		cmd.Wait()
	}()
	next := func() (stats, error) {
		select {
		case s, ok := <-lines:
			if !ok {
				return s, errors.New("echo-server exited")
			}
			return s, nil
		case <-time.After(10 * time.Second):
			return stats{}, errors.New("echo-server did not answer")
		}
	}
	ready, err := next()
	if err != nil {
		return r, err
	}

	// The load runs through the warm-up, the measured window and a margin,
	// so that it is steady at both stats snapshots.
	total := c.warmup + c.duration + time.Second
	loadPID, stopLoad, err := startLoad(c, w, ready.Addr, total)
	if err != nil {
		return r, err
	}
	snap := func() (s stats, cpu, loadCPU float64, err error) {
		if err := cmd.Process.Signal(syscall.SIGUSR1); err != nil {
			return s, 0, 0, err
		}
		s, err = next()
		return s, cpuSeconds(cmd.Process.Pid), cpuSeconds(loadPID), err
	}
	time.Sleep(c.warmup)
	s1, cpu1, lcpu1, err := snap()
	if err != nil {
		stopLoad()
		return r, err
	}
	time.Sleep(c.duration)
	s2, cpu2, lcpu2, err := snap()
	notes, lerr := stopLoad()
	if err != nil {
		return r, err
	}
	if lerr != nil {
		return r, fmt.Errorf("load generator: %w", lerr)
	}
	r.loadNotes = notes

	secs := float64(s2.ElapsedNS-s1.ElapsedNS) / 1e9
	units := float64(s2.RPCs - s1.RPCs)
	if w.perMsg {
		units = float64(s2.Msgs - s1.Msgs)
	}
	if units == 0 {
		return r, errors.New("the server served nothing; is the load generator reaching it?")
	}
	r.rate = units / secs
	r.allocs = float64(s2.Mallocs-s1.Mallocs) / units
	r.bytes = float64(s2.TotalAlloc-s1.TotalAlloc) / units
	r.cpu = (cpu2 - cpu1) / secs
	r.loadCPU = (lcpu2 - lcpu1) / secs
	r.gcs = s2.NumGC - s1.NumGC
	return r, nil
}

// cpuSeconds is the user+system CPU time of a process, from /proc; NaN
// where there is no /proc.
func cpuSeconds(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return math.NaN()
	}
	// Fields after the parenthesised command name; utime and stime are the
	// 14th and 15th fields, in clock ticks (USER_HZ, 100 on Linux).
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return math.NaN()
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return math.NaN()
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100
}

// startLoad starts the load for d in the process pid; stop waits for it to
// end and returns a note on errors it saw.
func startLoad(c config, w *workload, addr string, d time.Duration) (pid int, stop func() (string, error), err error) {
	if c.loadgen == "h2load" {
		return startH2load(c, w, addr, d)
	}
	stop, err = startGoLoad(c, w, addr, d)
	return os.Getpid(), stop, err
}

func startH2load(c config, w *workload, addr string, d time.Duration) (int, func() (string, error), error) {
	f, err := os.CreateTemp("", "h2load-body")
	if err != nil {
		return 0, nil, err
	}
	if _, err := f.Write(w.body(c)); err != nil {
		return 0, nil, err
	}
	f.Close()
	cmd := exec.Command("h2load",
		"-c", strconv.Itoa(c.conns), "-m", strconv.Itoa(c.streams),
		"-D", strconv.Itoa(int(math.Ceil(d.Seconds()))),
		"-d", f.Name(),
		"-H", "content-type: application/grpc", "-H", "te: trailers",
		"http://"+addr+w.path)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		os.Remove(f.Name())
		return 0, nil, err
	}
	return cmd.Process.Pid, func() (string, error) {
		err := cmd.Wait()
		os.Remove(f.Name())
		if err != nil {
			return "", fmt.Errorf("h2load: %v\n%s", err, out.String())
		}
		for _, line := range strings.Split(out.String(), "\n") {
			if strings.HasPrefix(line, "requests:") && !strings.Contains(line, " 0 failed, 0 errored") {
				return "h2load " + line, nil
			}
		}
		return "", nil
	}, nil
}

// startGoLoad runs c.conns grpc-go connections with c.streams goroutines
// each, calling in a loop for d. Calls are not cut off at the end: each
// goroutine finishes the call it is in.
func startGoLoad(c config, w *workload, addr string, d time.Duration) (func() (string, error), error) {
	var stopped atomic.Bool
	timer := time.AfterFunc(d, func() { stopped.Store(true) })
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	var errs int
	var clients []echo.Client
	for range c.conns {
		cl, err := echo.Dial("grpc", addr)
		if err != nil {
			timer.Stop()
			stopped.Store(true)
			wg.Wait()
			return nil, err
		}
		clients = append(clients, cl)
		for range c.streams {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ctx := context.Background()
				for !stopped.Load() {
					if err := w.goLoad(ctx, c, cl); err != nil {
						mu.Lock()
						errs++
						if firstErr == nil {
							firstErr = err
						}
						mu.Unlock()
					}
				}
			}()
		}
	}
	return func() (string, error) {
		wg.Wait()
		for _, cl := range clients {
			cl.Close()
		}
		if errs > 0 {
			return fmt.Sprintf("%d calls failed, first: %v", errs, firstErr), nil
		}
		return "", nil
	}, nil
}

func printTable(out io.Writer, c config, results []result) {
	base := map[string]float64{}
	for _, r := range results {
		if r.impl == "grpc" {
			base[r.w.name] = r.rate
		}
	}
	pinned := "server pinned to CPU " + c.serverCPU + " with GOMAXPROCS=1, load from CPU " + c.clientCPU
	if !c.pin {
		pinned = "UNPINNED"
	}
	fmt.Fprintf(out, "\n%s; %d connections × %d streams; load generator %s; %v measured\n\n", pinned, c.conns, c.streams, c.loadgen, c.duration)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "workload\timpl\trate/s\tunit\tvs grpc-go\tserver allocs/unit\tserver B/unit\tserver CPU\trate/server CPU-s\tload CPU\tGCs\t")
	var notes []string
	for _, r := range results {
		ratio := "-"
		if b := base[r.w.name]; b > 0 {
			ratio = fmt.Sprintf("%.2f×", r.rate/b)
		}
		fmt.Fprintf(tw, "%s\t%s\t%.0f\t%s\t%s\t%.1f\t%.0f\t%.0f%%\t%.0f\t%.0f%%\t%d\t\n",
			r.w.caption(c), r.impl, r.rate, r.unit, ratio, r.allocs, r.bytes, r.cpu*100, r.rate/r.cpu, r.loadCPU*100, r.gcs)
		if r.loadNotes != "" {
			notes = append(notes, fmt.Sprintf("%s %s: %s", r.impl, r.w.name, r.loadNotes))
		}
	}
	tw.Flush()
	for _, n := range notes {
		fmt.Fprintln(out, "note:", n)
	}
	fmt.Fprintln(out, "\nServer CPU well below 100% means something else was the limit: the load generator")
	fmt.Fprintln(out, "when its CPU nears 100%, otherwise other processes on the machine; rerun on a quiet one.")
	fmt.Fprintln(out, "rate/server CPU-s estimates what the server would do with its core to itself.")
}
