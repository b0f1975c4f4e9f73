package interop_test

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/protoc-gen-micro/micro/internal/leakcheck"
	"github.com/protoc-gen-micro/micro/interop/testpb"
	"github.com/protoc-gen-micro/micro/interop/testserver"
	"github.com/protoc-gen-micro/micro/runtime/client"
	"github.com/protoc-gen-micro/micro/runtime/server"
	"github.com/protoc-gen-micro/micro/runtime/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	_ "google.golang.org/grpc/encoding/gzip" // for the compressed call of TestCompressionFlags
	"google.golang.org/grpc/interop"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	grpcstatus "google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
)

// These tests cover what grpc-go's interop cases leave out: status details,
// the message size limit, the compression flags, and many calls at once.

// detailCode and detail are what the servers below fail UnaryCall with.
const detailCode = 9 // FailedPrecondition

var detail = durationpb.New(1500 * time.Millisecond)

// microDetails fails UnaryCall with a status that carries detail.
type microDetails struct{ testserver.Handler }

func (microDetails) UnaryCall(context.Context, *testgrpc.SimpleRequest, *testgrpc.SimpleResponse) error {
	s, err := status.New(detailCode, "with details").WithDetails(detail)
	if err != nil {
		return err
	}
	return s
}

// grpcDetails fails UnaryCall with a status that carries detail.
type grpcDetails struct{ testgrpc.TestServiceServer }

func (grpcDetails) UnaryCall(context.Context, *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	s, err := grpcstatus.New(detailCode, "with details").WithDetails(detail)
	if err != nil {
		return nil, err
	}
	return nil, s.Err()
}

func TestStatusDetailsGRPCClientMicroServer(t *testing.T) {
	leakcheck.Check(t)
	addr := startMicroServerWith(t, microDetails{})
	cc := dialGRPC(t, addr, false)
	_, err := testgrpc.NewTestServiceClient(cc).UnaryCall(context.Background(), &testgrpc.SimpleRequest{})
	s := grpcstatus.Convert(err)
	if s.Code() != detailCode || s.Message() != "with details" {
		t.Fatalf("UnaryCall = %v, want code %d and message %q", err, detailCode, "with details")
	}
	if d := s.Details(); len(d) != 1 || !proto.Equal(d[0].(proto.Message), detail) {
		t.Fatalf("details = %v, want [%v]", d, detail)
	}
}

func TestStatusDetailsMicroClientGRPCServer(t *testing.T) {
	leakcheck.Check(t)
	addr := startGRPCServer(t, false, grpcDetails{interop.NewTestServer()})
	_, err := microService(t).UnaryCall(context.Background(), &testgrpc.SimpleRequest{}, client.WithAddress(addr))
	s, ok := status.FromError(err)
	if !ok || s.Code() != detailCode || s.Message() != "with details" {
		t.Fatalf("UnaryCall = %v, want code %d and message %q", err, detailCode, "with details")
	}
	if len(s.Details()) != 1 {
		t.Fatalf("details = %v, want one", s.Details())
	}
	got := &durationpb.Duration{}
	if err := s.Details()[0].UnmarshalTo(got); err != nil || !proto.Equal(got, detail) {
		t.Fatalf("detail = %v (%v), want %v", got, err, detail)
	}
}

// largeBody is over the 4 MiB default receive limit of both runtimes.
const largeBody = 4<<20 + 1

func TestMessageTooLargeGRPCClientMicroServer(t *testing.T) {
	leakcheck.Check(t)
	cc := dialGRPC(t, startMicroServer(t, false), false)
	tc := testgrpc.NewTestServiceClient(cc)
	ctx := context.Background()
	_, err := tc.UnaryCall(ctx, &testgrpc.SimpleRequest{Payload: &testgrpc.Payload{Body: make([]byte, largeBody)}})
	if grpcstatus.Code(err) != codes.ResourceExhausted {
		t.Errorf("sending %d bytes: %v, want ResourceExhausted", largeBody, err)
	}
	_, err = tc.UnaryCall(ctx, &testgrpc.SimpleRequest{ResponseSize: largeBody})
	if grpcstatus.Code(err) != codes.ResourceExhausted {
		t.Errorf("receiving %d bytes: %v, want ResourceExhausted", largeBody, err)
	}
	// The connection still serves calls.
	interop.DoEmptyUnaryCall(ctx, tc)
}

