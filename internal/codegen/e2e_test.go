package codegen_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/protoc-gen-micro/micro/examples/greeter/greeterpb"
	"github.com/protoc-gen-micro/micro/runtime/client"
	"github.com/protoc-gen-micro/micro/runtime/metadata"
	"github.com/protoc-gen-micro/micro/runtime/server"
	"github.com/protoc-gen-micro/micro/runtime/spec"
	"google.golang.org/protobuf/proto"
)

// The generated greeter code, checked up to date by TestExampleUpToDate, is
// called end to end: generated client → fakeClient → the method table of a
// fakeServer → generated handler wrappers → greeter. The fakes move
// messages as marshaled bytes, as a transport would.

func TestGeneratedEndToEnd(t *testing.T) {
	srv := newFakeServer()
	if err := greeterpb.RegisterGreeterHandler(srv, greeter{}); err != nil {
		t.Fatal(err)
	}
	fc := &fakeClient{servers: map[string]*fakeServer{"greeter": srv}}
	defer fc.wait(t)
	c := greeterpb.NewGreeterService("greeter", fc)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	t.Run("unary", func(t *testing.T) {
		rsp, err := c.SayHello(ctx, &greeterpb.HelloRequest{Name: "Ada"})
		if err != nil {
			t.Fatal(err)
		}
		if rsp.GetMessage() != "Hello Ada" {
			t.Errorf("got %q", rsp.GetMessage())
		}
		if _, err := c.SayHello(ctx, &greeterpb.HelloRequest{}); err == nil || !strings.Contains(err.Error(), "no name") {
			t.Errorf("got error %v, want the handler's", err)
		}
	})

	t.Run("server stream", func(t *testing.T) {
		stream, err := c.LotsOfReplies(ctx, &greeterpb.HelloRequest{Name: "Bo"})
		if err != nil {
			t.Fatal(err)
		}
		defer stream.Close()
		var got []string
		for {
			rsp, err := stream.Recv()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, rsp.GetMessage())
		}
		if want := "Hello Bo 0|Hello Bo 1|Hello Bo 2"; strings.Join(got, "|") != want {
			t.Errorf("got %q, want %q", got, want)
		}
	})

	t.Run("client stream", func(t *testing.T) {
		stream, err := c.LotsOfGreetings(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer stream.Close()
		for _, name := range []string{"Cy", "Di", "Ed"} {
			if err := stream.Send(&greeterpb.HelloRequest{Name: name}); err != nil {
				t.Fatal(err)
			}
		}
		rsp, err := stream.CloseAndRecv()
		if err != nil {
			t.Fatal(err)
		}
		if want := "Hello Cy, Di, Ed"; rsp.GetMessage() != want {
			t.Errorf("got %q, want %q", rsp.GetMessage(), want)
		}
	})

	t.Run("bidi stream", func(t *testing.T) {
		stream, err := c.Chat(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer stream.Close()
		for _, name := range []string{"Fa", "Gu"} {
			if err := stream.Send(&greeterpb.HelloRequest{Name: name}); err != nil {
				t.Fatal(err)
			}
			rsp, err := stream.Recv()
			if err != nil {
				t.Fatal(err)
			}
			if want := "Hello " + name; rsp.GetMessage() != want {
				t.Errorf("got %q, want %q", rsp.GetMessage(), want)
			}
		}
		if err := stream.CloseSend(); err != nil {
			t.Fatal(err)
		}
		if _, err := stream.Recv(); err != io.EOF {
			t.Errorf("Recv after half-close: %v, want io.EOF", err)
		}
	})
}

func TestGeneratedMethodTable(t *testing.T) {
	desc := greeterpb.GreeterServiceDesc
	if desc.Name != greeterpb.GreeterName || greeterpb.GreeterName != "greeter.v1.Greeter" {
		t.Errorf("service name %q", desc.Name)
	}
	want := []spec.Method{
		{Service: "greeter.v1.Greeter", Name: "SayHello", Procedure: greeterpb.GreeterSayHelloProcedure, StreamType: spec.Unary, Idempotency: spec.NoSideEffects},
		{Service: "greeter.v1.Greeter", Name: "LotsOfReplies", Procedure: "/greeter.v1.Greeter/LotsOfReplies", StreamType: spec.ServerStream},
		{Service: "greeter.v1.Greeter", Name: "LotsOfGreetings", Procedure: "/greeter.v1.Greeter/LotsOfGreetings", StreamType: spec.ClientStream},
		{Service: "greeter.v1.Greeter", Name: "Chat", Procedure: "/greeter.v1.Greeter/Chat", StreamType: spec.BidiStream},
	}
	if len(desc.Methods) != len(want) {
		t.Fatalf("%d methods, want %d", len(desc.Methods), len(want))
	}
	for i, md := range desc.Methods {
		if *md.Method != want[i] {
			t.Errorf("method %d: %+v, want %+v", i, *md.Method, want[i])
		}
		if _, ok := md.NewRequest().(*greeterpb.HelloRequest); !ok {
			t.Errorf("%s: NewRequest returns %T", md.Method.Name, md.NewRequest())
		}
		unary := md.Method.StreamType == spec.Unary
		if unary != (md.Unary != nil) || unary != (md.NewResponse != nil) || unary == (md.Stream != nil) {
			t.Errorf("%s: Unary, NewResponse and Stream do not match the stream type", md.Method.Name)
		}
	}
	if greeterpb.GreeterSayHelloProcedure != "/greeter.v1.Greeter/SayHello" {
		t.Errorf("procedure %q", greeterpb.GreeterSayHelloProcedure)
	}
}

// greeter implements greeterpb.GreeterHandler.
type greeter struct{}

func (greeter) SayHello(_ context.Context, in *greeterpb.HelloRequest, out *greeterpb.HelloReply) error {
	if in.GetName() == "" {
		return errors.New("no name")
	}
	out.Message = "Hello " + in.GetName()
	return nil
}

func (greeter) LotsOfReplies(_ context.Context, in *greeterpb.HelloRequest, stream greeterpb.Greeter_LotsOfRepliesHandlerStream) error {
	defer stream.Close() // go-micro handlers do this; it must be harmless
	for i := range 3 {
		if err := stream.Send(&greeterpb.HelloReply{Message: fmt.Sprintf("Hello %s %d", in.GetName(), i)}); err != nil {
			return err
		}
	}
	return nil
}

func (greeter) LotsOfGreetings(_ context.Context, stream greeterpb.Greeter_LotsOfGreetingsHandlerStream) error {
	var names []string
	for {
		req, err := stream.Recv()
		if err == io.EOF {
			return stream.SendAndClose(&greeterpb.HelloReply{Message: "Hello " + strings.Join(names, ", ")})
		}
		if err != nil {
			return err
		}
		names = append(names, req.GetName())
	}
}

func (greeter) Chat(_ context.Context, stream greeterpb.Greeter_ChatHandlerStream) error {
	for {
		req, err := stream.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if err := stream.Send(&greeterpb.HelloReply{Message: "Hello " + req.GetName()}); err != nil {
			return err
		}
	}
}

// fakeServer is a server.Server that only keeps what is registered.
type fakeServer struct {
	mu       sync.Mutex
	services map[string]registered
}

type registered struct {
	desc *server.ServiceDesc
	impl any
}

func newFakeServer() *fakeServer { return &fakeServer{services: map[string]registered{}} }

func (s *fakeServer) Handle(desc *server.ServiceDesc, impl any, _ ...server.HandlerOption) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if impl == nil {
		return errors.New("nil implementation")
	}
	if want := reflect.TypeOf(desc.HandlerType).Elem(); !reflect.TypeOf(impl).Implements(want) {
		return fmt.Errorf("%T does not implement %v", impl, want)
	}
	if _, ok := s.services[desc.Name]; ok {
		return fmt.Errorf("%s registered twice", desc.Name)
	}
	s.services[desc.Name] = registered{desc, impl}
	return nil
}

