package gomicro_test

import (
	"context"
	stderrors "errors"
	"io"
	"sync"
	"testing"

	"github.com/protoc-gen-micro/micro/examples/greeter/greeterpb"
	"github.com/protoc-gen-micro/micro/gomicro"
	"github.com/protoc-gen-micro/micro/gomicro/client"
	"github.com/protoc-gen-micro/micro/gomicro/errors"
	"github.com/protoc-gen-micro/micro/gomicro/metadata"
	"github.com/protoc-gen-micro/micro/gomicro/server"
	"github.com/protoc-gen-micro/micro/internal/leakcheck"
	"github.com/protoc-gen-micro/micro/runtime/registry/memory"
	"github.com/protoc-gen-micro/micro/runtime/status"
)

// greeter is a go-micro style handler: go-micro errors, metadata read with
// FromContext, and a call onwards that forwards the caller's metadata.
type greeter struct {
	greeterpb.UnimplementedGreeterHandler
	self greeterpb.GreeterService
}

func (g *greeter) SayHello(ctx context.Context, in *greeterpb.HelloRequest, out *greeterpb.HelloReply) error {
	switch in.Name {
	case "":
		return errors.BadRequest("greeter.SayHello", "name is required")
	case "nobody":
		return errors.NotFound("greeter.SayHello", "no %s here", in.Name)
	case "relay":
		rsp, err := g.self.SayHello(ctx, &greeterpb.HelloRequest{Name: "inner"})
		if err != nil {
			return err
		}
		out.Message = "relayed " + rsp.Message
		return nil
	}
	user, _ := metadata.Get(ctx, "X-User")
	out.Message = "Hello " + in.Name + " as " + user
	return nil
}

func (g *greeter) LotsOfReplies(ctx context.Context, in *greeterpb.HelloRequest, stream greeterpb.Greeter_LotsOfRepliesStream) error {
	user, _ := metadata.Get(ctx, "X-User")
	return stream.Send(&greeterpb.HelloReply{Message: "Hi " + in.Name + " as " + user})
}

// seen records what the wrappers saw.
type seen struct {
	mu       sync.Mutex
	handlers []string // service endpoint user-header
	calls    []string // endpoint
}

func (s *seen) handlerWrapper(next server.HandlerFunc) server.HandlerFunc {
	return func(ctx context.Context, req server.Request, rsp any) error {
		s.mu.Lock()
		s.handlers = append(s.handlers, req.Service()+" "+req.Endpoint()+" "+req.Header()["X-User"])
		s.mu.Unlock()
		return next(ctx, req, rsp)
	}
}

type callRecorder struct {
	client.Client
	s *seen
}

func (c *callRecorder) Call(ctx context.Context, req client.Request, rsp any, opts ...client.CallOption) error {
	c.s.mu.Lock()
	c.s.calls = append(c.s.calls, req.Endpoint())
	c.s.mu.Unlock()
	return c.Client.Call(ctx, req, rsp, opts...)
}

func startService(t *testing.T, s *seen) gomicro.Service {
	t.Helper()
	svc := gomicro.NewService(
		gomicro.Name("greeter"),
		gomicro.Address("127.0.0.1:0"),
		gomicro.Registry(memory.NewRegistry()),
		gomicro.HandleSignal(false),
		gomicro.WrapHandler(s.handlerWrapper),
		gomicro.WrapClient(func(c client.Client) client.Client { return &callRecorder{c, s} }),
	)
	g := &greeter{self: greeterpb.NewGreeterService("greeter", client.Native(svc.Client()))}
	if err := greeterpb.RegisterGreeterHandler(svc.Server(), g); err != nil {
		t.Fatal(err)
	}
	return svc
}

func run(t *testing.T, svc gomicro.Service) {
	t.Helper()
	if err := svc.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := svc.Stop(); err != nil {
			t.Error(err)
		}
	})
}

func TestErrorsRoundTrip(t *testing.T) {
	leakcheck.Check(t)
	svc := startService(t, &seen{})
	run(t, svc)
	gc := greeterpb.NewGreeterService("greeter", client.Native(svc.Client()))
	for _, tc := range []struct {
		name   string
		code   int32
		grpc   status.Code
		detail string
	}{
		{"", 400, status.InvalidArgument, "name is required"},
		{"nobody", 404, status.NotFound, "no nobody here"},
	} {
		_, err := gc.SayHello(context.Background(), &greeterpb.HelloRequest{Name: tc.name})
		if got := status.CodeOf(err); got != tc.grpc {
			t.Errorf("name %q: gRPC code %v, want %v (err %v)", tc.name, got, tc.grpc, err)
		}
		// go-micro code asserts the type directly.
		merr, ok := err.(*errors.Error)
		if !ok {
			t.Fatalf("name %q: error is %T, want *errors.Error", tc.name, err)
		}
		if merr.Code != tc.code || merr.Detail != tc.detail || merr.Id != "greeter.SayHello" {
			t.Errorf("name %q: got %+v, want code %d, detail %q, id greeter.SayHello", tc.name, merr, tc.code, tc.detail)
		}
		if p := errors.Parse(err.Error()); p.Code != tc.code || p.Detail != tc.detail {
			t.Errorf("name %q: Parse(err.Error()) = %+v", tc.name, p)
		}
	}
}

