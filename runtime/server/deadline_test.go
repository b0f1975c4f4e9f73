package server_test

import (
	"context"
	"errors"
	"testing"

	"github.com/protoc-gen-micro/micro/examples/greeter/greeterpb"
	"github.com/protoc-gen-micro/micro/internal/leakcheck"
	"github.com/protoc-gen-micro/micro/runtime/metadata"
	"github.com/protoc-gen-micro/micro/runtime/server"
	"golang.org/x/net/http2"
)

// sleeper's handlers block, ignoring their context, until release is
// closed; they report the context's error when the deadline passed.
type sleeper struct {
	greeterpb.GreeterHandler
	entered chan struct{}
	release chan struct{}
	ctxErr  chan error
}

func (s *sleeper) SayHello(ctx context.Context, in *greeterpb.HelloRequest, out *greeterpb.HelloReply) error {
	if in.Name == "fast" {
		out.Message = "fast"
		return nil
	}
	if in.Name == "headers first" {
		server.SendHeader(ctx, metadata.Pairs("x-early", "1"))
	}
	s.entered <- struct{}{}
	<-ctx.Done()
	s.ctxErr <- ctx.Err()
	<-s.release
	out.Message = "too late"
	return nil
}

// TestServerEnforcesDeadline: at grpc-timeout the server answers by
// itself, whatever the handler does: DEADLINE_EXCEEDED trailers when it
// has sent nothing, RST_STREAM(CANCEL) when its headers are out, as grpc-go
// does. The handler's context ends with DeadlineExceeded, and what it
// returns later is discarded: it was answering a 1.5 s sleep with OK.
func TestServerEnforcesDeadline(t *testing.T) {
	leakcheck.Check(t)
	s := &sleeper{entered: make(chan struct{}, 2), release: make(chan struct{}), ctxErr: make(chan error, 2)}
	srv := server.NewServer(server.WithAddress("127.0.0.1:0"))
	if err := greeterpb.RegisterGreeterHandler(srv, s); err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	defer close(s.release)
	rc := dialRaw(t, srv.Address())

	rc.headers(1, false, grpcHeaders(greeterpb.GreeterSayHelloProcedure, "grpc-timeout", "50m"))
	rc.data(1, true, envelope(0, helloBytes(t, "quiet")))
	<-s.entered
	r := rc.read(1) // the handler is still blocked: this is the server's own answer
	r.expectStatus(t, "4", "deadline")
	if err := <-s.ctxErr; !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("handler's context ended with %v, want DeadlineExceeded", err)
	}

	rc.headers(3, false, grpcHeaders(greeterpb.GreeterSayHelloProcedure, "grpc-timeout", "50m"))
	rc.data(3, true, envelope(0, helloBytes(t, "headers first")))
	<-s.entered
	r = rc.read(3)
	if r.rst == nil || *r.rst != http2.ErrCodeCancel {
		t.Fatalf("headers sent, then the deadline: want RST_STREAM(CANCEL), got %+v", r)
	}
	if r.headers["x-early"] != "1" {
		t.Fatalf("headers sent before the deadline did not arrive: %v", r.headers)
	}
	if err := <-s.ctxErr; !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("handler's context ended with %v, want DeadlineExceeded", err)
	}

	// The handlers return now; nothing more may be written for their
	// streams, and the connection still serves.
	s.release <- struct{}{}
	s.release <- struct{}{}
	rc.headers(5, false, grpcHeaders(greeterpb.GreeterSayHelloProcedure))
	rc.data(5, true, envelope(0, helloBytes(t, "fast")))
	for ended := false; !ended; {
		f, err := rc.fr.ReadFrame()
		if err != nil {
			t.Fatal(err)
		}
		switch f := f.(type) {
		case *http2.HeadersFrame:
			if f.StreamID != 5 {
				t.Fatalf("HEADERS on stream %d after its deadline", f.StreamID)
			}
			rc.hdec.DecodeFull(f.HeaderBlockFragment())
			ended = f.StreamEnded()
		case *http2.DataFrame:
			if f.StreamID != 5 {
				t.Fatalf("DATA on stream %d after its deadline", f.StreamID)
			}
		}
	}
}
