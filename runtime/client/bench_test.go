package client_test

import (
	"context"
	"io"
	"testing"

	"github.com/protoc-gen-micro/micro/examples/greeter/greeterpb"
	"github.com/protoc-gen-micro/micro/runtime/client"
	"github.com/protoc-gen-micro/micro/runtime/registry"
	"github.com/protoc-gen-micro/micro/runtime/registry/memory"
	"github.com/protoc-gen-micro/micro/runtime/selector"
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

// BenchmarkUnarySelected is BenchmarkUnary with the node chosen by a
// selector from a registry, as when services call each other by name.
func BenchmarkUnarySelected(b *testing.B) {
	for _, st := range []selector.Strategy{selector.Random, selector.LeastRequest} {
		b.Run(st.String(), func(b *testing.B) {
			srv, _ := startGreeter(b)
			reg := memory.NewRegistry(memory.WithServices(&registry.Service{
				Name: "greeter", Nodes: []*registry.Node{{ID: "a", Address: srv.Address()}},
			}))
			c := client.NewClient(client.WithSelector(selector.NewSelector(reg, selector.WithStrategy(st))))
			b.Cleanup(func() { c.(io.Closer).Close() })
			sayHelloParallel(b, greeterpb.NewGreeterService("greeter", c))
		})
	}
}

// BenchmarkUnaryConnect is BenchmarkUnary with the client speaking
// Connect, over HTTP/1.1 and h2c, to compare with the gRPC path.
func BenchmarkUnaryConnect(b *testing.B) {
	for _, p := range []struct {
		name string
		p    client.Protocol
	}{{"http1", client.ProtocolConnect}, {"h2c", client.ProtocolConnectH2C}} {
		b.Run(p.name, func(b *testing.B) {
			srv, _ := startGreeter(b)
			c := client.NewClient(client.WithProtocol(p.p))
			b.Cleanup(func() { c.Close() })
			sayHelloParallel(b, greeterpb.NewGreeterService("greeter", withAddr{c, srv.Address()}))
		})
	}
}

// sayHelloParallel measures g's unary calls made from every P at once.
func sayHelloParallel(b *testing.B, g greeterpb.GreeterService) {
	ctx := context.Background()
	req := &greeterpb.HelloRequest{Name: "bench"}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := g.SayHello(ctx, req); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
