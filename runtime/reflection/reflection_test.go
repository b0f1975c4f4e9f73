package reflection_test

import (
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/protoc-gen-micro/micro/examples/greeter/greeterpb"
	"github.com/protoc-gen-micro/micro/internal/grpcapi"
	"github.com/protoc-gen-micro/micro/internal/leakcheck"
	"github.com/protoc-gen-micro/micro/runtime/client"
	"github.com/protoc-gen-micro/micro/runtime/health"
	"github.com/protoc-gen-micro/micro/runtime/reflection"
	"github.com/protoc-gen-micro/micro/runtime/server"
	"github.com/protoc-gen-micro/micro/runtime/spec"
	"github.com/protoc-gen-micro/micro/runtime/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"

	_ "google.golang.org/protobuf/types/gofeaturespb" // an extension: pb.go of google.protobuf.FeatureSet, 1002
	_ "google.golang.org/protobuf/types/known/apipb"  // files with a diamond of imports
)

type greeter struct {
	greeterpb.UnimplementedGreeterHandler
}

// newServer starts a server with the greeter, health and reflection.
func newServer(t *testing.T) server.Server {
	t.Helper()
	srv := server.NewServer(server.WithAddress("127.0.0.1:0"))
	if err := greeterpb.RegisterGreeterHandler(srv, greeter{}); err != nil {
		t.Fatal(err)
	}
	if err := health.Register(srv, health.NewServer()); err != nil {
		t.Fatal(err)
	}
	if err := reflection.Register(srv); err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Stop(); err != nil {
			t.Error(err)
		}
	})
	return srv
}

// stream is one ServerReflectionInfo call.
type stream struct {
	t  *testing.T
	m  *spec.Method
	cs client.Stream
}

func open(t *testing.T, srv server.Server, m *spec.Method) *stream {
	t.Helper()
	cli := client.NewClient()
	ctx, cancel := context.WithCancel(context.Background())
	cs, err := cli.Stream(ctx, "reflection", m, client.WithAddress(srv.Address()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cs.Close(); cancel(); cli.Close() })
	return &stream{t: t, m: m, cs: cs}
}

func field(m protoreflect.Message, name protoreflect.Name) protoreflect.FieldDescriptor {
	return m.Descriptor().Fields().ByName(name)
}

// ask sends a request with one field set (a string, or an
// ExtensionRequest for file_containing_extension) and returns the
// response.
func (s *stream) ask(name protoreflect.Name, value string, number int32) *dynamicpb.Message {
	s.t.Helper()
	req := grpcapi.NewRequest(s.m)
	req.Set(field(req, "host"), protoreflect.ValueOfString("localhost:1"))
	switch name {
	case "":
	case "file_containing_extension":
		x := req.Mutable(field(req, name)).Message()
		x.Set(field(x, "containing_type"), protoreflect.ValueOfString(value))
		x.Set(field(x, "extension_number"), protoreflect.ValueOfInt32(number))
	default:
		req.Set(field(req, name), protoreflect.ValueOfString(value))
	}
	if err := s.cs.SendMsg(req); err != nil {
		s.t.Fatal(err)
	}
	rsp := grpcapi.NewResponse(s.m)
	if err := s.cs.RecvMsg(rsp); err != nil {
		s.t.Fatalf("%s %q: %v", name, value, err)
	}
	if got := rsp.Get(field(rsp, "valid_host")).String(); got != "localhost:1" {
		s.t.Errorf("valid_host %q", got)
	}
	if got := rsp.Get(field(rsp, "original_request")).Message().Interface(); !proto.Equal(got, req) {
		s.t.Errorf("original_request %v, want %v", got, req)
	}
	return rsp
}

// files returns the paths of the files in a file_descriptor_response.
func (s *stream) files(rsp *dynamicpb.Message) []string {
	s.t.Helper()
	if e := errorOf(rsp); e != nil {
		s.t.Fatalf("error_response %v", e)
	}
	out := rsp.Get(field(rsp, "file_descriptor_response")).Message()
	list := out.Get(field(out, "file_descriptor_proto")).List()
	var paths []string
	for i := 0; i < list.Len(); i++ {
		var fdp descriptorpb.FileDescriptorProto
		if err := proto.Unmarshal(list.Get(i).Bytes(), &fdp); err != nil {
			s.t.Fatal(err)
		}
		paths = append(paths, fdp.GetName())
	}
	return paths
}

