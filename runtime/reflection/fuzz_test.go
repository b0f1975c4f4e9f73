package reflection

import (
	"context"
	"io"
	"testing"

	"github.com/protoc-gen-micro/micro/examples/greeter/greeterpb"
	"github.com/protoc-gen-micro/micro/internal/grpcapi"
	"github.com/protoc-gen-micro/micro/runtime/codec"
	"github.com/protoc-gen-micro/micro/runtime/metadata"
	"github.com/protoc-gen-micro/micro/runtime/server"
	"github.com/protoc-gen-micro/micro/runtime/spec"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/dynamicpb"
)

type fuzzGreeter struct {
	greeterpb.UnimplementedGreeterHandler
}

// bytesStream is the server side of a call whose requests are the given
// encoded messages, decoded by the proto codec as the transport would.
type bytesStream struct {
	requests [][]byte
	sent     []*dynamicpb.Message
}

func (s *bytesStream) Context() context.Context { return context.Background() }

func (s *bytesStream) RecvMsg(m any) error {
	if len(s.requests) == 0 {
		return io.EOF
	}
	b := s.requests[0]
	s.requests = s.requests[1:]
	c, _ := codec.Get("proto")
	return c.Unmarshal(b, m)
}

func (s *bytesStream) SendMsg(m any) error {
	c, _ := codec.Get("proto")
	if _, err := c.MarshalAppend(nil, m); err != nil {
		return err
	}
	s.sent = append(s.sent, m.(*dynamicpb.Message))
	return nil
}

func (s *bytesStream) SetHeader(metadata.MD) error  { return nil }
func (s *bytesStream) SendHeader(metadata.MD) error { return nil }
func (s *bytesStream) SetTrailer(metadata.MD)       {}

// FuzzRequest feeds arbitrary bytes, as one request and then the same again
// (so that the per-stream sent set is exercised), to the v1 and v1alpha
// handlers of a server with the greeter, health and reflection registered.
// A request that decodes must get exactly one response, which repeats it
// and answers it one way; bytes that do not decode end the stream with an
// error, as a codec failure does on the wire.
func FuzzRequest(f *testing.F) {
	srv := server.NewServer()
	if err := greeterpb.RegisterGreeterHandler(srv, fuzzGreeter{}); err != nil {
		f.Fatal(err)
	}
	if err := Register(srv); err != nil {
		f.Fatal(err)
	}
	r := &reflector{srv: srv}
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, m := range []*spec.Method{grpcapi.ReflectionInfoV1, grpcapi.ReflectionInfoV1Alpha} {
			req := grpcapi.NewRequest(m)
			decodes := proto.Unmarshal(b, req) == nil
			st := &bytesStream{requests: [][]byte{b, b}}
			err := r.serve(m, st)
			if !decodes {
				if err == nil || len(st.sent) != 0 {
					t.Fatalf("%s: undecodable request: %v, %d responses", m.Service, err, len(st.sent))
				}
				continue
			}
			if err != nil || len(st.sent) != 2 {
				t.Fatalf("%s: %v, %d responses to 2 requests", m.Service, err, len(st.sent))
			}
			for _, rsp := range st.sent {
				if got := rsp.Get(field(rsp, "original_request")).Message().Interface(); !proto.Equal(got, req) {
					t.Fatalf("%s: original_request %v, want %v", m.Service, got, req)
				}
				if rsp.WhichOneof(rsp.Descriptor().Oneofs().ByName("message_response")) == nil {
					t.Fatalf("%s: response %v answers nothing", m.Service, rsp)
				}
			}
		}
	})
}
