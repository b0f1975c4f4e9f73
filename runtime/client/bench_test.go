package client_test

import (
	"context"
	"testing"

	"github.com/protoc-gen-micro/micro/examples/greeter/greeterpb"
)

// BenchmarkUnary measures a unary call through the generated client, our
// client and our server in one process: allocs/op counts both sides.
func BenchmarkUnary(b *testing.B) {
	g := benchGreeter(b)
	ctx := context.Background()
	req := &greeterpb.HelloRequest{Name: "bench"}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := g.SayHello(ctx, req); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkChat measures one bidi ping-pong round trip.
func BenchmarkChat(b *testing.B) {
	g := benchGreeter(b)
	st, err := g.Chat(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	req := &greeterpb.HelloRequest{Name: "bench"}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := st.Send(req); err != nil {
			b.Fatal(err)
		}
		if _, err := st.Recv(); err != nil {
			b.Fatal(err)
		}
	}
	st.CloseSend()
	st.Recv()
}
