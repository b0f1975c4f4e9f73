package interop_test

import (
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"

	"golang.org/x/net/http2"
)

// frameLog is a cleartext TCP proxy that records the HTTP/2 frames of the
// first connection through it, both ways, for tests that check the wire.
type frameLog struct {
	ln     net.Listener
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  []net.Conn
	frames []string
}

// newFrameLog proxies to target; the test dials fl.addr() instead.
func newFrameLog(t *testing.T, target string) *frameLog {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fl := &frameLog{ln: ln}
	fl.wg.Add(1)
	go fl.serve(target)
	t.Cleanup(func() {
		ln.Close()
		fl.mu.Lock()
		for _, c := range fl.conns {
			c.Close()
		}
		fl.mu.Unlock()
		fl.wg.Wait()
	})
	return fl
}

func (fl *frameLog) addr() string { return fl.ln.Addr().String() }

func (fl *frameLog) serve(target string) {
	defer fl.wg.Done()
	c, err := fl.ln.Accept()
	if err != nil {
		return
	}
	s, err := net.Dial("tcp", target)
	if err != nil {
		c.Close()
		return
	}
	fl.mu.Lock()
	fl.conns = append(fl.conns, c, s)
	fl.mu.Unlock()
	fl.wg.Add(2)
	go fl.pipe(s, c, "client", true)
	go fl.pipe(c, s, "server", false)
}

// pipe copies src to dst and records the frames it carries.
func (fl *frameLog) pipe(dst, src net.Conn, from string, preface bool) {
	defer fl.wg.Done()
	pr, pw := io.Pipe()
	fl.wg.Add(1)
	go func() {
		defer fl.wg.Done()
		_, err := io.Copy(io.MultiWriter(dst, pw), src)
		pw.CloseWithError(err)
		dst.Close()
	}()
	defer pr.Close()
	if preface {
		if _, err := io.ReadFull(pr, make([]byte, len(http2.ClientPreface))); err != nil {
			return
		}
	}
	fr := http2.NewFramer(nil, pr)
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			io.Copy(io.Discard, pr)
			return
		}
		fl.mu.Lock()
		fl.frames = append(fl.frames, from+" "+describe(f))
		fl.mu.Unlock()
	}
}

// describe is a frame's header plus the fields that matter to flow control.
func describe(f http2.Frame) string {
	s := fmt.Sprint(f.Header())
	switch f := f.(type) {
	case *http2.WindowUpdateFrame:
		s += fmt.Sprint(" increment=", f.Increment)
	case *http2.SettingsFrame:
		f.ForeachSetting(func(st http2.Setting) error { s += " " + st.String(); return nil })
	}
	return s
}

// list returns the frames recorded so far, one a line.
func (fl *frameLog) list() []string {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	return append([]string(nil), fl.frames...)
}

func (fl *frameLog) String() string { return strings.Join(fl.list(), "\n") }
