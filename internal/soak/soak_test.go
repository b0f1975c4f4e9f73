package soak_test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/protoc-gen-micro/micro/examples/greeter/greeterpb"
	"github.com/protoc-gen-micro/micro/internal/rawframe"
	"github.com/protoc-gen-micro/micro/runtime/client"
	"github.com/protoc-gen-micro/micro/runtime/server"
	"github.com/protoc-gen-micro/micro/runtime/status"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

var (
	duration  = flag.Duration("soak.duration", 20*time.Second, "how long the load and the attacks run")
	interval  = flag.Duration("soak.interval", 4*time.Second, "how often goroutines, heap and RSS are sampled")
	workers   = flag.Int("soak.workers", 8, "well-behaved clients calling at once, each reconnecting now and then")
	attackers = flag.Int("soak.attackers", 3, "attacks running at once, each on connections of its own")
	hold      = flag.Duration("soak.hold", time.Second, "how long an attack holds its connection at most")
)

// The server under soak uses the default limits, except for timeouts
// shortened so that the defences that act on time act within the soak.
var limits = server.Limits{
	HandshakeTimeout:      2 * time.Second,
	WriteTimeout:          2 * time.Second,
	IdleTimeout:           10 * time.Second,
	MaxConnectionAge:      15 * time.Second,
	MaxConnectionAgeGrace: 10 * time.Second,
	KeepaliveTime:         5 * time.Second,
	KeepaliveTimeout:      2 * time.Second,
}

