package transport

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/protoc-gen-micro/micro/internal/leakcheck"
	"github.com/protoc-gen-micro/micro/runtime/status"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// echoHandler echoes one BytesValue on /t/echo and rejects /t/reject as
// soon as its headers arrive.
type echoHandler struct{}

func (echoHandler) Route(st *ServerStream) (bool, *status.Error) {
	if st.Method() == "/t/reject" {
		return false, status.New(status.Unimplemented, "rejected")
	}
	return true, nil
}

func (echoHandler) Serve(st *ServerStream) {
	var in wrapperspb.BytesValue
	if err := st.RecvMsg(&in); err != nil {
		st.Finish(err)
		return
	}
	st.FinishWithMessage(&in)
}

func startEchoServer(t *testing.T) string {
	t.Helper()
	srv := NewServer(ServerConfig{Handler: echoHandler{}, MaxRecvMsgSize: 8 << 20})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan struct{})
	go func() { srv.Serve(ln); close(served) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		<-served
	})
	return ln.Addr().String()
}

func roundTrip(t *testing.T, cc *ClientConn, method string, n int) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cs, err := cc.NewStream(ctx, StreamConfig{Method: method})
	if err != nil {
		return err
	}
	if err := cs.SendMsg(&wrapperspb.BytesValue{Value: make([]byte, n)}, true); err != nil {
		return err
	}
	var out wrapperspb.BytesValue
	if err := cs.RecvMsg(&out); err != nil {
		return err
	}
	if len(out.Value) != n {
		t.Fatalf("echo of %d bytes returned %d", n, len(out.Value))
	}
	return cs.RecvEnd()
}

// queuedBytes reports what the writer holds for streams blocked on flow
// control. It reads the writer goroutine's state, so it runs there, from
// onWriter.
func queuedBytes(w *writer) (streams, bytes int) {
	for _, ws := range w.blocked {
		streams++
		for _, it := range ws.pending {
			if it.buf != nil {
				bytes += len(*it.buf) - it.off
			}
		}
	}
	return streams, bytes
}

// onWriter runs fn on w's goroutine once it has handled everything queued
// before, and waits for it. It queues the HEADERS of a stream whose
// headerSource runs fn and then abandons the stream, so nothing is written
// (the stream ID is skipped, as HTTP/2 allows).
func onWriter(t *testing.T, w *writer, fn func()) {
	t.Helper()
	done := make(chan struct{})
	if !w.push(item{kind: itHeaders, ws: &wstate{src: probe(func() { fn(); close(done) })}}) {
		t.Fatal("the writer has stopped")
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the writer never reached the probe")
	}
}

// probe is a headerSource that runs itself when the writer opens it.
type probe func()

func (p probe) opened(uint32) bool { p(); return false }
func (probe) writeHeaderFields(*hpack.Encoder, itemKind) bool {
	panic("probe: headers of an abandoned stream")
}
func (probe) sent()      {}
func (probe) flowError() {}

// TestEndedStreamDropsQueuedData: when the server ends a call while the
// client still has request data waiting for stream window, the client's
// writer must drop that data: the server will never grant more window for
// a stream it has closed, so otherwise the bytes stay pinned for the life
// of the connection.
func TestEndedStreamDropsQueuedData(t *testing.T) {
	leakcheck.Check(t)
	addr := startEchoServer(t)
	cc, err := Dial(context.Background(), addr, DialConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	// A round trip makes sure the client has the server's SETTINGS.
	if err := roundTrip(t, cc, "/t/echo", 10); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		err := roundTrip(t, cc, "/t/reject", 3<<20)
		if status.CodeOf(err) != status.Unimplemented {
			t.Fatalf("rejected call: %v", err)
		}
	}
	// Another round trip: the reader queued the reset that drops a
	// rejected stream's data before it read this response, so before the
	// probe, which reads what the writer holds once it has handled the
	// reset.
	if err := roundTrip(t, cc, "/t/echo", 10); err != nil {
		t.Fatal(err)
	}
	var streams, bytes int
	onWriter(t, cc.w, func() { streams, bytes = queuedBytes(cc.w) })
	if streams != 0 || bytes != 0 {
		t.Fatalf("the writer still holds %d bytes for %d streams the server already ended", bytes, streams)
	}
}
