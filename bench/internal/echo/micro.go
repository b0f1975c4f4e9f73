package echo

import (
	"context"
	"io"

	benchv1 "github.com/protoc-gen-micro/micro/bench/proto/bench/v1"
	"github.com/protoc-gen-micro/micro/runtime/client"
	"github.com/protoc-gen-micro/micro/runtime/registry"
	"github.com/protoc-gen-micro/micro/runtime/server"
)

// microHandler implements benchv1.EchoHandler.
type microHandler struct{ n *Counters }

func (h microHandler) Unary(_ context.Context, in, out *benchv1.Msg) error {
	h.n.RPCs.Add(1)
	h.n.Msgs.Add(1)
	out.Payload = in.Payload
	return nil
}

func (h microHandler) Bidi(_ context.Context, stream benchv1.Echo_BidiHandlerStream) error {
	h.n.RPCs.Add(1)
	for {
		m, err := stream.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if err := stream.Send(m); err != nil {
			return err
		}
		h.n.Msgs.Add(1)
	}
}

func (h microHandler) ServerStream(_ context.Context, in *benchv1.Count, stream benchv1.Echo_ServerStreamHandlerStream) error {
	h.n.RPCs.Add(1)
	m := &benchv1.Msg{Payload: make([]byte, in.PayloadSize)}
	for range in.N {
		if err := stream.Send(m); err != nil {
			return err
		}
		h.n.Msgs.Add(1)
	}
	return nil
}

func serveMicro(addr string) (*Server, error) {
	n := new(Counters)
	s := server.NewServer(server.WithAddress(addr))
	if err := benchv1.RegisterEchoHandler(s, microHandler{n}); err != nil {
		return nil, err
	}
	if err := s.Start(); err != nil {
		return nil, err
	}
	return &Server{Addr: s.Address(), Counters: n, stop: s.Stop}, nil
}

// microClient calls through the generated client. It finds the server
// through a selector that always names it, which costs a call nothing, as
// grpc-go's and connect-go's clients pay nothing to find their fixed target.
type microClient struct {
	c   client.Client
	svc benchv1.EchoService
}

func dialMicro(addr string) (Client, error) {
	c := client.NewClient(client.WithSelector(fixedSelector{&registry.Node{ID: addr, Address: addr}}))
	return &microClient{c: c, svc: benchv1.NewEchoService(benchv1.EchoName, c)}, nil
}

func (c *microClient) Unary(ctx context.Context, in *benchv1.Msg) (*benchv1.Msg, error) {
	return c.svc.Unary(ctx, in)
}

func (c *microClient) Bidi(ctx context.Context) (BidiStream, error) {
	return c.svc.Bidi(ctx)
}

func (c *microClient) ServerStream(ctx context.Context, in *benchv1.Count) (RecvStream, error) {
	return c.svc.ServerStream(ctx, in)
}

func (c *microClient) Close() error {
	return c.c.Close()
}

// fixedSelector selects one node for every service.
type fixedSelector struct{ node *registry.Node }

func (s fixedSelector) Select(context.Context, string, []string) (*registry.Node, error) {
	return s.node, nil
}
func (fixedSelector) Mark(string, *registry.Node, error) {}
func (fixedSelector) Close() error                       { return nil }
func (fixedSelector) String() string                     { return "fixed" }
