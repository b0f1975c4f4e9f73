package interop_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/protoc-gen-micro/micro/examples/greeter/greeterpb"
	"github.com/protoc-gen-micro/micro/internal/greetertest"
	"github.com/protoc-gen-micro/micro/internal/leakcheck"
	"github.com/protoc-gen-micro/micro/runtime/client"
	"github.com/protoc-gen-micro/micro/runtime/metadata"
	"github.com/protoc-gen-micro/micro/runtime/status"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// connectGreeter serves the greeter service with connect-go's handlers,
// written by hand as there is no generated connect-go code for it.
// SayHello("details") fails with a detail; SayHello echoes the x-in
// header as x-out and sets the trailer x-trailer.
func connectGreeter() http.Handler {
	mux := http.NewServeMux()
	mux.Handle(greeterpb.GreeterSayHelloProcedure, connect.NewUnaryHandler(greeterpb.GreeterSayHelloProcedure,
		func(_ context.Context, req *connect.Request[greeterpb.HelloRequest]) (*connect.Response[greeterpb.HelloReply], error) {
			if req.Msg.Name == "details" {
				e := connect.NewError(connect.CodeNotFound, errors.New("no such person"))
				d, err := connect.NewErrorDetail(wrapperspb.String("why"))
				if err != nil {
					return nil, err
				}
				e.AddDetail(d)
				return nil, e
			}
			rsp := connect.NewResponse(&greeterpb.HelloReply{Message: "Hello " + req.Msg.Name})
			rsp.Header().Set("x-out", req.Header().Get("x-in"))
			rsp.Trailer().Set("x-trailer", "t")
			return rsp, nil
		}))
	mux.Handle(greeterpb.GreeterLotsOfRepliesProcedure, connect.NewServerStreamHandler(greeterpb.GreeterLotsOfRepliesProcedure,
		func(_ context.Context, req *connect.Request[greeterpb.HelloRequest], s *connect.ServerStream[greeterpb.HelloReply]) error {
			for i := 0; i < 3; i++ {
				if err := s.Send(&greeterpb.HelloReply{Message: fmt.Sprintf("Hello %s #%d", req.Msg.Name, i)}); err != nil {
					return err
				}
			}
			return nil
		}))
	mux.Handle(greeterpb.GreeterLotsOfGreetingsProcedure, connect.NewClientStreamHandler(greeterpb.GreeterLotsOfGreetingsProcedure,
		func(_ context.Context, s *connect.ClientStream[greeterpb.HelloRequest]) (*connect.Response[greeterpb.HelloReply], error) {
			var names []string
			for s.Receive() {
				names = append(names, s.Msg().Name)
			}
			if err := s.Err(); err != nil {
				return nil, err
			}
			return connect.NewResponse(&greeterpb.HelloReply{Message: "Hello " + strings.Join(names, ", ")}), nil
		}))
	mux.Handle(greeterpb.GreeterChatProcedure, connect.NewBidiStreamHandler(greeterpb.GreeterChatProcedure,
		func(_ context.Context, s *connect.BidiStream[greeterpb.HelloRequest, greeterpb.HelloReply]) error {
			for {
				in, err := s.Receive()
				if errors.Is(err, io.EOF) {
					return nil
				}
				if err != nil {
					return err
				}
				if err := s.Send(&greeterpb.HelloReply{Message: "Hello " + in.Name}); err != nil {
					return err
				}
			}
		}))
	return mux
}

// TestMicroConnectClientConnectGoServer calls connect-go's handlers on a
// plain net/http server with our client speaking Connect: over HTTP/1.1
// every kind but bidi, over h2c every kind; proto and JSON, with and
// without gzip; an error with a detail; metadata both ways.
func TestMicroConnectClientConnectGoServer(t *testing.T) {
	leakcheck.Check(t)
	h := connectGreeter()
	s1 := httptest.NewServer(h)
	defer s1.Close()
	s2 := httptest.NewUnstartedServer(h)
	s2.Config.Protocols = &http.Protocols{}
	s2.Config.Protocols.SetUnencryptedHTTP2(true)
	s2.Start()
	defer s2.Close()
	servers := []struct {
		name string
		addr string
		p    client.Protocol
		h2   bool
	}{
		{"http1", s1.Listener.Addr().String(), client.ProtocolConnect, false},
		{"h2c", s2.Listener.Addr().String(), client.ProtocolConnectH2C, true},
	}
	for _, srv := range servers {
		for _, codec := range []string{"proto", "json"} {
			for _, comp := range []string{"", "gzip"} {
				t.Run(fmt.Sprintf("%s/%s/%q", srv.name, codec, comp), func(t *testing.T) {
					opts := []client.Option{client.WithProtocol(srv.p), client.WithContentType(codec)}
					if comp != "" {
						opts = append(opts, client.WithSendCompression(comp))
					}
					c := client.NewClient(opts...)
					defer c.Close()
					callConnectGreeter(t, greeterpb.NewGreeterService("greeter", c), srv.h2, client.WithAddress(srv.addr))
				})
			}
		}
	}
}

// callConnectGreeter checks metadata and an error's detail on a unary
// call, then makes every kind of call, bidi only if h2.
func callConnectGreeter(t *testing.T, g greeterpb.GreeterService, h2 bool, at client.CallOption) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var hdr, trl metadata.MD
	mdCtx := metadata.AppendToOutgoingContext(ctx, "x-in", "v1")
	rsp, err := g.SayHello(mdCtx, &greeterpb.HelloRequest{Name: "Ada"}, at, client.WithResponseHeader(&hdr), client.WithResponseTrailer(&trl))
	if err != nil || rsp.Message != "Hello Ada" {
		t.Fatalf("unary: %v %v", rsp, err)
	}
	if hdr.Value("x-out") != "v1" || trl.Value("x-trailer") != "t" {
		t.Fatalf("unary metadata: header %v trailer %v", hdr, trl)
	}

	_, err = g.SayHello(ctx, &greeterpb.HelloRequest{Name: "details"}, at)
	var se *status.Error
	if !errors.As(err, &se) || se.Code() != status.NotFound || se.Message() != "no such person" || len(se.Details()) != 1 {
		t.Fatalf("error: %v", err)
	}
	var why wrapperspb.StringValue
	if err := se.Details()[0].UnmarshalTo(&why); err != nil || why.Value != "why" {
		t.Fatalf("detail: %q %v", why.Value, err)
	}

	greetertest.Exercise(t, g, h2, at)
}