// TestSoak runs mixed unary and streaming load from clients that connect
// and disconnect, while the attacks take turns on other connections. It
// samples goroutines, live heap and RSS every interval, and fails if a
// well-behaved call did not get its expected answer, if a sample grows past
// its bound, if the second half of the run holds more than the first (a
// leak), or if goroutines and heap do not come back once the load stops.
func TestSoak(t *testing.T) {
	before := sample()
	srv := server.NewServer(server.WithAddress("127.0.0.1:0"), server.WithGracePeriod(5*time.Second), server.WithLimits(limits))
	if err := greeterpb.RegisterGreeterHandler(srv, handler{}); err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	stopped := false
	defer func() {
		if !stopped {
			srv.Stop()
		}
	}()
	addr := srv.Address()

	base := sample()
	t.Logf("soak: %v of load from %d clients and %d attackers on %s; sampling every %v",
		*duration, *workers, *attackers, addr, *interval)
	t.Logf("%8s %10s %10s %10s %10s %8s %8s %8s", "time", "goroutines", "heap MiB", "RSS MiB", "calls", "failed", "conns", "attacks")
	start := time.Now()
	logSample := func(s stats, l *load, a *attacks) {
		t.Logf("%8s %10d %10.1f %10.1f %10d %8d %8d %8d", time.Since(start).Round(time.Second), s.goroutines,
			mib(s.heap), mib(s.rss), l.ok.Load(), l.failed.Load(), l.conns.Load(), a.runs.Load())
	}

	ctx, cancel := context.WithTimeout(context.Background(), *duration)
	defer cancel()
	l := &load{addr: addr}
	a := &attacks{addr: addr, outcomes: map[string]map[string]int{}}
	var wg sync.WaitGroup
	for i := range *workers {
		wg.Add(1)
		go func() { defer wg.Done(); l.worker(ctx, i) }()
	}
	for i := range *attackers {
		wg.Add(1)
		go func() { defer wg.Done(); a.attacker(ctx, i) }()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()

	logSample(base, l, a)
	var during []stats
	tick := time.NewTicker(*interval)
	defer tick.Stop()
	for running := true; running; {
		select {
		case <-tick.C:
			s := sample()
			during = append(during, s)
			logSample(s, l, a)
		case <-done:
			running = false
		}
	}

	// The load has stopped and every client and attacker has closed its
	// connections: what the server held for them must be released.
	after := settle(base, maxIdleWorkers)
	logSample(after, l, a)
	a.report(t)
	l.report(t)

	if n := l.failed.Load(); n > 0 {
		t.Errorf("%d well-behaved calls failed; the first: %s", n, strings.Join(l.errs, "; "))
	}
	for op := range opNames {
		if l.okBy[op].Load() == 0 {
			t.Errorf("no %s call succeeded", opNames[op])
		}
	}
	checkFlat(t, base, during, after)

	// Stopped, the server leaves nothing running: not even its idle
	// workers.
	stopped = true
	if err := srv.Stop(); err != nil {
		t.Error(err)
	}
	if end := settle(before, 0); end.goroutines > before.goroutines {
		t.Errorf("%d goroutines once the server stopped, against %d before it started:\n%s", end.goroutines, before.goroutines, goroutineDump())
	}
}

// checkFlat fails the test if a sample during the load went past its bound,
// if the least of the second half of the samples is above the least of the
// first (beyond a slack), or if goroutines and heap did not come back to
// where they began.
func checkFlat(t *testing.T, base stats, during []stats, after stats) {
	t.Helper()
	// At one moment the attackers can hold at most their streams' handlers
	// (256 each) and the clients a few goroutines each.
	goroutineBound := base.goroutines + *attackers*(256+8) + *workers*8 + 64
	const heapBound = 256 << 20
	for _, s := range during {
		if s.goroutines > goroutineBound {
			t.Errorf("%d goroutines during the load, over the bound of %d", s.goroutines, goroutineBound)
		}
		if s.heap > heapBound {
			t.Errorf("a live heap of %.1f MiB during the load, over the bound of %.1f MiB", mib(s.heap), mib(heapBound))
		}
	}
	// What is in flight at one moment (a 3.9 MiB call, an attack holding
	// 256 streams) makes single samples jump; a leak raises the floor.
	if n := len(during); n >= 2 {
		first, second := during[:n/2], during[n/2:]
		floor := func(ss []stats, f func(stats) int64) int64 {
			m := f(ss[0])
			for _, s := range ss[1:] {
				m = min(m, f(s))
			}
			return m
		}
		for _, m := range []struct {
			name  string
			of    func(stats) int64
			slack int64
		}{
			{"goroutines", func(s stats) int64 { return int64(s.goroutines) }, 64},
			{"live heap", func(s stats) int64 { return s.heap }, 16 << 20},
			{"RSS", func(s stats) int64 { return s.rss }, 64 << 20},
		} {
			f1, f2 := floor(first, m.of), floor(second, m.of)
			if f2 > f1+f1/4+m.slack {
				t.Errorf("%s grew: the least of the second half of the run is %d, against %d in the first", m.name, f2, f1)
			}
		}
	}
	if after.goroutines > base.goroutines+maxIdleWorkers {
		t.Errorf("%d goroutines once the load stopped, against %d before it and %d idle workers at most:\n%s",
			after.goroutines, base.goroutines, maxIdleWorkers, goroutineDump())
	}
	if after.heap > base.heap+16<<20 {
		t.Errorf("a live heap of %.1f MiB once the load stopped, against %.1f MiB before it", mib(after.heap), mib(base.heap))
	}
}

// maxIdleWorkers is how many goroutines a running server keeps waiting for
// calls once they have ended (internal/transport's worker pool).
const maxIdleWorkers = 256

// settle waits, for at most 20 s, until goroutines are back to the
// baseline plus slack and the live heap to within checkFlat's bound of it,
// and returns the sample then. On a loaded machine the last calls and
// attacks can take seconds to end and let go of their buffers; a leak
// never does.
func settle(base stats, slack int) stats {
	deadline := time.Now().Add(20 * time.Second)
	for {
		s := sample()
		if s.goroutines <= base.goroutines+slack && s.heap <= base.heap+16<<20 || time.Now().After(deadline) {
			return s
		}
		time.Sleep(100 * time.Millisecond)
	}
}

type stats struct {
	goroutines int
	heap, rss  int64
}

// sample collects garbage and reads goroutines, live heap and RSS.
func sample() stats {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return stats{goroutines: runtime.NumGoroutine(), heap: int64(m.HeapAlloc), rss: rss()}
}

// rss reads the process's resident set from /proc; 0 where there is none.
func rss() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }

