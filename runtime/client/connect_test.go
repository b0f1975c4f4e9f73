package client_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/protoc-gen-micro/micro/examples/greeter/greeterpb"
	"github.com/protoc-gen-micro/micro/internal/callctx"
	"github.com/protoc-gen-micro/micro/internal/greetertest"
	"github.com/protoc-gen-micro/micro/internal/leakcheck"
	"github.com/protoc-gen-micro/micro/internal/transport"
	"github.com/protoc-gen-micro/micro/runtime/client"
	"github.com/protoc-gen-micro/micro/runtime/metadata"
	"github.com/protoc-gen-micro/micro/runtime/server"
	"github.com/protoc-gen-micro/micro/runtime/status"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// protocolLog records, for each call a handler sees, whether it came over
// the gRPC transport or the Connect handler.
type protocolLog struct {
	mu    sync.Mutex
	grpc  int
	other int
}

func (l *protocolLog) note(ctx context.Context) {
	c, _ := callctx.FromContext(ctx)
	_, grpc := c.(*transport.ServerStream)
	l.mu.Lock()
	defer l.mu.Unlock()
	if grpc {
		l.grpc++
	} else {
		l.other++
	}
}

func (l *protocolLog) counts() (grpc, other int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.grpc, l.other
}

// loggingGreeter is the default funcGreeter, noting each call's protocol.
func loggingGreeter(l *protocolLog) *funcGreeter {
	return &funcGreeter{
		hello: func(ctx context.Context, in *greeterpb.HelloRequest, out *greeterpb.HelloReply) error {
			l.note(ctx)
			out.Message = "Hello " + in.Name
			return nil
		},
		replies: func(ctx context.Context, in *greeterpb.HelloRequest, s greeterpb.Greeter_LotsOfRepliesHandlerStream) error {
			l.note(ctx)
			for i := 0; i < 3; i++ {
				if err := s.Send(&greeterpb.HelloReply{Message: fmt.Sprintf("Hello %s #%d", in.Name, i)}); err != nil {
					return err
				}
			}
			return nil
		},
		chat: func(ctx context.Context, s greeterpb.Greeter_ChatHandlerStream) error {
			l.note(ctx)
			return (&funcGreeter{}).Chat(ctx, s)
		},
	}
}

// TestConnectEveryKind calls every kind of method with the Connect
// protocol, over HTTP/1.1 and h2c, in proto and JSON, with and without
// gzip, and checks that the server saw Connect calls, not gRPC.
func TestConnectEveryKind(t *testing.T) {
	leakcheck.Check(t)
	var log protocolLog
	srv := serveGreeter(t, loggingGreeter(&log), server.WithSendCompression("gzip"))
	for _, proto := range []struct {
		name string
		p    client.Protocol
		bidi bool
	}{{"http1", client.ProtocolConnect, false}, {"h2c", client.ProtocolConnectH2C, true}} {
		for _, codec := range []string{"proto", "json"} {
			for _, comp := range []string{"", "gzip"} {
				t.Run(fmt.Sprintf("%s/%s/%q", proto.name, codec, comp), func(t *testing.T) {
					opts := []client.Option{client.WithProtocol(proto.p), client.WithContentType(codec)}
					if comp != "" {
						opts = append(opts, client.WithSendCompression(comp))
					}
					greetertest.Exercise(t, greeterAt(newTestClient(t, opts...), srv.Address()), proto.bidi)
				})
			}
		}
	}
	// Four variants each: unary, server stream and, over h2c, bidi (the
	// client stream is not logged).
	if grpc, other := log.counts(); grpc != 0 || other != 4*2+4*3 {
		t.Fatalf("the server saw %d gRPC and %d other calls, want 0 and %d", grpc, other, 4*2+4*3)
	}
}

// TestConnectBidiNeedsHTTP2: over cleartext HTTP/1.1 a bidi call fails
// with a status rather than hanging.
func TestConnectBidiNeedsHTTP2(t *testing.T) {
	leakcheck.Check(t)
	srv := serveGreeter(t, nil)
	g := greeterAt(newTestClient(t, client.WithProtocol(client.ProtocolConnect)), srv.Address())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	bs, err := g.Chat(ctx)
	if err == nil {
		bs.Send(&greeterpb.HelloRequest{Name: "x"})
		_, err = bs.Recv()
		bs.Close()
	}
	if code := status.CodeOf(err); code == status.OK || code == status.DeadlineExceeded {
		t.Fatalf("bidi over HTTP/1.1: %v, want a prompt error", err)
	}
}

