package transport

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/protoc-gen-micro/micro/internal/leakcheck"
	"github.com/protoc-gen-micro/micro/runtime/status"
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
// control. The caller must make sure the writer is idle; taking w.mu then
// orders this read after the writer's last pass.
func queuedBytes(w *writer) (streams, bytes int) {
	w.mu.Lock()
	defer w.mu.Unlock()
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
	// Another round trip: the writer has handled everything before it.
	if err := roundTrip(t, cc, "/t/echo", 10); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	if streams, bytes := queuedBytes(cc.w); streams != 0 || bytes != 0 {
		t.Fatalf("the writer still holds %d bytes for %d streams the server already ended", bytes, streams)
	}
}