func goroutineDump() string {
	buf := make([]byte, 1<<20)
	return string(buf[:runtime.Stack(buf, true)])
}

// handler is an ordinary greeter: it answers, echoes, and honours its
// context.
type handler struct{}

const replies = 16

func (handler) SayHello(ctx context.Context, in *greeterpb.HelloRequest, out *greeterpb.HelloReply) error {
	if in.Name == "sleep" {
		<-ctx.Done()
		return ctx.Err()
	}
	out.Message = "Hello " + in.Name
	return nil
}

func (handler) LotsOfReplies(ctx context.Context, in *greeterpb.HelloRequest, s greeterpb.Greeter_LotsOfRepliesHandlerStream) error {
	for range replies {
		if err := s.Send(&greeterpb.HelloReply{Message: in.Name}); err != nil {
			return err
		}
	}
	return nil
}

func (handler) LotsOfGreetings(ctx context.Context, s greeterpb.Greeter_LotsOfGreetingsHandlerStream) error {
	n := 0
	for {
		m, err := s.Recv()
		if err == io.EOF {
			return s.SendAndClose(&greeterpb.HelloReply{Message: strconv.Itoa(n)})
		}
		if err != nil {
			return err
		}
		n += len(m.Name)
	}
}

func (handler) Chat(ctx context.Context, s greeterpb.Greeter_ChatHandlerStream) error {
	for {
		m, err := s.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if err := s.Send(&greeterpb.HelloReply{Message: m.Name}); err != nil {
			return err
		}
	}
}

// The well-behaved calls, each checking its answer.
const (
	opUnary = iota
	opLarge
	opServerStream
	opClientStream
	opBidi
	opDeadline
	opCancel
	opCount
)

var opNames = [opCount]string{"unary", "3.9 MiB unary", "server-streaming", "client-streaming", "bidi", "deadline", "cancel"}

var payload = strings.Repeat("abcdefghijklmnopqrstuvwxyz012345", 4<<20/32)

type load struct {
	addr       string
	ok, failed atomic.Int64
	okBy       [opCount]atomic.Int64
	conns      atomic.Int64
	mu         sync.Mutex
	errs       []string
}

// worker calls until ctx ends, one call at a time, on a client it replaces
// (a new connection) every few calls; a third of its clients compress.
func (l *load) worker(ctx context.Context, id int) {
	rng := rand.New(rand.NewPCG(uint64(id), 9))
	var c client.Client
	defer func() {
		if c != nil {
			c.(io.Closer).Close()
		}
	}()
	var svc greeterpb.GreeterService
	for ctx.Err() == nil {
		if c == nil || rng.IntN(8) == 0 {
			if c != nil {
				c.(io.Closer).Close()
			}
			var opts []client.Option
			if rng.IntN(3) == 0 {
				opts = append(opts, client.WithSendCompression("gzip"))
			}
			c = client.NewClient(opts...)
			svc = greeterpb.NewGreeterService("greeter", c)
			l.conns.Add(1)
		}
		op := rng.IntN(opCount)
		if op == opLarge && rng.IntN(8) != 0 {
			op = opUnary // large messages are rarer
		}
		err := l.call(svc, op, rng)
		if err == nil {
			l.ok.Add(1)
			l.okBy[op].Add(1)
			continue
		}
		if ctx.Err() != nil && errors.Is(err, context.Canceled) {
			return
		}
		l.failed.Add(1)
		l.mu.Lock()
		if len(l.errs) < 10 {
			l.errs = append(l.errs, fmt.Sprintf("%s: %v", opNames[op], err))
		}
		l.mu.Unlock()
	}
}

