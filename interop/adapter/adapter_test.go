package adapter

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/protoc-gen-micro/micro/runtime/metadata"
	"github.com/protoc-gen-micro/micro/runtime/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	grpcmd "google.golang.org/grpc/metadata"
	grpcstatus "google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
)

func TestToGRPC(t *testing.T) {
	if toGRPC(nil) != nil || toGRPC(io.EOF) != io.EOF {
		t.Fatal("nil and io.EOF must pass unchanged")
	}
	detail := durationpb.New(time.Second)
	withDetail, err := status.New(status.NotFound, "gone").WithDetails(detail)
	if err != nil {
		t.Fatal(err)
	}
	s := grpcstatus.Convert(toGRPC(withDetail))
	if s.Code() != codes.NotFound || s.Message() != "gone" {
		t.Errorf("converted to %v", s)
	}
	if d := s.Details(); len(d) != 1 || !proto.Equal(d[0].(proto.Message), detail) {
		t.Errorf("details = %v, want [%v]", d, detail)
	}
	// A wrapped *status.Error is found; any other error is flagged.
	if c := grpcstatus.Code(toGRPC(errors.Join(errors.New("x"), status.New(status.Aborted, "a")))); c != codes.Aborted {
		t.Errorf("wrapped status converted to %v, want Aborted", c)
	}
	if c := grpcstatus.Code(toGRPC(context.Canceled)); c != codes.Unknown {
		t.Errorf("a bare context error converted to %v, want Unknown", c)
	}
}

func TestTranslate(t *testing.T) {
	ctx := grpcmd.NewOutgoingContext(context.Background(), grpcmd.Pairs("k", "v"))
	var header, trailer grpcmd.MD
	ctx, c, err := translate(ctx, nil, []grpc.CallOption{grpc.Header(&header), grpc.Trailer(&trailer)})
	if err != nil {
		t.Fatal(err)
	}
	if md, _ := metadata.FromOutgoingContext(ctx); md.Value("k") != "v" {
		t.Errorf("outgoing metadata = %v, want k=v", md)
	}
	if len(c.opts) != 2 {
		t.Errorf("%d micro call options, want 2", len(c.opts))
	}
	c.header, c.trailer = metadata.Pairs("h", "1"), metadata.Pairs("t", "2")
	c.finish()
	if h, tr := header.Get("h"), trailer.Get("t"); len(h) != 1 || h[0] != "1" || len(tr) != 1 || tr[0] != "2" {
		t.Errorf("finish gave header %v and trailer %v", header, trailer)
	}
	if _, _, err := translate(context.Background(), nil, []grpc.CallOption{grpc.WaitForReady(true)}); grpcstatus.Code(err) != codes.Internal {
		t.Errorf("an unsupported option gave %v, want Internal", err)
	}
}