func TestMessageTooLargeMicroClientGRPCServer(t *testing.T) {
	leakcheck.Check(t)
	svc, at := microService(t), client.WithAddress(startGRPCServer(t, false, nil))
	ctx := context.Background()
	_, err := svc.UnaryCall(ctx, &testgrpc.SimpleRequest{Payload: &testgrpc.Payload{Body: make([]byte, largeBody)}}, at)
	if status.CodeOf(err) != status.ResourceExhausted {
		t.Errorf("sending %d bytes: %v, want ResourceExhausted", largeBody, err)
	}
	_, err = svc.UnaryCall(ctx, &testgrpc.SimpleRequest{ResponseSize: largeBody}, at)
	if status.CodeOf(err) != status.ResourceExhausted {
		t.Errorf("receiving %d bytes: %v, want ResourceExhausted", largeBody, err)
	}
	if _, err := svc.EmptyCall(ctx, &testgrpc.Empty{}, at); err != nil {
		t.Errorf("EmptyCall after the failures: %v", err)
	}
}

// TestCompressionFlags checks that the micro server refuses what it cannot
// do (the interop spec's compression cases probe a server this way), and
// serves a request grpc-go compresses with gzip.
func TestCompressionFlags(t *testing.T) {
	leakcheck.Check(t)
	tc := testgrpc.NewTestServiceClient(dialGRPC(t, startMicroServer(t, false), false))
	ctx := context.Background()
	_, err := tc.UnaryCall(ctx, &testgrpc.SimpleRequest{ExpectCompressed: &testgrpc.BoolValue{Value: true}})
	if grpcstatus.Code(err) != codes.InvalidArgument {
		t.Errorf("UnaryCall expecting a compressed request: %v, want InvalidArgument", err)
	}
	_, err = tc.UnaryCall(ctx, &testgrpc.SimpleRequest{ResponseCompressed: &testgrpc.BoolValue{Value: true}, ResponseSize: 1})
	if grpcstatus.Code(err) != codes.Unimplemented {
		t.Errorf("UnaryCall asking for a compressed response: %v, want Unimplemented", err)
	}
	s, err := tc.StreamingInputCall(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s.Send(&testgrpc.StreamingInputCallRequest{ExpectCompressed: &testgrpc.BoolValue{Value: true}})
	if _, err := s.CloseAndRecv(); grpcstatus.Code(err) != codes.InvalidArgument {
		t.Errorf("StreamingInputCall expecting a compressed request: %v, want InvalidArgument", err)
	}
	// A request that is really compressed is served, and so is a stream.
	rsp, err := tc.UnaryCall(ctx, &testgrpc.SimpleRequest{ResponseSize: 3, Payload: &testgrpc.Payload{Body: make([]byte, 4096)}}, grpc.UseCompressor("gzip"))
	if err != nil || len(rsp.GetPayload().GetBody()) != 3 {
		t.Errorf("gzip-compressed UnaryCall: %v, %v", rsp, err)
	}
	fs, err := tc.FullDuplexCall(ctx, grpc.UseCompressor("gzip"))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if err := fs.Send(&testgrpc.StreamingOutputCallRequest{ResponseParameters: []*testgrpc.ResponseParameters{{Size: 100}}}); err != nil {
			t.Fatal(err)
		}
		if r, err := fs.Recv(); err != nil || len(r.GetPayload().GetBody()) != 100 {
			t.Fatalf("gzip-compressed FullDuplexCall: %v, %v", r, err)
		}
	}
	fs.CloseSend()
	if _, err := fs.Recv(); err != io.EOF {
		t.Fatalf("FullDuplexCall end: %v", err)
	}
}

// TestConcurrentStreams runs many ping-pong streams at once over one
// connection, each way, to shake out races in the transports.
func TestConcurrentStreams(t *testing.T) {
	const n = 32
	run := func(t *testing.T, tc testgrpc.TestServiceClient) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs <- pingPong(ctx, tc, 8)
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Error(err)
			}
		}
	}
	t.Run("grpc client, micro server", func(t *testing.T) {
		leakcheck.Check(t)
		run(t, testgrpc.NewTestServiceClient(dialGRPC(t, startMicroServer(t, false), false)))
	})
	t.Run("micro client, grpc server", func(t *testing.T) {
		leakcheck.Check(t)
		run(t, microEndpoint(t, startGRPCServer(t, false, nil), false).test)
	})
	t.Run("micro client, micro server", func(t *testing.T) {
		leakcheck.Check(t)
		run(t, microEndpoint(t, startMicroServer(t, false), false).test)
	})
}