// call makes one call of kind op and checks its answer.
func (l *load) call(svc greeterpb.GreeterService, op int, rng *rand.Rand) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	at := client.WithAddress(l.addr)
	name := payload[:rng.IntN(4096)]
	switch op {
	case opUnary, opLarge:
		if op == opLarge {
			name = payload[:3900<<10]
		}
		rsp, err := svc.SayHello(ctx, &greeterpb.HelloRequest{Name: name}, at)
		if err != nil {
			return err
		}
		if rsp.Message != "Hello "+name {
			return fmt.Errorf("a reply of %d bytes to %d", len(rsp.Message), len(name))
		}
	case opServerStream:
		s, err := svc.LotsOfReplies(ctx, &greeterpb.HelloRequest{Name: name}, at)
		if err != nil {
			return err
		}
		for i := 0; ; i++ {
			m, err := s.Recv()
			if err == io.EOF {
				if i != replies {
					return fmt.Errorf("%d replies, want %d", i, replies)
				}
				break
			}
			if err != nil {
				return err
			}
			if m.Message != name {
				return fmt.Errorf("reply %d: %d bytes, want %d", i, len(m.Message), len(name))
			}
		}
	case opClientStream:
		s, err := svc.LotsOfGreetings(ctx, at)
		if err != nil {
			return err
		}
		const n = 20
		for range n {
			if err := s.Send(&greeterpb.HelloRequest{Name: name}); err != nil {
				return err
			}
		}
		rsp, err := s.CloseAndRecv()
		if err != nil {
			return err
		}
		if rsp.Message != strconv.Itoa(n*len(name)) {
			return fmt.Errorf("the server counted %s bytes, want %d", rsp.Message, n*len(name))
		}
	case opBidi:
		s, err := svc.Chat(ctx, at)
		if err != nil {
			return err
		}
		for i := range 20 {
			if err := s.Send(&greeterpb.HelloRequest{Name: name}); err != nil {
				return err
			}
			m, err := s.Recv()
			if err != nil {
				return err
			}
			if m.Message != name {
				return fmt.Errorf("echo %d: %d bytes, want %d", i, len(m.Message), len(name))
			}
		}
		if err := s.CloseSend(); err != nil {
			return err
		}
		if _, err := s.Recv(); err != io.EOF {
			return fmt.Errorf("after the last echo: %v, want EOF", err)
		}
	case opDeadline:
		// The handler waits for its context: the server ends the call at
		// the deadline it was sent.
		_, err := svc.SayHello(ctx, &greeterpb.HelloRequest{Name: "sleep"}, at, client.WithRequestTimeout(50*time.Millisecond))
		if status.CodeOf(err) != status.DeadlineExceeded {
			return fmt.Errorf("a call past its deadline: %v, want DeadlineExceeded", err)
		}
	case opCancel:
		cctx, ccancel := context.WithCancel(ctx)
		defer ccancel()
		s, err := svc.Chat(cctx, at)
		if err != nil {
			return err
		}
		if err := s.Send(&greeterpb.HelloRequest{Name: name}); err != nil {
			return err
		}
		if _, err := s.Recv(); err != nil {
			return err
		}
		ccancel()
		if _, err := s.Recv(); status.CodeOf(err) != status.Canceled {
			return fmt.Errorf("a cancelled stream: %v, want Canceled", err)
		}
	}
	return nil
}

func (l *load) report(t *testing.T) {
	t.Helper()
	var parts []string
	for op := range opNames {
		parts = append(parts, fmt.Sprintf("%s %d", opNames[op], l.okBy[op].Load()))
	}
	t.Logf("well-behaved calls: %d ok, %d failed, on %d connections (%s)", l.ok.Load(), l.failed.Load(), l.conns.Load(), strings.Join(parts, ", "))
}

// attacks runs the attack classes in turn and counts what the server
// answered each with.
type attacks struct {
	addr     string
	runs     atomic.Int64
	mu       sync.Mutex
	outcomes map[string]map[string]int
}

type attack struct {
	name string
	run  func(r *rawConn) string
}

func (a *attacks) attacker(ctx context.Context, id int) {
	for i := id * len(attackList) / *attackers; ctx.Err() == nil; i++ {
		at := attackList[i%len(attackList)]
		deadline := time.Now().Add(*hold)
		if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
			deadline = d
		}
		if !time.Now().Before(deadline) {
			return
		}
		outcome := a.one(at, deadline)
		a.runs.Add(1)
		a.mu.Lock()
		if a.outcomes[at.name] == nil {
			a.outcomes[at.name] = map[string]int{}
		}
		a.outcomes[at.name][outcome]++
		a.mu.Unlock()
	}
}

