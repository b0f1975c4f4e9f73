package echo

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"time"

	"connectrpc.com/connect"
	benchv1 "github.com/protoc-gen-micro/micro/bench/proto/bench/v1"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/h2c"
)

type connectHandler struct{ n *Counters }

func (h connectHandler) unary(_ context.Context, req *connect.Request[benchv1.Msg]) (*connect.Response[benchv1.Msg], error) {
	h.n.RPCs.Add(1)
	h.n.Msgs.Add(1)
	return connect.NewResponse(&benchv1.Msg{Payload: req.Msg.Payload}), nil
}

func (h connectHandler) bidi(_ context.Context, stream *connect.BidiStream[benchv1.Msg, benchv1.Msg]) error {
	h.n.RPCs.Add(1)
	for {
		m, err := stream.Receive()
		if errors.Is(err, io.EOF) {
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

func (h connectHandler) serverStream(_ context.Context, req *connect.Request[benchv1.Count], stream *connect.ServerStream[benchv1.Msg]) error {
	h.n.RPCs.Add(1)
	m := &benchv1.Msg{Payload: make([]byte, req.Msg.PayloadSize)}
	for range req.Msg.N {
		if err := stream.Send(m); err != nil {
			return err
		}
		h.n.Msgs.Add(1)
	}
	return nil
}

// serveConnect serves connect-go's handlers over cleartext HTTP/2 (h2c with
// prior knowledge), as gRPC clients expect.
func serveConnect(addr string) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	n := new(Counters)
	h := connectHandler{n}
	mux := http.NewServeMux()
	mux.Handle(benchv1.EchoUnaryProcedure, connect.NewUnaryHandler(benchv1.EchoUnaryProcedure, h.unary))
	mux.Handle(benchv1.EchoBidiProcedure, connect.NewBidiStreamHandler(benchv1.EchoBidiProcedure, h.bidi))
	mux.Handle(benchv1.EchoServerStreamProcedure, connect.NewServerStreamHandler(benchv1.EchoServerStreamProcedure, h.serverStream))
	h2s := &http2.Server{}
	hs := &http.Server{Handler: h2c.NewHandler(mux, h2s), ReadHeaderTimeout: 10 * time.Second}
	// ConfigureServer ties h2s to hs, so that hs.Shutdown also ends the
	// HTTP/2 connections h2c took over.
	if err := http2.ConfigureServer(hs, h2s); err != nil {
		return nil, err
	}
	done := make(chan error, 1)
	go func() { done <- hs.Serve(ln) }()
	stop := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err := hs.Shutdown(ctx)
		if serr := <-done; !errors.Is(serr, http.ErrServerClosed) && err == nil {
			err = serr
		}
		return err
	}
	return &Server{Addr: ln.Addr().String(), Counters: n, stop: stop}, nil
}

type connectClient struct {
	hc           *http.Client
	tr           *http2.Transport
	unary        *connect.Client[benchv1.Msg, benchv1.Msg]
	bidi         *connect.Client[benchv1.Msg, benchv1.Msg]
	serverStream *connect.Client[benchv1.Count, benchv1.Msg]
}

// dialConnect returns a connect-go client speaking the gRPC protocol over
// cleartext HTTP/2.
func dialConnect(addr string) (Client, error) {
	tr := &http2.Transport{
		AllowHTTP: true,
		DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
	}
	hc := &http.Client{Transport: tr}
	base := "http://" + addr
	return &connectClient{
		hc:           hc,
		tr:           tr,
		unary:        connect.NewClient[benchv1.Msg, benchv1.Msg](hc, base+benchv1.EchoUnaryProcedure, connect.WithGRPC()),
		bidi:         connect.NewClient[benchv1.Msg, benchv1.Msg](hc, base+benchv1.EchoBidiProcedure, connect.WithGRPC()),
		serverStream: connect.NewClient[benchv1.Count, benchv1.Msg](hc, base+benchv1.EchoServerStreamProcedure, connect.WithGRPC()),
	}, nil
}

func (c *connectClient) Unary(ctx context.Context, in *benchv1.Msg) (*benchv1.Msg, error) {
	rsp, err := c.unary.CallUnary(ctx, connect.NewRequest(in))
	if err != nil {
		return nil, err
	}
	return rsp.Msg, nil
}

func (c *connectClient) Bidi(ctx context.Context) (BidiStream, error) {
	return connectBidi{c.bidi.CallBidiStream(ctx)}, nil
}

func (c *connectClient) ServerStream(ctx context.Context, in *benchv1.Count) (RecvStream, error) {
	s, err := c.serverStream.CallServerStream(ctx, connect.NewRequest(in))
	if err != nil {
		return nil, err
	}
	return connectServerStream{s}, nil
}

func (c *connectClient) Close() error {
	c.tr.CloseIdleConnections()
	return nil
}

type connectBidi struct {
	s *connect.BidiStreamForClient[benchv1.Msg, benchv1.Msg]
}

func (b connectBidi) Send(m *benchv1.Msg) error { return b.s.Send(m) }
func (b connectBidi) CloseSend() error          { return b.s.CloseRequest() }

func (b connectBidi) Recv() (*benchv1.Msg, error) {
	m, err := b.s.Receive()
	if err != nil {
		if errors.Is(err, io.EOF) {
			b.s.CloseResponse()
			return nil, io.EOF
		}
		return nil, err
	}
	return m, nil
}

type connectServerStream struct {
	s *connect.ServerStreamForClient[benchv1.Msg]
}

func (s connectServerStream) Recv() (*benchv1.Msg, error) {
	if s.s.Receive() {
		return s.s.Msg(), nil
	}
	err := s.s.Err()
	s.s.Close()
	if err == nil {
		return nil, io.EOF
	}
	return nil, err
}
