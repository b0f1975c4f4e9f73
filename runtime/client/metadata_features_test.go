package client_test

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/protoc-gen-micro/micro/examples/greeter/greeterpb"
	"github.com/protoc-gen-micro/micro/internal/leakcheck"
	"github.com/protoc-gen-micro/micro/runtime/client"
	"github.com/protoc-gen-micro/micro/runtime/metadata"
	"github.com/protoc-gen-micro/micro/runtime/server"
	"github.com/protoc-gen-micro/micro/runtime/status"
)

func allBytes() string {
	b := make([]byte, 256)
	for i := range b {
		b[i] = byte(i)
	}
	return string(b)
}

func reversed(s string) string {
	b := []byte(s)
	for i, j := 0, len(b)-1; i < j; i, j = i+1, j-1 {
		b[i], b[j] = b[j], b[i]
	}
	return string(b)
}

// binEcho checks the request's binary metadata and echoes it in the
// response headers and, reversed, in the trailers.
func binEcho() *funcGreeter {
	check := func(ctx context.Context) (string, error) {
		md, ok := metadata.FromIncomingContext(ctx)
		if !ok {
			return "", status.New(status.InvalidArgument, "no incoming metadata")
		}
		v := md.Get("x-raw-bin")
		if len(v) != 2 || v[0] != allBytes() || v[1] != "" {
			return "", status.Errorf(status.InvalidArgument, "x-raw-bin arrived as %q", v)
		}
		if md.Value("x-text") != "plain text" {
			return "", status.Errorf(status.InvalidArgument, "x-text arrived as %q", md.Value("x-text"))
		}
		return v[0], nil
	}
	return &funcGreeter{
		hello: func(ctx context.Context, in *greeterpb.HelloRequest, out *greeterpb.HelloReply) error {
			v, err := check(ctx)
			if err != nil {
				return err
			}
			server.SetHeader(ctx, metadata.Pairs("x-echo-bin", v))
			server.SetTrailer(ctx, metadata.Pairs("x-rev-bin", reversed(v), "x-rev-bin", "\x00"))
			out.Message = "ok"
			return nil
		},
		chat: func(ctx context.Context, s greeterpb.Greeter_ChatHandlerStream) error {
			v, err := check(ctx)
			if err != nil {
				return err
			}
			s.SetHeader(metadata.Pairs("x-echo-bin", v))
			s.SetTrailer(metadata.Pairs("x-rev-bin", reversed(v)))
			if _, err := s.Recv(); err != nil {
				return err
			}
			return s.Send(&greeterpb.HelloReply{Message: "ok"})
		},
	}
}

func TestBinaryMetadata(t *testing.T) {
	leakcheck.Check(t)
	srv := serveGreeter(t, binEcho())
	g := greeterAt(newTestClient(t), srv.Address())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ctx = metadata.AppendToOutgoingContext(ctx, "X-Raw-Bin", allBytes(), "x-text", "plain text", "x-raw-bin", "")

	var hdr, trl metadata.MD
	if _, err := g.SayHello(ctx, &greeterpb.HelloRequest{Name: "m"}, client.WithResponseHeader(&hdr), client.WithResponseTrailer(&trl)); err != nil {
		t.Fatal(err)
	}
	if hdr.Value("x-echo-bin") != allBytes() {
		t.Fatalf("header x-echo-bin = %q", hdr.Value("x-echo-bin"))
	}
	if v := trl.Get("x-rev-bin"); len(v) != 2 || v[0] != reversed(allBytes()) || v[1] != "\x00" {
		t.Fatalf("trailer x-rev-bin = %q", v)
	}

	bs, err := g.Chat(ctx)
	if err != nil {
		t.Fatal(err)
	}
	bs.Send(&greeterpb.HelloRequest{Name: "m"})
	if _, err := bs.Recv(); err != nil {
		t.Fatal(err)
	}
	h, err := bs.Header()
	if err != nil || h.Value("x-echo-bin") != allBytes() {
		t.Fatalf("stream header: %q %v", h.Value("x-echo-bin"), err)
	}
	bs.CloseSend()
	if _, err := bs.Recv(); err != io.EOF {
		t.Fatalf("stream end: %v", err)
	}
	if v := bs.Trailer().Value("x-rev-bin"); v != reversed(allBytes()) {
		t.Fatalf("stream trailer: %q", v)
	}
}

