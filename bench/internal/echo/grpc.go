package echo

import (
	"context"
	"io"
	"net"

	benchv1 "github.com/protoc-gen-micro/micro/bench/proto/bench/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// grpcDesc is the method table protoc-gen-go-grpc would generate for Echo.
var grpcDesc = grpc.ServiceDesc{
	ServiceName: benchv1.EchoName,
	HandlerType: (*grpcEcho)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "Unary",
		Handler: func(srv any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
			in := new(benchv1.Msg)
			if err := dec(in); err != nil {
				return nil, err
			}
			return srv.(grpcEcho).Unary(ctx, in)
		},
	}},
	Streams: []grpc.StreamDesc{
		{
			StreamName:    "Bidi",
			Handler:       func(srv any, stream grpc.ServerStream) error { return srv.(grpcEcho).Bidi(stream) },
			ServerStreams: true,
			ClientStreams: true,
		},
		{
			StreamName: "ServerStream",
			Handler: func(srv any, stream grpc.ServerStream) error {
				in := new(benchv1.Count)
				if err := stream.RecvMsg(in); err != nil {
					return err
				}
				return srv.(grpcEcho).ServerStream(in, stream)
			},
			ServerStreams: true,
		},
	},
	Metadata: "bench/v1/echo.proto",
}

var (
	grpcBidiDesc         = &grpcDesc.Streams[0]
	grpcServerStreamDesc = &grpcDesc.Streams[1]
)

type grpcEcho interface {
	Unary(context.Context, *benchv1.Msg) (*benchv1.Msg, error)
	Bidi(grpc.ServerStream) error
	ServerStream(*benchv1.Count, grpc.ServerStream) error
}

type grpcHandler struct{ n *Counters }

func (h grpcHandler) Unary(_ context.Context, in *benchv1.Msg) (*benchv1.Msg, error) {
	h.n.RPCs.Add(1)
	h.n.Msgs.Add(1)
	return &benchv1.Msg{Payload: in.Payload}, nil
}

func (h grpcHandler) Bidi(stream grpc.ServerStream) error {
	h.n.RPCs.Add(1)
	for {
		m := new(benchv1.Msg)
		if err := stream.RecvMsg(m); err == io.EOF {
			return nil
		} else if err != nil {
			return err
		}
		if err := stream.SendMsg(m); err != nil {
			return err
		}
		h.n.Msgs.Add(1)
	}
}

func (h grpcHandler) ServerStream(in *benchv1.Count, stream grpc.ServerStream) error {
	h.n.RPCs.Add(1)
	m := &benchv1.Msg{Payload: make([]byte, in.PayloadSize)}
	for range in.N {
		if err := stream.SendMsg(m); err != nil {
			return err
		}
		h.n.Msgs.Add(1)
	}
	return nil
}

// The flow-control windows of our runtime's defaults, given to grpc-go in
// every row so that both stacks run with the same windows (grpc-go's own
// defaults are 64 KiB, growing with its BDP estimator, which setting a
// window turns off). Our server grants each stream 64 KiB (and a message
// larger than that its size, once admitted) within a 16 MiB connection
// window; our client grants 1 MiB a stream within 16 MiB.
const (
	serverStreamWindow = 64 << 10
	clientStreamWindow = 1 << 20
	connWindow         = 16 << 20
)

func serveGRPC(addr string) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	n := new(Counters)
	s := grpc.NewServer(grpc.InitialWindowSize(serverStreamWindow), grpc.InitialConnWindowSize(connWindow))
	s.RegisterService(&grpcDesc, grpcHandler{n})
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	stop := func() error {
		s.Stop()
		return <-done
	}
	return &Server{Addr: ln.Addr().String(), Counters: n, stop: stop}, nil
}

type grpcClient struct{ cc *grpc.ClientConn }

func dialGRPC(addr string) (Client, error) {
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithInitialWindowSize(clientStreamWindow), grpc.WithInitialConnWindowSize(connWindow))
	if err != nil {
		return nil, err
	}
	return grpcClient{cc}, nil
}

func (c grpcClient) Unary(ctx context.Context, in *benchv1.Msg) (*benchv1.Msg, error) {
	out := new(benchv1.Msg)
	if err := c.cc.Invoke(ctx, benchv1.EchoUnaryProcedure, in, out); err != nil {
		return nil, err
	}
	return out, nil
}

func (c grpcClient) Bidi(ctx context.Context) (BidiStream, error) {
	s, err := c.cc.NewStream(ctx, grpcBidiDesc, benchv1.EchoBidiProcedure)
	if err != nil {
		return nil, err
	}
	return grpcStream{s}, nil
}

func (c grpcClient) ServerStream(ctx context.Context, in *benchv1.Count) (RecvStream, error) {
	s, err := c.cc.NewStream(ctx, grpcServerStreamDesc, benchv1.EchoServerStreamProcedure)
	if err != nil {
		return nil, err
	}
	if err := s.SendMsg(in); err != nil {
		return nil, err
	}
	if err := s.CloseSend(); err != nil {
		return nil, err
	}
	return grpcStream{s}, nil
}

func (c grpcClient) Close() error { return c.cc.Close() }

// grpcStream types a grpc.ClientStream as generated code would.
type grpcStream struct{ grpc.ClientStream }

func (s grpcStream) Send(m *benchv1.Msg) error { return s.SendMsg(m) }

func (s grpcStream) Recv() (*benchv1.Msg, error) {
	m := new(benchv1.Msg)
	if err := s.RecvMsg(m); err != nil {
		return nil, err
	}
	return m, nil
}