func (a *attacks) one(at attack, deadline time.Time) string {
	c, err := net.DialTimeout("tcp", a.addr, time.Until(deadline))
	if err != nil {
		return "dial failed"
	}
	defer c.Close()
	c.SetDeadline(deadline)
	r := &rawConn{c: c, fr: http2.NewFramer(c, c)}
	r.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	r.henc = hpack.NewEncoder(&r.hbuf)
	return at.run(r)
}

func (a *attacks) report(t *testing.T) {
	t.Helper()
	a.mu.Lock()
	defer a.mu.Unlock()
	names := make([]string, 0, len(a.outcomes))
	for n := range a.outcomes {
		names = append(names, n)
	}
	sort.Strings(names)
	t.Logf("attacks: %d runs of %d classes; what the server answered:", a.runs.Load(), len(names))
	for _, n := range names {
		var parts []string
		for o, k := range a.outcomes[n] {
			parts = append(parts, fmt.Sprintf("%s ×%d", o, k))
		}
		sort.Strings(parts)
		t.Logf("  %-28s %s", n, strings.Join(parts, ", "))
	}
}

// rawConn is an attacker's connection: frames written by hand.
type rawConn struct {
	c    net.Conn
	fr   *http2.Framer
	hbuf bytes.Buffer
	henc *hpack.Encoder
}

func (r *rawConn) preface(settings ...http2.Setting) {
	io.WriteString(r.c, http2.ClientPreface)
	r.fr.WriteSettings(settings...)
}

func (r *rawConn) block(path string, extra ...hpack.HeaderField) []byte {
	r.hbuf.Reset()
	for _, f := range []hpack.HeaderField{{Name: ":method", Value: "POST"}, {Name: ":scheme", Value: "http"},
		{Name: ":path", Value: path}, {Name: ":authority", Value: "soak"},
		{Name: "content-type", Value: "application/grpc"}, {Name: "te", Value: "trailers"}} {
		r.henc.WriteField(f)
	}
	for _, f := range extra {
		r.henc.WriteField(f)
	}
	return slices.Clone(r.hbuf.Bytes())
}

func (r *rawConn) headers(id uint32, end bool, path string, extra ...hpack.HeaderField) error {
	return r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: r.block(path, extra...), EndStream: end, EndHeaders: true})
}

// streams returns the frames that open n Chat streams, each reset at once
// when reset.
func (r *rawConn) streams(n int, reset bool) []byte {
	var b bytes.Buffer
	fr := http2.NewFramer(&b, nil)
	blk := r.block(greeterpb.GreeterChatProcedure)
	for id := uint32(1); id < uint32(2*n); id += 2 {
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: blk, EndHeaders: true})
		if reset {
			fr.WriteRSTStream(id, http2.ErrCodeCancel)
		}
	}
	return b.Bytes()
}

// split writes a request's header block of more than 16 KiB as HEADERS
// and CONTINUATION frames.
func (r *rawConn) split(id uint32, blk []byte) {
	r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: blk[:16384], EndStream: true})
	for off := 16384; off < len(blk); off += 16384 {
		end := min(off+16384, len(blk))
		r.fr.WriteContinuation(id, end == len(blk), blk[off:end])
	}
}

// flood writes b again and again, n times at most, in a goroutine of its
// own (the server may stop reading); wait returns when it has stopped.
func (r *rawConn) flood(b []byte, n int) (wait func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range n {
			if _, err := r.c.Write(b); err != nil {
				return
			}
		}
	}()
	return func() { r.c.Close(); <-done }
}

