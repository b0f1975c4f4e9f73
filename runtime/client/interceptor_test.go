package client_test

import (
	"context"
	"reflect"
	"sync"
	"testing"

	"github.com/protoc-gen-micro/micro/examples/greeter/greeterpb"
	"github.com/protoc-gen-micro/micro/internal/leakcheck"
	"github.com/protoc-gen-micro/micro/runtime/client"
	"github.com/protoc-gen-micro/micro/runtime/interceptor"
	"github.com/protoc-gen-micro/micro/runtime/spec"
	"github.com/protoc-gen-micro/micro/runtime/status"
)

type callLog struct {
	mu    sync.Mutex
	lines []string
}

func (l *callLog) add(s string) {
	l.mu.Lock()
	l.lines = append(l.lines, s)
	l.mu.Unlock()
}

func (l *callLog) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := l.lines
	l.lines = nil
	return out
}

func TestClientInterceptors(t *testing.T) {
	leakcheck.Check(t)
	srv := serveGreeter(t, nil)
	var log callLog
	unary := func(name string) interceptor.Interceptor {
		return interceptor.UnaryInterceptorFunc(func(m *spec.Method, next interceptor.UnaryFunc) interceptor.UnaryFunc {
			return func(ctx context.Context, req, rsp any) error {
				log.add(name + ">" + m.Procedure + " " + m.StreamType.String())
				if req.(*greeterpb.HelloRequest).Name == "reject-"+name {
					return status.New(status.PermissionDenied, "rejected by "+name)
				}
				err := next(ctx, req, rsp)
				log.add("<" + name)
				return err
			}
		})
	}
	stream := func(name string) interceptor.Interceptor { return streamLogger{name, &log} }
	c := newTestClient(t,
		client.WithInterceptors(unary("A"), unary("B")),
		client.WithInterceptors(unary("C")),
		client.WithInterceptors(stream("S1"), stream("S2")),
	)
	g := greeterAt(c, srv.Address())
	ctx := context.Background()

	rsp, err := g.SayHello(ctx, &greeterpb.HelloRequest{Name: "i"})
	if err != nil || rsp.Message != "Hello i" {
		t.Fatalf("call: %v %v", rsp, err)
	}
	const m = "/greeter.v1.Greeter/SayHello unary"
	want := []string{"A>" + m, "B>" + m, "C>" + m, "<C", "<B", "<A"}
	if got := log.take(); !reflect.DeepEqual(got, want) {
		t.Fatalf("unary order:\n got %q\nwant %q", got, want)
	}

	_, err = g.SayHello(ctx, &greeterpb.HelloRequest{Name: "reject-B"})
	if status.CodeOf(err) != status.PermissionDenied {
		t.Fatalf("rejecting interceptor: %v", err)
	}
	if got := log.take(); !reflect.DeepEqual(got, []string{"A>" + m, "B>" + m, "<A"}) {
		t.Fatalf("after a rejection: %q", got)
	}

	bs, err := g.Chat(ctx)
	if err != nil {
		t.Fatal(err)
	}
	bs.Send(&greeterpb.HelloRequest{Name: "s"})
	if r, err := bs.Recv(); err != nil || r.Message != "Hello s" {
		t.Fatalf("stream through interceptors: %v %v", r, err)
	}
	bs.Close()
	want = []string{"S1>Chat bidi_stream", "S2>Chat bidi_stream", "<S2", "<S1"}
	if got := log.take(); !reflect.DeepEqual(got, want) {
		t.Fatalf("stream order:\n got %q\nwant %q", got, want)
	}
	rs, err := g.LotsOfReplies(ctx, &greeterpb.HelloRequest{Name: "r"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rs.Recv(); err != nil {
		t.Fatal(err)
	}
	rs.Close()
	if got := log.take(); len(got) != 4 || got[0] != "S1>LotsOfReplies server_stream" {
		t.Fatalf("server stream: %q", got)
	}
}

// streamLogger logs the opening of client streams and passes unary calls
// through.
type streamLogger struct {
	name string
	log  *callLog
}

func (l streamLogger) WrapUnary(_ *spec.Method, next interceptor.UnaryFunc) interceptor.UnaryFunc {
	return next
}

func (l streamLogger) WrapStreamingClient(m *spec.Method, next interceptor.StreamingClientFunc) interceptor.StreamingClientFunc {
	return func(ctx context.Context) (interceptor.ClientStream, error) {
		l.log.add(l.name + ">" + m.Name + " " + m.StreamType.String())
		s, err := next(ctx)
		l.log.add("<" + l.name)
		return s, err
	}
}

func (l streamLogger) WrapStreamingHandler(_ *spec.Method, next interceptor.StreamingHandlerFunc) interceptor.StreamingHandlerFunc {
	return next
}
