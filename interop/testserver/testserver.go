// Package testserver implements grpc.testing.TestService on the micro
// runtime, behaving as grpc-go's interop test server does (see
// google.golang.org/grpc/interop.NewTestServer) so that grpc-go's interop
// client logic can be run against it. Unlike grpc-go's server, which ignores
// them, it refuses requests that depend on per-message compression (see
// checkCompression); requests compressed with grpc-encoding are served.
//
// It is a test fixture, not an example of a production service.
package testserver

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"os"
	"time"

	"github.com/protoc-gen-micro/micro/interop/testpb"
	"github.com/protoc-gen-micro/micro/runtime/metadata"
	"github.com/protoc-gen-micro/micro/runtime/server"
	"github.com/protoc-gen-micro/micro/runtime/status"
	"google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/testdata"
)

// The metadata keys the interop client asks the server to echo: the first
// into the response headers, the second into the trailers.
const (
	EchoInitialKey  = "x-grpc-test-echo-initial"
	EchoTrailingKey = "x-grpc-test-echo-trailing-bin"
)

// ServerName is a name the certificate of TLSConfig is valid for: the
// default server_host_override of grpc's interop clients.
const ServerName = "foo.test.google.fr"

// Handler implements testpb.TestServiceHandler. The zero value is ready.
type Handler struct{}

var _ testpb.TestServiceHandler = Handler{}

// Register registers a Handler with s as grpc.testing.TestService. It does
// not register UnimplementedService, whose calls must fail as Unimplemented.
func Register(s server.Server) error {
	return testpb.RegisterTestServiceHandler(s, Handler{})
}

// Start starts a server on addr (TLS when cfg is not nil) serving
// TestService. The caller stops it.
func Start(addr string, cfg *tls.Config) (server.Server, error) {
	opts := []server.Option{server.WithAddress(addr)}
	if cfg != nil {
		opts = append(opts, server.WithTLSConfig(cfg))
	}
	s := server.NewServer(opts...)
	if err := Register(s); err != nil {
		return nil, err
	}
	if err := s.Start(); err != nil {
		return nil, err
	}
	return s, nil
}

// TLSConfig returns a server configuration with the certificate grpc's
// interop servers use (server1.pem in grpc-go's testdata, valid for
// *.test.google.fr and signed by ca.pem), so that interop clients run with
// --use_test_ca --server_host_override=foo.test.google.fr trust it.
func TLSConfig() (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(testdata.Path("server1.pem"), testdata.Path("server1.key"))
	if err != nil {
		return nil, err
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}}, nil
}

// ClientTLSConfig returns a client configuration that trusts the certificate
// of TLSConfig: the interop test CA, and a server name the certificate
// covers.
func ClientTLSConfig() (*tls.Config, error) {
	pem, err := os.ReadFile(testdata.Path("ca.pem"))
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, errors.New("testserver: no certificate in grpc-go's testdata/ca.pem")
	}
	return &tls.Config{RootCAs: pool, ServerName: ServerName}, nil
}

// EmptyCall returns an empty message.
func (Handler) EmptyCall(context.Context, *grpc_testing.Empty, *grpc_testing.Empty) error {
	return nil
}

// UnaryCall echoes the custom metadata, fails with the requested status if
// there is one, and otherwise answers with a payload of the requested size.
func (Handler) UnaryCall(ctx context.Context, in *grpc_testing.SimpleRequest, out *grpc_testing.SimpleResponse) error {
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if v := md.Get(EchoInitialKey); len(v) > 0 {
			if err := server.SetHeader(ctx, metadata.Pairs(EchoInitialKey, v[0])); err != nil {
				return err
			}
		}
		if v := md.Get(EchoTrailingKey); len(v) > 0 {
			if err := server.SetTrailer(ctx, metadata.Pairs(EchoTrailingKey, v[0])); err != nil {
				return err
			}
		}
	}
	if err := echoStatus(in.GetResponseStatus()); err != nil {
		return err
	}
	if err := checkCompression(in.GetExpectCompressed().GetValue(), in.GetResponseCompressed().GetValue()); err != nil {
		return err
	}
	pl, err := newPayload(in.GetResponseType(), in.GetResponseSize())
	if err != nil {
		return err
	}
	out.Payload = pl
	return nil
}

// CacheableUnaryCall is UnaryCall: this server has no cache to be friendly to.
func (h Handler) CacheableUnaryCall(ctx context.Context, in *grpc_testing.SimpleRequest, out *grpc_testing.SimpleResponse) error {
	return h.UnaryCall(ctx, in, out)
}