func (s *fakeServer) Start() error    { return nil }
func (s *fakeServer) Stop() error     { return nil }
func (s *fakeServer) Address() string { return "in-process" }

func (s *fakeServer) Services() []*server.ServiceDesc {
	s.mu.Lock()
	defer s.mu.Unlock()
	var descs []*server.ServiceDesc
	for _, r := range s.services {
		descs = append(descs, r.desc)
	}
	return descs
}

// lookup finds the method table entry of m and checks that it describes m
// as the client does.
func (s *fakeServer) lookup(m *spec.Method) (server.MethodDesc, any, error) {
	s.mu.Lock()
	r, ok := s.services[m.Service]
	s.mu.Unlock()
	if !ok {
		return server.MethodDesc{}, nil, fmt.Errorf("unknown service %s", m.Service)
	}
	for _, md := range r.desc.Methods {
		if md.Method.Procedure == m.Procedure {
			if *md.Method != *m {
				return server.MethodDesc{}, nil, fmt.Errorf("client says %+v, server %+v", *m, *md.Method)
			}
			return md, r.impl, nil
		}
	}
	return server.MethodDesc{}, nil, fmt.Errorf("unknown method %s", m.Procedure)
}

// fakeClient is a client.Client that calls fakeServers by registered name.
type fakeClient struct {
	servers  map[string]*fakeServer
	handlers sync.WaitGroup // stream handlers running
}

// Close does nothing: the fake holds no connections.
func (c *fakeClient) Close() error { return nil }

// wait fails t if a stream handler is still running after a while.
func (c *fakeClient) wait(t *testing.T) {
	t.Helper()
	done := make(chan struct{})
	go func() { c.handlers.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Error("stream handlers still running after the calls ended")
	}
}

func (c *fakeClient) server(name string) (*fakeServer, error) {
	s, ok := c.servers[name]
	if !ok {
		return nil, fmt.Errorf("no server registered as %q", name)
	}
	return s, nil
}

