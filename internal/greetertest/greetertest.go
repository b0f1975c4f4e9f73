// Package greetertest checks a greeter client end to end, whatever the
// protocol and the server: tests of runtime/client and of the interop
// module call it against servers that answer as the echo greeter does.
// It is for tests only.
package greetertest

import (
	"context"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/protoc-gen-micro/micro/examples/greeter/greeterpb"
	"github.com/protoc-gen-micro/micro/runtime/client"
)

// Exercise makes a unary call, a server-streaming, a client-streaming and,
// if bidi, a bidi call with opts, and fails t unless the server answers
// as the echo greeter: "Hello NAME"; three replies "Hello NAME #i"; "Hello
// a, b, c" for the names streamed; "Hello NAME" for each bidi message.
func Exercise(t testing.TB, g greeterpb.GreeterService, bidi bool, opts ...client.CallOption) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rsp, err := g.SayHello(ctx, &greeterpb.HelloRequest{Name: "Ada"}, opts...)
	if err != nil || rsp.Message != "Hello Ada" {
		t.Fatalf("unary: %v %v", rsp, err)
	}
	serverStream(t, ctx, g, opts)
	clientStream(t, ctx, g, opts)
	if bidi {
		bidiStream(t, ctx, g, opts)
	}
}

func serverStream(t testing.TB, ctx context.Context, g greeterpb.GreeterService, opts []client.CallOption) {
	t.Helper()
	rs, err := g.LotsOfReplies(ctx, &greeterpb.HelloRequest{Name: "Bo"}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for {
		m, err := rs.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("server stream: %v", err)
		}
		got = append(got, m.Message)
	}
	if len(got) != 3 || got[2] != "Hello Bo #2" {
		t.Fatalf("server stream: %q", got)
	}
}

func clientStream(t testing.TB, ctx context.Context, g greeterpb.GreeterService, opts []client.CallOption) {
	t.Helper()
	cs, err := g.LotsOfGreetings(ctx, opts...)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"a", "b", "c"} {
		if err := cs.Send(&greeterpb.HelloRequest{Name: n}); err != nil {
			t.Fatalf("client stream send: %v", err)
		}
	}
	if m, err := cs.CloseAndRecv(); err != nil || m.Message != "Hello a, b, c" {
		t.Fatalf("client stream: %v %v", m, err)
	}
}

func bidiStream(t testing.TB, ctx context.Context, g greeterpb.GreeterService, opts []client.CallOption) {
	t.Helper()
	bs, err := g.Chat(ctx, opts...)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		if err := bs.Send(&greeterpb.HelloRequest{Name: fmt.Sprint(i)}); err != nil {
			t.Fatalf("bidi send %d: %v", i, err)
		}
		if m, err := bs.Recv(); err != nil || m.Message != fmt.Sprint("Hello ", i) {
			t.Fatalf("bidi %d: %v %v", i, m, err)
		}
	}
	bs.CloseSend()
	if _, err := bs.Recv(); err != io.EOF {
		t.Fatalf("bidi end: %v", err)
	}
}