// TestConnectTLS: over TLS, ALPN picks HTTP/2, so every kind works,
// bidi included, with ProtocolConnect and with ProtocolConnectH2C.
func TestConnectTLS(t *testing.T) {
	leakcheck.Check(t)
	cert, pool := selfSigned(t)
	var log protocolLog
	srv := serveGreeter(t, loggingGreeter(&log), server.WithTLSConfig(&tls.Config{Certificates: []tls.Certificate{cert}}))
	for _, p := range []client.Protocol{client.ProtocolConnect, client.ProtocolConnectH2C} {
		c := newTestClient(t, client.WithProtocol(p), client.WithTLSConfig(&tls.Config{RootCAs: pool}))
		greetertest.Exercise(t, greeterAt(c, srv.Address()), true)
	}
	// A client that does not trust the certificate fails to connect.
	untrusting := greeterAt(newTestClient(t, client.WithProtocol(client.ProtocolConnect), client.WithTLSConfig(&tls.Config{})), srv.Address())
	if _, err := untrusting.SayHello(context.Background(), &greeterpb.HelloRequest{Name: "x"}); status.CodeOf(err) != status.Unavailable {
		t.Fatalf("untrusted certificate: %v, want Unavailable", err)
	}
}

// TestConnectStatusDetails: a handler's error reaches the caller with its
// code, message and details, from a unary call and from a stream.
func TestConnectStatusDetails(t *testing.T) {
	leakcheck.Check(t)
	const msg = "slow down: 100% of quota used ✋"
	detailed := func(code status.Code) error {
		e, err := status.New(code, msg).WithDetails(wrapperspb.String("quota"))
		if err != nil {
			return err
		}
		return e
	}
	srv := serveGreeter(t, &funcGreeter{
		hello: func(ctx context.Context, in *greeterpb.HelloRequest, out *greeterpb.HelloReply) error {
			return detailed(status.ResourceExhausted)
		},
		replies: func(ctx context.Context, in *greeterpb.HelloRequest, s greeterpb.Greeter_LotsOfRepliesHandlerStream) error {
			s.Send(&greeterpb.HelloReply{Message: "one"})
			return detailed(status.Aborted)
		},
	})
	check := func(what string, err error, code status.Code) {
		t.Helper()
		var se *status.Error
		if !errors.As(err, &se) || se.Code() != code || se.Message() != msg || len(se.Details()) != 1 {
			t.Fatalf("%s: %v, want %v %q with a detail", what, err, code, msg)
		}
		var s wrapperspb.StringValue
		if err := se.Details()[0].UnmarshalTo(&s); err != nil || s.Value != "quota" {
			t.Fatalf("%s detail: %q %v", what, s.Value, err)
		}
	}
	for _, p := range []client.Protocol{client.ProtocolConnect, client.ProtocolConnectH2C} {
		for _, codec := range []string{"proto", "json"} {
			g := greeterAt(newTestClient(t, client.WithProtocol(p), client.WithContentType(codec)), srv.Address())
			_, err := g.SayHello(context.Background(), &greeterpb.HelloRequest{Name: "x"})
			check("unary "+codec, err, status.ResourceExhausted)
			rs, err := g.LotsOfReplies(context.Background(), &greeterpb.HelloRequest{Name: "x"})
			if err != nil {
				t.Fatal(err)
			}
			if m, err := rs.Recv(); err != nil || m.Message != "one" {
				t.Fatalf("stream message: %v %v", m, err)
			}
			_, err = rs.Recv()
			check("stream "+codec, err, status.Aborted)
		}
	}
}