func (c *fakeClient) Call(ctx context.Context, service string, m *spec.Method, req, rsp any, _ ...client.CallOption) error {
	s, err := c.server(service)
	if err != nil {
		return err
	}
	md, impl, err := s.lookup(m)
	if err != nil {
		return err
	}
	if md.Unary == nil {
		return fmt.Errorf("%s is not unary", m.Procedure)
	}
	sreq, srsp := md.NewRequest(), md.NewResponse()
	if err := copyMessage(sreq, req); err != nil {
		return err
	}
	if err := md.Unary(impl, ctx, sreq, srsp); err != nil {
		return err
	}
	return copyMessage(rsp, srsp)
}

func (c *fakeClient) Stream(ctx context.Context, service string, m *spec.Method, _ ...client.CallOption) (client.Stream, error) {
	s, err := c.server(service)
	if err != nil {
		return nil, err
	}
	md, impl, err := s.lookup(m)
	if err != nil {
		return nil, err
	}
	if md.Stream == nil {
		return nil, fmt.Errorf("%s is not streaming", m.Procedure)
	}
	ctx, cancel := context.WithCancel(ctx)
	p := &pipe{ctx: ctx, cancel: cancel, requests: make(chan []byte), responses: make(chan []byte), done: make(chan struct{})}
	c.handlers.Add(1)
	go func() {
		defer c.handlers.Done()
		p.serve(md, impl)
	}()
	return &fakeClientStream{p}, nil
}

// pipe joins the two ends of a streaming call.
type pipe struct {
	ctx       context.Context
	cancel    context.CancelFunc
	requests  chan []byte // closed when the client half-closes
	responses chan []byte
	closeSend sync.Once
	done      chan struct{} // closed when the handler has returned
	err       error         // the handler's error, set before done closes
}

// serve runs the handler, as the server would for a new stream.
func (p *pipe) serve(md server.MethodDesc, impl any) {
	defer close(p.done)
	ss := &fakeServerStream{p}
	var req any
	if st := md.Method.StreamType; st == spec.Unary || st == spec.ServerStream {
		req = md.NewRequest()
		if err := ss.RecvMsg(req); err != nil {
			p.err = fmt.Errorf("receiving the request: %w", err)
			return
		}
	}
	p.err = md.Stream(impl, p.ctx, req, ss)
}

type fakeClientStream struct{ p *pipe }

func (s *fakeClientStream) Context() context.Context { return s.p.ctx }

func (s *fakeClientStream) SendMsg(m any) error {
	b, err := proto.Marshal(m.(proto.Message))
	if err != nil {
		return err
	}
	select {
	case s.p.requests <- b:
		return nil
	case <-s.p.done:
		return io.EOF // as gRPC: the status is for RecvMsg to tell
	case <-s.p.ctx.Done():
		return s.p.ctx.Err()
	}
}

func (s *fakeClientStream) RecvMsg(m any) error {
	select {
	case b := <-s.p.responses:
		return proto.Unmarshal(b, m.(proto.Message))
	case <-s.p.done:
		// responses is unbuffered, so the handler had no response
		// pending when it returned.
		if s.p.err != nil {
			return s.p.err
		}
		return io.EOF
	case <-s.p.ctx.Done():
		return s.p.ctx.Err()
	}
}

func (s *fakeClientStream) CloseSend() error {
	s.p.closeSend.Do(func() { close(s.p.requests) })
	return nil
}

func (s *fakeClientStream) Close() error {
	s.p.cancel()
	return nil
}

func (s *fakeClientStream) Header() (metadata.MD, error) { return nil, nil }
func (s *fakeClientStream) Trailer() metadata.MD         { return nil }

type fakeServerStream struct{ p *pipe }

func (s *fakeServerStream) Context() context.Context { return s.p.ctx }

func (s *fakeServerStream) SendMsg(m any) error {
	b, err := proto.Marshal(m.(proto.Message))
	if err != nil {
		return err
	}
	select {
	case s.p.responses <- b:
		return nil
	case <-s.p.ctx.Done():
		return s.p.ctx.Err()
	}
}

func (s *fakeServerStream) RecvMsg(m any) error {
	select {
	case b, ok := <-s.p.requests:
		if !ok {
			return io.EOF
		}
		return proto.Unmarshal(b, m.(proto.Message))
	case <-s.p.ctx.Done():
		return s.p.ctx.Err()
	}
}

func (s *fakeServerStream) SetHeader(metadata.MD) error  { return nil }
func (s *fakeServerStream) SendHeader(metadata.MD) error { return nil }
func (s *fakeServerStream) SetTrailer(metadata.MD)       {}

// copyMessage copies src into dst through the wire format.
func copyMessage(dst, src any) error {
	b, err := proto.Marshal(src.(proto.Message))
	if err != nil {
		return err
	}
	return proto.Unmarshal(b, dst.(proto.Message))
}