type errorResponse struct {
	code status.Code
	msg  string
}

func errorOf(rsp *dynamicpb.Message) *errorResponse {
	if !rsp.Has(field(rsp, "error_response")) {
		return nil
	}
	e := rsp.Get(field(rsp, "error_response")).Message()
	return &errorResponse{status.Code(e.Get(field(e, "error_code")).Int()), e.Get(field(e, "error_message")).String()}
}

func (s *stream) wantError(rsp *dynamicpb.Message, code status.Code) {
	s.t.Helper()
	if e := errorOf(rsp); e == nil || e.code != code {
		s.t.Fatalf("got %v, want error_response %v", rsp, code)
	}
}

func (s *stream) services() []string {
	rsp := s.ask("list_services", "*", 0)
	out := rsp.Get(field(rsp, "list_services_response")).Message()
	list := out.Get(field(out, "service")).List()
	var names []string
	for i := 0; i < list.Len(); i++ {
		m := list.Get(i).Message()
		names = append(names, m.Get(field(m, "name")).String())
	}
	return names
}

var versions = []*spec.Method{grpcapi.ReflectionInfoV1, grpcapi.ReflectionInfoV1Alpha}

func TestListServices(t *testing.T) {
	leakcheck.Check(t)
	srv := newServer(t)
	for _, m := range versions {
		s := open(t, srv, m)
		want := []string{"greeter.v1.Greeter", "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"}
		if got := s.services(); !slices.Equal(got, want) {
			t.Fatalf("%s: list_services %v, want %v", m.Service, got, want)
		}
	}
	// The list is the server's at request time.
	s := open(t, srv, grpcapi.ReflectionInfoV1)
	desc := &server.ServiceDesc{Name: "late.v1.Late"}
	if err := srv.Handle(desc, struct{}{}); err != nil {
		t.Fatal(err)
	}
	if got := s.services(); !slices.Contains(got, "late.v1.Late") {
		t.Fatalf("list_services after a later Handle: %v", got)
	}
}

func TestFiles(t *testing.T) {
	leakcheck.Check(t)
	srv := newServer(t)
	for _, m := range versions {
		s := open(t, srv, m)
		if got := s.files(s.ask("file_by_filename", "greeter.proto", 0)); !slices.Equal(got, []string{"greeter.proto"}) {
			t.Errorf("greeter.proto: %v", got)
		}
		// api.proto imports source_context.proto and type.proto, which
		// imports any.proto and source_context.proto again: each once.
		got := s.files(s.ask("file_by_filename", "google/protobuf/api.proto", 0))
		want := []string{"google/protobuf/api.proto", "google/protobuf/source_context.proto", "google/protobuf/type.proto", "google/protobuf/any.proto"}
		if !slices.Equal(got, want) {
			t.Errorf("api.proto: %v, want %v", got, want)
		}
		// Dependencies already sent on this stream are not sent again;
		// the file asked for is.
		if got := s.files(s.ask("file_by_filename", "google/protobuf/type.proto", 0)); !slices.Equal(got, []string{"google/protobuf/type.proto"}) {
			t.Errorf("type.proto again: %v", got)
		}
		// The schemas of health and reflection come from their private
		// registry, with our comments.
		rsp := s.ask("file_by_filename", grpcapi.HealthFile, 0)
		if got := s.files(rsp); !slices.Equal(got, []string{grpcapi.HealthFile}) {
			t.Errorf("%s: %v", grpcapi.HealthFile, got)
		}
		out := rsp.Get(field(rsp, "file_descriptor_response")).Message()
		if b := out.Get(field(out, "file_descriptor_proto")).List().Get(0).Bytes(); !strings.Contains(string(b), "Sent by Watch for a name the server does not know") {
			t.Errorf("%s is served without its comments", grpcapi.HealthFile)
		}
		s.wantError(s.ask("file_by_filename", "no/such.proto", 0), status.NotFound)
	}
}