// TestConnectMetadata: metadata goes out as headers, text and binary, and
// the handler's headers and trailers come back, on unary and streaming
// calls.
func TestConnectMetadata(t *testing.T) {
	leakcheck.Check(t)
	echo := func(ctx context.Context) {
		md, _ := metadata.FromIncomingContext(ctx)
		server.SetHeader(ctx, metadata.Pairs("x-header", md.Value("x-in"), "x-header-bin", md.Value("x-in-bin")))
		server.SetTrailer(ctx, metadata.Pairs("x-trailer", "t", "x-trailer-bin", "\x00\x01"))
	}
	srv := serveGreeter(t, &funcGreeter{
		hello: func(ctx context.Context, in *greeterpb.HelloRequest, out *greeterpb.HelloReply) error {
			echo(ctx)
			return nil
		},
		replies: func(ctx context.Context, in *greeterpb.HelloRequest, s greeterpb.Greeter_LotsOfRepliesHandlerStream) error {
			echo(ctx)
			return s.Send(&greeterpb.HelloReply{})
		},
	})
	check := func(what string, hdr, trl metadata.MD) {
		t.Helper()
		if hdr.Value("x-header") != "v1" || hdr.Value("x-header-bin") != "\xff\x00b" {
			t.Fatalf("%s header: %v", what, hdr)
		}
		if trl.Value("x-trailer") != "t" || trl.Value("x-trailer-bin") != "\x00\x01" {
			t.Fatalf("%s trailer: %v", what, trl)
		}
	}
	ctx := metadata.AppendToOutgoingContext(context.Background(), "x-in", "v1", "x-in-bin", "\xff\x00b")
	for _, p := range []client.Protocol{client.ProtocolConnect, client.ProtocolConnectH2C} {
		g := greeterAt(newTestClient(t, client.WithProtocol(p)), srv.Address())
		var hdr, trl metadata.MD
		if _, err := g.SayHello(ctx, &greeterpb.HelloRequest{}, client.WithResponseHeader(&hdr), client.WithResponseTrailer(&trl)); err != nil {
			t.Fatal(err)
		}
		check("unary", hdr, trl)
		rs, err := g.LotsOfReplies(ctx, &greeterpb.HelloRequest{})
		if err != nil {
			t.Fatal(err)
		}
		for err == nil {
			_, err = rs.Recv()
		}
		if err != io.EOF {
			t.Fatal(err)
		}
		hdr, err = rs.Header()
		if err != nil {
			t.Fatal(err)
		}
		check("stream", hdr, rs.Trailer())
	}
}

// TestConnectDeadline: the call's deadline reaches the handler as
// Connect-Timeout-Ms, and a call that outlives it fails with
// DeadlineExceeded, unary or streaming.
func TestConnectDeadline(t *testing.T) {
	leakcheck.Check(t)
	type seen struct {
		left time.Duration
		ok   bool
	}
	deadlines := make(chan seen, 4)
	wait := func(ctx context.Context) error {
		d, ok := ctx.Deadline()
		deadlines <- seen{time.Until(d), ok}
		<-ctx.Done()
		return ctx.Err()
	}
	srv := serveGreeter(t, &funcGreeter{
		hello: func(ctx context.Context, _ *greeterpb.HelloRequest, _ *greeterpb.HelloReply) error { return wait(ctx) },
		replies: func(ctx context.Context, _ *greeterpb.HelloRequest, _ greeterpb.Greeter_LotsOfRepliesHandlerStream) error {
			return wait(ctx)
		},
	})
	for _, p := range []client.Protocol{client.ProtocolConnect, client.ProtocolConnectH2C} {
		g := greeterAt(newTestClient(t, client.WithProtocol(p)), srv.Address())
		_, err := g.SayHello(context.Background(), &greeterpb.HelloRequest{}, client.WithRequestTimeout(300*time.Millisecond))
		if status.CodeOf(err) != status.DeadlineExceeded {
			t.Fatalf("unary past its deadline: %v", err)
		}
		// The same client, so the connection the unary call left, if
		// any, carries the stream.
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		rs, err := g.LotsOfReplies(ctx, &greeterpb.HelloRequest{})
		if err == nil {
			_, err = rs.Recv()
		}
		cancel()
		if status.CodeOf(err) != status.DeadlineExceeded {
			t.Fatalf("%v stream past its deadline: %v", p, err)
		}
		for i := 0; i < 2; i++ {
			s := <-deadlines
			if !s.ok || s.left <= 0 || s.left > 300*time.Millisecond {
				t.Fatalf("handler's deadline: %v left (set %v), want within 300ms", s.left, s.ok)
			}
		}
	}
}