// answer reads until the server answers: GOAWAY, RST_STREAM or a
// grpc-status, or the connection closing; "held" when the attack's time
// ran out first.
func (r *rawConn) answer() string {
	for {
		f, err := r.fr.ReadFrame()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return "held"
			}
			var ce http2.ConnectionError
			if errors.As(err, &ce) {
				return "bad frame from the server: " + err.Error()
			}
			return "closed"
		}
		switch f := f.(type) {
		case *http2.GoAwayFrame:
			return "GOAWAY " + f.ErrCode.String()
		case *http2.RSTStreamFrame:
			return "RST_STREAM " + f.ErrCode.String()
		case *http2.MetaHeadersFrame:
			if s := f.PseudoValue("status"); s != "" && s != "200" {
				return "HTTP " + s
			}
			for _, hf := range f.Fields {
				if hf.Name == "grpc-status" {
					return "grpc-status " + hf.Value
				}
			}
		}
	}
}

// hold reads until the attack's time runs out or the server closes the
// connection, answering nothing (not even PINGs).
func (r *rawConn) hold() string {
	for {
		f, err := r.fr.ReadFrame()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return "held"
			}
			return "closed"
		}
		if g, ok := f.(*http2.GoAwayFrame); ok {
			return "GOAWAY " + g.ErrCode.String()
		}
	}
}

// envelope frames a message; compressed sets its flag.
func envelope(compressed bool, msg []byte) []byte {
	b := make([]byte, 5+len(msg))
	if compressed {
		b[0] = 1
	}
	binary.BigEndian.PutUint32(b[1:], uint32(len(msg)))
	copy(b[5:], msg)
	return b
}

// gzipBomb is a request message of 16 MiB of zeros in 16 KiB of gzip,
// four times the server's receive limit.
var gzipBomb = sync.OnceValue(func() []byte {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	zeros := make([]byte, 1<<20)
	for range 16 {
		zw.Write(zeros)
	}
	zw.Close()
	// A protobuf field 1 (name) of 16 MiB would need its length up front;
	// the server fails at the limit before it parses anything.
	return buf.Bytes()
})