// StreamingOutputCall sends one payload per response parameter.
func (Handler) StreamingOutputCall(ctx context.Context, in *grpc_testing.StreamingOutputCallRequest, stream testpb.TestService_StreamingOutputCallHandlerStream) error {
	if err := echoStatus(in.GetResponseStatus()); err != nil {
		return err
	}
	return respond(ctx, in, stream.Send)
}

// StreamingInputCall answers with the total size of the payloads received.
func (Handler) StreamingInputCall(ctx context.Context, stream testpb.TestService_StreamingInputCallHandlerStream) error {
	var sum int
	for {
		in, err := stream.Recv()
		if err == io.EOF {
			return stream.SendAndClose(&grpc_testing.StreamingInputCallResponse{AggregatedPayloadSize: int32(sum)})
		}
		if err != nil {
			return err
		}
		if err := checkCompression(in.GetExpectCompressed().GetValue(), false); err != nil {
			return err
		}
		sum += len(in.GetPayload().GetBody())
	}
}

// FullDuplexCall echoes the custom metadata and answers each request as it
// arrives.
func (Handler) FullDuplexCall(ctx context.Context, stream testpb.TestService_FullDuplexCallHandlerStream) error {
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if v := md.Get(EchoInitialKey); len(v) > 0 {
			if err := stream.SendHeader(metadata.Pairs(EchoInitialKey, v[0])); err != nil {
				return err
			}
		}
		if v := md.Get(EchoTrailingKey); len(v) > 0 {
			stream.SetTrailer(metadata.Pairs(EchoTrailingKey, v[0]))
		}
	}
	for {
		in, err := stream.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if err := echoStatus(in.GetResponseStatus()); err != nil {
			return err
		}
		if err := respond(ctx, in, stream.Send); err != nil {
			return err
		}
	}
}

// HalfDuplexCall answers every request once the client has half-closed.
func (Handler) HalfDuplexCall(ctx context.Context, stream testpb.TestService_HalfDuplexCallHandlerStream) error {
	var reqs []*grpc_testing.StreamingOutputCallRequest
	for {
		in, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		reqs = append(reqs, in)
	}
	for _, in := range reqs {
		if err := respond(ctx, in, stream.Send); err != nil {
			return err
		}
	}
	return nil
}

// UnimplementedCall fails as Unimplemented, which is what the interop
// client's unimplemented_method case expects of a method the server lacks.
func (Handler) UnimplementedCall(context.Context, *grpc_testing.Empty, *grpc_testing.Empty) error {
	return status.New(status.Unimplemented, "grpc.testing.TestService/UnimplementedCall is not implemented")
}

// respond sends a payload for each response parameter of in, waiting the
// parameter's interval first.
func respond(ctx context.Context, in *grpc_testing.StreamingOutputCallRequest, send func(*grpc_testing.StreamingOutputCallResponse) error) error {
	for _, p := range in.GetResponseParameters() {
		if us := p.GetIntervalUs(); us > 0 {
			t := time.NewTimer(time.Duration(us) * time.Microsecond)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return status.Convert(ctx.Err())
			}
		}
		if err := checkCompression(false, p.GetCompressed().GetValue()); err != nil {
			return err
		}
		pl, err := newPayload(in.GetResponseType(), p.GetSize())
		if err != nil {
			return err
		}
		if err := send(&grpc_testing.StreamingOutputCallResponse{Payload: pl}); err != nil {
			return err
		}
	}
	return nil
}

// echoStatus returns the error a request asks the server to fail with.
func echoStatus(s *grpc_testing.EchoStatus) error {
	if s.GetCode() == 0 {
		return nil
	}
	return status.New(status.Code(s.GetCode()), s.GetMessage())
}

// checkCompression rejects requests that depend on per-message
// compression. A handler cannot see whether its request arrived compressed
// (the transport decompresses it), so it answers the interop spec's
// client_compressed_unary probe as a server that cannot verify compression
// does, with InvalidArgument; and it cannot ask for one response to be
// compressed and not another (server.SendCompression compresses them all).
func checkCompression(expectCompressed, responseCompressed bool) error {
	if expectCompressed {
		return status.New(status.InvalidArgument, "expected a compressed request, got an uncompressed one")
	}
	if responseCompressed {
		return status.New(status.Unimplemented, "this server does not compress single responses on request")
	}
	return nil
}

// newPayload returns a zero-filled payload of size bytes.
func newPayload(t grpc_testing.PayloadType, size int32) (*grpc_testing.Payload, error) {
	if size < 0 {
		return nil, status.Errorf(status.InvalidArgument, "requested a response with invalid length %d", size)
	}
	if t != grpc_testing.PayloadType_COMPRESSABLE {
		return nil, status.Errorf(status.InvalidArgument, "unsupported payload type: %d", t)
	}
	return &grpc_testing.Payload{Type: t, Body: make([]byte, size)}, nil
}