// TestConnectRecvLimit: a response over the client's limit fails with
// ResourceExhausted, as sent or once decompressed, unary or streaming, and
// the client goes on working.
func TestConnectRecvLimit(t *testing.T) {
	leakcheck.Check(t)
	reply := func(name string) string {
		if name == "big" {
			return strings.Repeat("r", 4096)
		}
		return "small"
	}
	srv := serveGreeter(t, &funcGreeter{
		hello: func(ctx context.Context, in *greeterpb.HelloRequest, out *greeterpb.HelloReply) error {
			out.Message = reply(in.Name)
			return nil
		},
		replies: func(ctx context.Context, in *greeterpb.HelloRequest, s greeterpb.Greeter_LotsOfRepliesHandlerStream) error {
			return s.Send(&greeterpb.HelloReply{Message: reply(in.Name)})
		},
	}, server.WithSendCompression("gzip"))
	for _, p := range []client.Protocol{client.ProtocolConnect, client.ProtocolConnectH2C} {
		g := greeterAt(newTestClient(t, client.WithProtocol(p), client.WithMaxRecvMsgSize(1024)), srv.Address())
		ctx := context.Background()
		// The server gzips: 4 KiB of "r" arrives as a few dozen bytes,
		// so only the limit after decompression catches it.
		if _, err := g.SayHello(ctx, &greeterpb.HelloRequest{Name: "big"}); status.CodeOf(err) != status.ResourceExhausted {
			t.Fatalf("unary over the limit: %v", err)
		}
		rs, err := g.LotsOfReplies(ctx, &greeterpb.HelloRequest{Name: "big"})
		if err == nil {
			_, err = rs.Recv()
		}
		if status.CodeOf(err) != status.ResourceExhausted {
			t.Fatalf("stream over the limit: %v", err)
		}
		if rsp, err := g.SayHello(ctx, &greeterpb.HelloRequest{Name: "small"}); err != nil || rsp.Message != "small" {
			t.Fatalf("small response after the limit was hit: %v %v", rsp, err)
		}
	}
	// Uncompressed, the declared size is over the limit already.
	plain := serveGreeter(t, &funcGreeter{
		hello: func(ctx context.Context, in *greeterpb.HelloRequest, out *greeterpb.HelloReply) error {
			out.Message = reply(in.Name)
			return nil
		},
	})
	g := greeterAt(newTestClient(t, client.WithProtocol(client.ProtocolConnect), client.WithMaxRecvMsgSize(1024)), plain.Address())
	if _, err := g.SayHello(context.Background(), &greeterpb.HelloRequest{Name: "big"}); status.CodeOf(err) != status.ResourceExhausted {
		t.Fatalf("uncompressed unary over the limit: %v", err)
	}
}

// TestConnectCancelMidStream: canceling a stream's context, or closing
// the stream, mid-call ends the handler's call and leaves no goroutine
// behind.
func TestConnectCancelMidStream(t *testing.T) {
	leakcheck.Check(t)
	ended := make(chan error, 1)
	srv := serveGreeter(t, &funcGreeter{
		replies: func(ctx context.Context, in *greeterpb.HelloRequest, s greeterpb.Greeter_LotsOfRepliesHandlerStream) error {
			s.Send(&greeterpb.HelloReply{Message: "first"})
			<-ctx.Done()
			ended <- ctx.Err()
			return ctx.Err()
		},
	})
	for _, p := range []client.Protocol{client.ProtocolConnect, client.ProtocolConnectH2C} {
		for _, how := range []string{"cancel", "close"} {
			g := greeterAt(newTestClient(t, client.WithProtocol(p)), srv.Address())
			ctx, cancel := context.WithCancel(context.Background())
			rs, err := g.LotsOfReplies(ctx, &greeterpb.HelloRequest{})
			if err != nil {
				t.Fatal(err)
			}
			if m, err := rs.Recv(); err != nil || m.Message != "first" {
				t.Fatalf("first message: %v %v", m, err)
			}
			if how == "cancel" {
				cancel()
				if _, err := rs.Recv(); status.CodeOf(err) != status.Canceled {
					t.Fatalf("Recv after cancel: %v, want Canceled", err)
				}
			} else {
				rs.Close()
			}
			select {
			case <-ended:
			case <-time.After(10 * time.Second):
				t.Fatalf("%v: the handler's call did not end after the client's %s", p, how)
			}
			cancel()
		}
	}
}

// TestConnectRetryRefusedNode: a node that refuses connections costs no
// call: unary calls and streams go on to the live node.
func TestConnectRetryRefusedNode(t *testing.T) {
	leakcheck.Check(t)
	srv := serveGreeter(t, nil)
	reg := registryOf(deadAddr(t), srv.Address())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := 0; i < 12; i++ {
		g := greeterpb.NewGreeterService("greeter", newTestClient(t, client.WithRegistry(reg), client.WithProtocol(client.ProtocolConnectH2C)))
		if rsp, err := g.SayHello(ctx, &greeterpb.HelloRequest{Name: "r"}); err != nil || rsp.Message != "Hello r" {
			t.Fatalf("call %d with retries: %v %v", i, rsp, err)
		}
		bs, err := g.Chat(ctx)
		if err != nil {
			t.Fatalf("stream %d with retries: %v", i, err)
		}
		bs.Close()
		_, err = g.SayHello(ctx, &greeterpb.HelloRequest{Name: "r"}, client.WithRetries(0), client.WithAddress(deadAddr(t)))
		if status.CodeOf(err) != status.Unavailable || !errors.Is(err, transport.ErrUnprocessed) {
			t.Fatalf("call to a dead address without retries: %v, want Unavailable marked ErrUnprocessed", err)
		}
	}
}