// attackList: the attack classes of runtime/server's attack tests.
var attackList = []attack{
	{"malformed frame length", func(r *rawConn) string {
		r.preface()
		r.c.Write(rawframe.Frame(http2.FramePing, 0, 0, make([]byte, 7)))
		return r.answer()
	}},
	{"empty header name", func(r *rawConn) string {
		r.preface()
		blk := append(r.block(greeterpb.GreeterSayHelloProcedure), 0x00, 0x00, 0x01, 'x')
		r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: blk, EndStream: true, EndHeaders: true})
		return r.answer()
	}},
	{"upper-case header name", func(r *rawConn) string {
		r.preface()
		r.headers(1, true, greeterpb.GreeterSayHelloProcedure, hpack.HeaderField{Name: "X-Upper", Value: "1"})
		return r.answer()
	}},
	{"first frame not SETTINGS", func(r *rawConn) string {
		io.WriteString(r.c, http2.ClientPreface)
		r.fr.WritePing(false, [8]byte{})
		return r.answer()
	}},
	{"rapid reset", func(r *rawConn) string {
		r.preface()
		wait := r.flood(r.streams(5000, true), 1)
		defer wait()
		return r.answer()
	}},
	{"CONTINUATION flood", func(r *rawConn) string {
		r.preface()
		r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: r.block(greeterpb.GreeterSayHelloProcedure)})
		r.hbuf.Reset()
		for r.hbuf.Len()+1100 < 16384 {
			r.henc.WriteField(hpack.HeaderField{Name: "x-flood", Value: strings.Repeat("c", 1000), Sensitive: true})
		}
		wait := r.flood(rawframe.Frame(http2.FrameContinuation, 0, 1, r.hbuf.Bytes()), 10000)
		defer wait()
		return r.answer()
	}},
	{"HPACK bomb", func(r *rawConn) string {
		r.preface()
		blk := r.block(greeterpb.GreeterSayHelloProcedure, hpack.HeaderField{Name: "x-bomb", Value: strings.Repeat("b", 4000)})
		blk = append(blk, bytes.Repeat([]byte{0x80 | 62}, 100000)...)
		r.split(1, blk)
		return r.answer()
	}},
	{"huge header list", func(r *rawConn) string {
		r.preface()
		var extra []hpack.HeaderField
		for i := range 20 {
			extra = append(extra, hpack.HeaderField{Name: "x-big-" + strconv.Itoa(i), Value: strings.Repeat("h", 4000), Sensitive: true})
		}
		blk := r.block(greeterpb.GreeterSayHelloProcedure, extra...)
		r.split(1, blk)
		return r.answer()
	}},
	{"PING flood, never reading", func(r *rawConn) string {
		r.preface()
		// Write until the server stops reading or closes, reading nothing.
		b := bytes.Repeat(rawframe.Frame(http2.FramePing, 0, 0, make([]byte, 8)), 4096)
		for range 1000 {
			if _, err := r.c.Write(b); err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					return "stopped reading"
				}
				return "closed"
			}
		}
		return "read 32 MiB of PINGs"
	}},
	{"SETTINGS flood", func(r *rawConn) string {
		r.preface()
		wait := r.flood(bytes.Repeat(rawframe.Frame(http2.FrameSettings, 0, 0, []byte{0, byte(http2.SettingMaxFrameSize), 0, 0, 0x40, 0}), 5000), 1)
		defer wait()
		return r.answer()
	}},
	{"empty DATA flood", func(r *rawConn) string {
		r.preface()
		r.headers(1, false, greeterpb.GreeterLotsOfGreetingsProcedure)
		wait := r.flood(bytes.Repeat(rawframe.Frame(http2.FrameData, 0, 1, nil), 5000), 1)
		defer wait()
		return r.answer()
	}},
	{"more streams than allowed", func(r *rawConn) string {
		r.preface()
		r.c.Write(r.streams(300, false))
		return r.answer()
	}},
	{"idle streams held open", func(r *rawConn) string {
		r.preface()
		for id := uint32(1); id < 2*256; id += 2 {
			r.headers(id, false, greeterpb.GreeterSayHelloProcedure)
		}
		return r.hold()
	}},
	{"zero-window reader", func(r *rawConn) string {
		r.preface(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 0})
		msg := envelope(false, append([]byte{0x0a, 0x80, 0x20}, payload[:4096]...))
		for id := uint32(1); id < 2*64; id += 2 {
			r.headers(id, false, greeterpb.GreeterLotsOfRepliesProcedure)
			r.fr.WriteData(id, true, msg)
		}
		return r.hold()
	}},
	{"slowloris", func(r *rawConn) string {
		// One byte of the preface every 100 ms: the handshake timeout
		// (2 s here) closes the connection. The attack takes longer than
		// -soak.hold when it must, to see that.
		deadline := time.Now().Add(limits.HandshakeTimeout + time.Second)
		r.c.SetWriteDeadline(deadline)
		for i := 0; time.Now().Before(deadline); i++ {
			if _, err := r.c.Write([]byte{http2.ClientPreface[i%len(http2.ClientPreface)]}); err != nil {
				return "closed"
			}
			r.c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
			if _, err := r.c.Read(make([]byte, 64)); err != nil {
				var ne net.Error
				if !errors.As(err, &ne) || !ne.Timeout() {
					return "closed"
				}
			}
		}
		return "held"
	}},
	{"oversized length prefix", func(r *rawConn) string {
		r.preface()
		r.headers(1, false, greeterpb.GreeterSayHelloProcedure)
		r.fr.WriteData(1, false, []byte{0, 0xff, 0xff, 0xff, 0xff})
		return r.answer()
	}},
	{"window overflow", func(r *rawConn) string {
		r.preface()
		r.fr.WriteWindowUpdate(0, 1<<31-1)
		return r.answer()
	}},
	{"flow-control overrun", func(r *rawConn) string {
		r.preface()
		r.headers(1, false, greeterpb.GreeterLotsOfGreetingsProcedure)
		chunk := make([]byte, 16384)
		for sent := 0; sent <= 64<<10; sent += len(chunk) {
			r.fr.WriteData(1, false, chunk)
		}
		return r.answer()
	}},
	{"oversized frame", func(r *rawConn) string {
		r.preface()
		r.headers(1, false, greeterpb.GreeterLotsOfGreetingsProcedure)
		r.c.Write(rawframe.Frame(http2.FrameData, 0, 1, make([]byte, 20000)))
		return r.answer()
	}},
	{"gzip bomb", func(r *rawConn) string {
		r.preface()
		r.headers(1, false, greeterpb.GreeterSayHelloProcedure, hpack.HeaderField{Name: "grpc-encoding", Value: "gzip"})
		msg := envelope(true, gzipBomb())
		for off := 0; off < len(msg); off += 16384 {
			end := min(off+16384, len(msg))
			r.fr.WriteData(1, end == len(msg), msg[off:end])
		}
		return r.answer()
	}},
	// HTTP/1.1, on the same port, through net/http and webrpc.
	{"HTTP/1.1 slowloris", func(r *rawConn) string {
		// One byte of a request line every 100 ms: the handshake timeout
		// (net/http's ReadHeaderTimeout) closes the connection.
		line := "POST " + greeterpb.GreeterSayHelloProcedure + " HTTP/1.1\r\nHost: soak\r\nX-Slow: "
		deadline := time.Now().Add(2*limits.HandshakeTimeout + time.Second)
		r.c.SetWriteDeadline(deadline)
		for i := 0; time.Now().Before(deadline); i++ {
			b := byte('v')
			if i < len(line) {
				b = line[i]
			}
			if _, err := r.c.Write([]byte{b}); err != nil {
				return "closed"
			}
			r.c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
			if _, err := r.c.Read(make([]byte, 64)); err != nil {
				var ne net.Error
				if !errors.As(err, &ne) || !ne.Timeout() {
					return "closed"
				}
			}
		}
		return "held"
	}},
	{"HTTP/1.1 huge header", func(r *rawConn) string {
		fmt.Fprintf(r.c, "POST %s HTTP/1.1\r\nHost: soak\r\nX-Big: %s\r\n\r\n", greeterpb.GreeterSayHelloProcedure, strings.Repeat("v", 80<<10))
		return r.http1Answer()
	}},
	{"HTTP/1.1 handler held", func(r *rawConn) string {
		body := `{"name":"sleep"}`
		fmt.Fprintf(r.c, "POST %s HTTP/1.1\r\nHost: soak\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
			greeterpb.GreeterSayHelloProcedure, len(body), body)
		return r.http1Answer()
	}},
	{"HTTP/1.1 stalled body", func(r *rawConn) string {
		fmt.Fprintf(r.c, "POST %s HTTP/1.1\r\nHost: soak\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"name\":",
			greeterpb.GreeterSayHelloProcedure)
		return r.http1Answer()
	}},
	{"HTTP/1.1 server stream never read", func(r *rawConn) string {
		// 16 replies of 512 KiB to a client that reads none.
		msg := envelope(false, []byte(`{"name":"`+strings.Repeat("r", 512<<10)+`"}`))
		fmt.Fprintf(r.c, "POST %s HTTP/1.1\r\nHost: soak\r\nContent-Type: application/connect+json\r\nContent-Length: %d\r\n\r\n",
			greeterpb.GreeterLotsOfRepliesProcedure, len(msg))
		r.c.Write(msg)
		// Read nothing for longer than the server's write timeout, then
		// drain: a server that gave up has closed the connection; one
		// that still waits has sent the rest and keeps it open.
		time.Sleep(limits.WriteTimeout + time.Second)
		r.c.SetReadDeadline(time.Now().Add(time.Second))
		_, err := io.Copy(io.Discard, r.c)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return "held"
		}
		return "closed"
	}},
}

// http1Answer reads the status line of an HTTP/1.1 answer: "HTTP <code>",
// "closed" or "held".
func (r *rawConn) http1Answer() string {
	line, err := bufio.NewReader(r.c).ReadString('\n')
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return "held"
		}
		return "closed"
	}
	if f := strings.Fields(line); len(f) >= 2 {
		return "HTTP " + f[1]
	}
	return "bad status line " + strconv.Quote(line)
}