func TestMetadataAndWrappers(t *testing.T) {
	leakcheck.Check(t)
	s := &seen{}
	svc := startService(t, s)
	run(t, svc)
	gc := greeterpb.NewGreeterService("greeter", client.Native(svc.Client()))
	ctx := metadata.NewContext(context.Background(), metadata.Metadata{"X-User": "ann"})

	rsp, err := gc.SayHello(ctx, &greeterpb.HelloRequest{Name: "bob"})
	if err != nil {
		t.Fatal(err)
	}
	if want := "Hello bob as ann"; rsp.Message != want {
		t.Errorf("client to server: got %q, want %q", rsp.Message, want)
	}
	// The handler's onward call sends the metadata it received.
	rsp, err = gc.SayHello(ctx, &greeterpb.HelloRequest{Name: "relay"})
	if err != nil {
		t.Fatal(err)
	}
	if want := "relayed Hello inner as ann"; rsp.Message != want {
		t.Errorf("forwarded: got %q, want %q", rsp.Message, want)
	}
	// Streams of generated stubs go through Native too.
	stream, err := gc.LotsOfReplies(ctx, &greeterpb.HelloRequest{Name: "cy"})
	if err != nil {
		t.Fatal(err)
	}
	if r, err := stream.Recv(); err != nil || r.Message != "Hi cy as ann" {
		t.Errorf("stream: got %v, %v", r, err)
	}
	if _, err := stream.Recv(); err != io.EOF {
		t.Errorf("stream end: %v, want io.EOF", err)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	wantHandlers := []string{"greeter Greeter.SayHello ann", "greeter Greeter.SayHello ann", "greeter Greeter.SayHello ann", "greeter Greeter.LotsOfReplies ann"}
	if len(s.handlers) != len(wantHandlers) {
		t.Fatalf("handler wrapper saw %q, want %q", s.handlers, wantHandlers)
	}
	for i := range wantHandlers {
		if s.handlers[i] != wantHandlers[i] {
			t.Errorf("handler wrapper call %d: %q, want %q", i, s.handlers[i], wantHandlers[i])
		}
	}
	// Unary calls only: the test's two, and the relay's.
	if want := []string{"Greeter.SayHello", "Greeter.SayHello", "Greeter.SayHello"}; len(s.calls) != 3 || s.calls[0] != want[0] || s.calls[2] != want[2] {
		t.Errorf("client wrapper saw %q, want %q", s.calls, want)
	}
}

func TestRawRequest(t *testing.T) {
	leakcheck.Check(t)
	s := &seen{}
	svc := startService(t, s)
	run(t, svc)
	ctx := metadata.Set(context.Background(), "X-User", "dee")

	req := svc.Client().NewRequest("greeter", "Greeter.SayHello", &greeterpb.HelloRequest{Name: "raw"})
	rsp := &greeterpb.HelloReply{}
	if err := svc.Client().Call(ctx, req, rsp); err != nil {
		t.Fatal(err)
	}
	if want := "Hello raw as dee"; rsp.Message != want {
		t.Errorf("Client().Call: got %q, want %q", rsp.Message, want)
	}
	// The package-level functions use the service's client.
	rsp = &greeterpb.HelloReply{}
	req = client.NewRequest("greeter", "greeter.v1.Greeter.SayHello", &greeterpb.HelloRequest{Name: "pkg"}, client.WithContentType("application/json"))
	if err := client.Call(ctx, req, rsp, client.WithRetries(0)); err != nil {
		t.Fatal(err)
	}
	if want := "Hello pkg as dee"; rsp.Message != want {
		t.Errorf("client.Call: got %q, want %q", rsp.Message, want)
	}
	// An endpoint no linked service has fails without a call.
	err := client.Call(ctx, client.NewRequest("greeter", "Greeter.Nope", &greeterpb.HelloRequest{}), rsp)
	if status.CodeOf(err) != status.Unimplemented {
		t.Errorf("unknown endpoint: %v, want Unimplemented", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.calls) != 1 || s.calls[0] != "Greeter.SayHello" {
		t.Errorf("client wrapper saw %q, want the one call through svc.Client()", s.calls)
	}
}

func TestEventAndSubscriber(t *testing.T) {
	leakcheck.Check(t)
	svc := startService(t, &seen{})
	got := make(chan string, 2)
	err := gomicro.RegisterSubscriber("greeter.greeted", svc.Server(), func(ctx context.Context, m *greeterpb.HelloReply) error {
		user, _ := metadata.Get(ctx, "X-User")
		got <- m.Message + " for " + user
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := gomicro.RegisterSubscriber("greeter.greeted", svc.Server(), func(context.Context, string) error { return nil }); err == nil {
		t.Error("a subscriber taking a string was accepted")
	}
	run(t, svc)

	ev := gomicro.NewEvent("greeter.greeted", svc.Client())
	ctx := metadata.NewContext(context.Background(), metadata.Metadata{"X-User": "eve"})
	if err := ev.Publish(ctx, &greeterpb.HelloReply{Message: "hello"}); err != nil {
		t.Fatal(err)
	}
	// Publish returned once the subscriber handled the message.
	select {
	case m := <-got:
		if m != "hello for eve" {
			t.Errorf("subscriber got %q", m)
		}
	default:
		t.Fatal("Publish returned before the subscriber handled the message")
	}
}

func TestErrorsStandalone(t *testing.T) {
	err := errors.Conflict("id", "taken %d", 3)
	var st *status.Error
	if !stderrors.As(err, &st) || st.Code() != status.AlreadyExists {
		t.Errorf("Conflict as status: %v", st)
	}
	if !errors.Equal(err, errors.Conflict("other", "x")) || errors.Equal(err, errors.NotFound("id", "x")) {
		t.Error("Equal compares codes")
	}
	if e := errors.FromError(status.New(status.Unavailable, "down")); e.Code != 503 || e.Detail != "down" {
		t.Errorf("FromError(status Unavailable) = %+v", e)
	}
	if e := errors.Parse("plain"); e.Detail != "plain" || e.Code != 0 {
		t.Errorf("Parse(plain) = %+v", e)
	}
}