// pingPong exchanges rounds of small messages on a FullDuplexCall.
func pingPong(ctx context.Context, tc testgrpc.TestServiceClient, rounds int) error {
	s, err := tc.FullDuplexCall(ctx)
	if err != nil {
		return err
	}
	for i := 0; i < rounds; i++ {
		err := s.Send(&testgrpc.StreamingOutputCallRequest{
			ResponseParameters: []*testgrpc.ResponseParameters{{Size: int32(100 * i)}},
			Payload:            &testgrpc.Payload{Body: make([]byte, 1000*i)},
		})
		if err != nil {
			return err
		}
		r, err := s.Recv()
		if err != nil {
			return err
		}
		if len(r.GetPayload().GetBody()) != 100*i {
			return errors.New("wrong response size")
		}
	}
	if err := s.CloseSend(); err != nil {
		return err
	}
	if _, err := s.Recv(); err != io.EOF {
		return err
	}
	return nil
}

func startMicroServerWith(t *testing.T, h testpb.TestServiceHandler) string {
	t.Helper()
	s := server.NewServer(server.WithAddress("127.0.0.1:0"))
	if err := testpb.RegisterTestServiceHandler(s, h); err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Stop() })
	return s.Address()
}

// microService is a micro client of TestService; calls name the address.
func microService(t *testing.T) testpb.TestServiceService {
	t.Helper()
	return testpb.NewTestServiceService(testpb.TestServiceName, newMicroClient(t, nil))
}

// TestGracefulStop stops each server while a stream is open: the stream
// finishes, the stop waits for it, and later calls fail as Unavailable.
func TestGracefulStop(t *testing.T) {
	t.Run("grpc client, micro server", func(t *testing.T) {
		leakcheck.Check(t)
		s, err := testserver.Start("127.0.0.1:0", nil)
		if err != nil {
			t.Fatal(err)
		}
		tc := testgrpc.NewTestServiceClient(dialGRPC(t, s.Address(), false))
		gracefulStop(t, tc, s.Stop)
	})
	t.Run("micro client, grpc server", func(t *testing.T) {
		leakcheck.Check(t)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		s := grpc.NewServer()
		testgrpc.RegisterTestServiceServer(s, interop.NewTestServer())
		served := make(chan error, 1)
		go func() { served <- s.Serve(ln) }()
		tc := microEndpoint(t, ln.Addr().String(), false).test
		gracefulStop(t, tc, func() error {
			s.GracefulStop()
			return <-served
		})
	})
}

func gracefulStop(t *testing.T, tc testgrpc.TestServiceClient, stop func() error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := tc.FullDuplexCall(ctx)
	if err != nil {
		t.Fatal(err)
	}
	round := func() {
		t.Helper()
		req := &testgrpc.StreamingOutputCallRequest{ResponseParameters: []*testgrpc.ResponseParameters{{Size: 10}}}
		if err := s.Send(req); err != nil {
			t.Fatalf("Send: %v", err)
		}
		if _, err := s.Recv(); err != nil {
			t.Fatalf("Recv: %v", err)
		}
	}
	round()
	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()
	round()
	select {
	case err := <-stopped:
		t.Fatalf("the server stopped (%v) with a stream still open", err)
	case <-time.After(50 * time.Millisecond):
	}
	round()
	if err := s.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Recv(); err != io.EOF {
		t.Fatalf("Recv at the end = %v, want io.EOF", err)
	}
	select {
	case err := <-stopped:
		if err != nil {
			t.Errorf("stop: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the server did not stop once the stream ended")
	}
	if _, err := tc.EmptyCall(ctx, &testgrpc.Empty{}); grpcstatus.Code(err) != codes.Unavailable {
		t.Errorf("EmptyCall after the stop = %v, want Unavailable", err)
	}
}

// TestMicroClientCompressesForGRPCServer: the micro client's gzip requests
// are understood by grpc-go's server, and its gzip answers (grpc-go answers
// in the request's encoding) by the micro client.
func TestMicroClientCompressesForGRPCServer(t *testing.T) {
	leakcheck.Check(t)
	addr := startGRPCServer(t, false, nil)
	svc := testpb.NewTestServiceService(testpb.TestServiceName, newMicroClient(t, nil))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rsp, err := svc.UnaryCall(ctx, &testgrpc.SimpleRequest{ResponseSize: 5000, Payload: &testgrpc.Payload{Body: make([]byte, 5000)}},
		client.WithAddress(addr), client.WithSendCompression("gzip"))
	if err != nil || len(rsp.GetPayload().GetBody()) != 5000 {
		t.Fatalf("gzip UnaryCall to grpc-go: %v, %v", rsp, err)
	}
}