// TestSendHeaderBeforeMessage: headers a handler sends with SendHeader
// reach the client's Header() before any message is sent.
func TestSendHeaderBeforeMessage(t *testing.T) {
	leakcheck.Check(t)
	proceed := make(chan struct{})
	srv := serveGreeter(t, &funcGreeter{
		replies: func(ctx context.Context, in *greeterpb.HelloRequest, s greeterpb.Greeter_LotsOfRepliesHandlerStream) error {
			if err := s.SendHeader(metadata.Pairs("x-early", "yes", "x-early-bin", "\xff\x00")); err != nil {
				return err
			}
			if err := s.SendHeader(metadata.Pairs("x-twice", "no")); err == nil {
				return status.New(status.Internal, "second SendHeader succeeded")
			}
			select {
			case <-proceed:
			case <-ctx.Done():
				return ctx.Err()
			}
			return s.Send(&greeterpb.HelloReply{Message: "after header"})
		},
		hello: func(ctx context.Context, in *greeterpb.HelloRequest, out *greeterpb.HelloReply) error {
			if err := server.SendHeader(ctx, metadata.Pairs("x-unary-early", "1")); err != nil {
				return err
			}
			if err := server.SetHeader(ctx, metadata.Pairs("x-late", "1")); err == nil {
				return status.New(status.Internal, "SetHeader after SendHeader succeeded")
			}
			out.Message = "u"
			return nil
		},
	})
	g := greeterAt(newTestClient(t), srv.Address())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	rs, err := g.LotsOfReplies(ctx, &greeterpb.HelloRequest{Name: "h"})
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan metadata.MD, 1)
	go func() {
		h, err := rs.Header()
		if err != nil {
			t.Errorf("Header: %v", err)
		}
		got <- h
	}()
	select {
	case h := <-got:
		if h.Value("x-early") != "yes" || h.Value("x-early-bin") != "\xff\x00" {
			t.Fatalf("early header = %v", h)
		}
	case <-time.After(5 * time.Second):
		close(proceed)
		t.Fatal("Header() did not return before the first message was sent")
	}
	close(proceed)
	if m, err := rs.Recv(); err != nil || m.Message != "after header" {
		t.Fatalf("message: %v %v", m, err)
	}
	if _, err := rs.Recv(); err != io.EOF {
		t.Fatalf("end: %v", err)
	}

	var hdr metadata.MD
	if _, err := g.SayHello(ctx, &greeterpb.HelloRequest{Name: "u"}, client.WithResponseHeader(&hdr)); err != nil {
		t.Fatal(err)
	}
	if hdr.Value("x-unary-early") != "1" || hdr.Value("x-late") != "" {
		t.Fatalf("unary header = %v", hdr)
	}
}

// TestServerSpeaksFirst: on a bidi stream the server may send before the
// client does; a client that opens the stream and waits must see it.
func TestServerSpeaksFirst(t *testing.T) {
	leakcheck.Check(t)
	srv := serveGreeter(t, &funcGreeter{
		chat: func(ctx context.Context, s greeterpb.Greeter_ChatHandlerStream) error {
			if err := s.SendHeader(metadata.Pairs("x-hello", "1")); err != nil {
				return err
			}
			if err := s.Send(&greeterpb.HelloReply{Message: "welcome"}); err != nil {
				return err
			}
			for {
				in, err := s.Recv()
				if err == io.EOF {
					return nil
				}
				if err != nil {
					return err
				}
				s.Send(&greeterpb.HelloReply{Message: "Hello " + in.Name})
			}
		},
	})
	g := greeterAt(newTestClient(t), srv.Address())

	t.Run("Recv", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		bs, err := g.Chat(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer bs.Close()
		m, err := bs.Recv()
		if err != nil || m.Message != "welcome" {
			t.Fatalf("first message from the server: %v %v", m, err)
		}
	})
	t.Run("Header", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		bs, err := g.Chat(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer bs.Close()
		h, err := bs.Header()
		if err != nil || h.Value("x-hello") != "1" {
			t.Fatalf("Header before sending: %v %v", h, err)
		}
	})
}

// TestMetadataHTTP2CannotCarry: metadata with a control character in a
// value, or a key that is not a lower-case token, is refused with a clear
// error on both sides rather than sent (or silently dropped).
func TestMetadataHTTP2CannotCarry(t *testing.T) {
	leakcheck.Check(t)
	setErr := make(chan error, 1)
	srv := serveGreeter(t, &funcGreeter{
		hello: func(ctx context.Context, in *greeterpb.HelloRequest, out *greeterpb.HelloReply) error {
			setErr <- server.SetHeader(ctx, metadata.Pairs("x-bad", "line\nbreak"))
			out.Message = "ok"
			return nil
		},
	})
	g := greeterAt(newTestClient(t), srv.Address())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, md := range []metadata.MD{{"x-nul": {"a\x00b"}}, {"x key": {"v"}}} {
		_, err := g.SayHello(metadata.NewOutgoingContext(ctx, md), &greeterpb.HelloRequest{Name: "m"})
		if status.CodeOf(err) != status.Internal || !strings.Contains(err.Error(), "metadata") {
			t.Fatalf("call with metadata %q: %v, want Internal naming the metadata", md, err)
		}
	}
	if _, err := g.SayHello(ctx, &greeterpb.HelloRequest{Name: "m"}); err != nil {
		t.Fatal(err)
	}
	if err := <-setErr; status.CodeOf(err) != status.Internal {
		t.Fatalf("server.SetHeader with a newline in a value: %v, want Internal", err)
	}
}