func TestSymbols(t *testing.T) {
	leakcheck.Check(t)
	srv := newServer(t)
	for _, m := range versions {
		s := open(t, srv, m)
		for symbol, file := range map[string]string{
			"greeter.v1.Greeter":                    "greeter.proto", // service
			"greeter.v1.Greeter.SayHello":           "greeter.proto", // method
			"greeter.v1.HelloRequest":               "greeter.proto", // message
			"greeter.v1.HelloRequest.name":          "greeter.proto", // field
			"google.protobuf.Syntax":                "google/protobuf/type.proto",
			"google.protobuf.SYNTAX_PROTO3":         "google/protobuf/type.proto",        // enum value
			"pb.go":                                 "google/protobuf/go_features.proto", // extension
			"grpc.health.v1.Health":                 grpcapi.HealthFile,
			"grpc.reflection.v1alpha.ErrorResponse": grpcapi.ReflectionV1AlphaFile,
		} {
			got := s.files(s.ask("file_containing_symbol", symbol, 0))
			if len(got) == 0 || got[0] != file {
				t.Errorf("%s: %v, want %s first", symbol, got, file)
			}
		}
		for _, symbol := range []string{"no.such.Symbol", "greeter.v1", "", ".greeter.v1.Greeter", "a..b"} {
			s.wantError(s.ask("file_containing_symbol", symbol, 0), status.NotFound)
		}
	}
}

func TestExtensions(t *testing.T) {
	leakcheck.Check(t)
	srv := newServer(t)
	for _, m := range versions {
		s := open(t, srv, m)
		got := s.files(s.ask("file_containing_extension", "google.protobuf.FeatureSet", 1002))
		if len(got) == 0 || got[0] != "google/protobuf/go_features.proto" {
			t.Errorf("extension 1002 of FeatureSet: %v", got)
		}
		s.wantError(s.ask("file_containing_extension", "google.protobuf.FeatureSet", 999), status.NotFound)

		rsp := s.ask("all_extension_numbers_of_type", "google.protobuf.FeatureSet", 0)
		out := rsp.Get(field(rsp, "all_extension_numbers_response")).Message()
		if name := out.Get(field(out, "base_type_name")).String(); name != "google.protobuf.FeatureSet" {
			t.Errorf("base_type_name %q", name)
		}
		list := out.Get(field(out, "extension_number")).List()
		var numbers []int32
		for i := 0; i < list.Len(); i++ {
			numbers = append(numbers, int32(list.Get(i).Int()))
		}
		if !slices.Contains(numbers, 1002) || !slices.IsSorted(numbers) {
			t.Errorf("extension numbers %v", numbers)
		}
		// A message without extensions has none; a name that is no
		// message is not found.
		rsp = s.ask("all_extension_numbers_of_type", "greeter.v1.HelloRequest", 0)
		if errorOf(rsp) != nil || !rsp.Has(field(rsp, "all_extension_numbers_response")) {
			t.Errorf("HelloRequest: %v", rsp)
		}
		s.wantError(s.ask("all_extension_numbers_of_type", "greeter.v1.Greeter", 0), status.NotFound)
		s.wantError(s.ask("all_extension_numbers_of_type", "no.Such", 0), status.NotFound)
	}
}

// TestBadRequests: each is answered with an error_response and the stream
// goes on.
func TestBadRequests(t *testing.T) {
	leakcheck.Check(t)
	srv := newServer(t)
	s := open(t, srv, grpcapi.ReflectionInfoV1)
	long := strings.Repeat("a", 4097)
	s.wantError(s.ask("", "", 0), status.InvalidArgument)
	s.wantError(s.ask("file_containing_symbol", long, 0), status.InvalidArgument)
	s.wantError(s.ask("file_by_filename", long, 0), status.InvalidArgument)
	s.wantError(s.ask("all_extension_numbers_of_type", long, 0), status.InvalidArgument)
	s.wantError(s.ask("file_containing_extension", long, 1), status.InvalidArgument)
	// Just within the bound: looked up, and not found.
	s.wantError(s.ask("file_containing_symbol", long[1:], 0), status.NotFound)
	if got := s.services(); len(got) != 4 {
		t.Fatalf("after the errors: %v", got)
	}
	if err := s.cs.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if err := s.cs.RecvMsg(grpcapi.NewResponse(grpcapi.ReflectionInfoV1)); !errors.Is(err, io.EOF) {
		t.Fatalf("after CloseSend: %v, want the end of the stream", err)
	}
}
