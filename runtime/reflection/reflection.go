// Package reflection serves gRPC server reflection (grpc.reflection.v1 and
// its predecessor v1alpha), with which tools such as grpcurl and Postman
// list a server's services and learn their schemas without .proto files.
// It is what grpc-go users know as reflection.Register:
//
//	if err := reflection.Register(srv); err != nil { ... }
//
// A service made with the service package registers it already.
//
// Schemas come from protoregistry.GlobalFiles, where generated .pb.go files
// register theirs, and, for the health and reflection services themselves,
// from their private registry (see package health). reflection answers
// questions about schemas; it neither checks health nor calls anything.
package reflection

import (
	"context"
	"errors"
	"io"
	"sort"

	"github.com/protoc-gen-micro/micro/internal/grpcapi"
	"github.com/protoc-gen-micro/micro/runtime/server"
	"github.com/protoc-gen-micro/micro/runtime/spec"
	"github.com/protoc-gen-micro/micro/runtime/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/dynamicpb"
)

// maxNameLen bounds a file, symbol or type name in a request; a longer one
// is answered INVALID_ARGUMENT without a lookup. Every other cost of a
// request is bounded by what the program registered, not by the peer.
const maxNameLen = 4096

// Register registers the v1 and v1alpha reflection services with srv.
// They describe the services srv has registered when each request
// arrives, themselves included.
func Register(srv server.Server) error {
	r := &reflector{srv: srv}
	return errors.Join(srv.Handle(serviceDesc(grpcapi.ReflectionInfoV1), r),
		srv.Handle(serviceDesc(grpcapi.ReflectionInfoV1Alpha), r))
}

func serviceDesc(m *spec.Method) *server.ServiceDesc {
	return &server.ServiceDesc{
		Name: m.Service,
		Methods: []server.MethodDesc{{
			Method:     m,
			NewRequest: func() any { return grpcapi.NewRequest(m) },
			Stream: func(impl any, ctx context.Context, _ any, stream server.Stream) error {
				return impl.(*reflector).serve(m, stream)
			},
		}},
	}
}

// reflector answers reflection requests about srv's services.
type reflector struct {
	srv server.Server
}

// serve answers each request on stream with one response, in order, until
// the client half-closes. A request that cannot be answered gets an
// error_response and the stream goes on; only a failure to receive or send
// (a malformed message, a broken connection) ends it.
func (r *reflector) serve(m *spec.Method, stream server.Stream) error {
	sent := map[string]bool{} // files sent on this stream, by path
	for {
		req := grpcapi.NewRequest(m)
		if err := stream.RecvMsg(req); err != nil {
			if err == io.EOF {
				return nil
			}
			return err
		}
		if err := stream.SendMsg(r.answer(m, req, sent)); err != nil {
			return err
		}
	}
}

// field returns m's field of that name; the v1 and v1alpha messages have
// the same fields.
func field(m protoreflect.Message, name protoreflect.Name) protoreflect.FieldDescriptor {
	return m.Descriptor().Fields().ByName(name)
}

func getString(m protoreflect.Message, name protoreflect.Name) string {
	return m.Get(field(m, name)).String()
}

// answer returns the response to req, recording in sent the files it
// carries.
func (r *reflector) answer(m *spec.Method, req *dynamicpb.Message, sent map[string]bool) *dynamicpb.Message {
	rsp := grpcapi.NewResponse(m)
	rsp.Set(field(rsp, "valid_host"), protoreflect.ValueOfString(getString(req, "host")))
	rsp.Set(field(rsp, "original_request"), protoreflect.ValueOfMessage(req))

	var files [][]byte
	var err error
	switch which := req.WhichOneof(req.Descriptor().Oneofs().ByName("message_request")); {
	case which == nil:
		err = status.New(status.InvalidArgument, "reflection: the request asks for nothing")
	case which.Name() == "file_by_filename":
		files, err = r.fileByFilename(getString(req, "file_by_filename"), sent)
	case which.Name() == "file_containing_symbol":
		files, err = r.fileContainingSymbol(getString(req, "file_containing_symbol"), sent)
	case which.Name() == "file_containing_extension":
		x := req.Get(which).Message()
		files, err = r.fileContainingExtension(getString(x, "containing_type"), protoreflect.FieldNumber(x.Get(field(x, "extension_number")).Int()), sent)
	case which.Name() == "all_extension_numbers_of_type":
		name := getString(req, "all_extension_numbers_of_type")
		var numbers []int32
		if numbers, err = extensionNumbers(name); err == nil {
			out := rsp.Mutable(field(rsp, "all_extension_numbers_response")).Message()
			out.Set(field(out, "base_type_name"), protoreflect.ValueOfString(name))
			list := out.Mutable(field(out, "extension_number")).List()
			for _, n := range numbers {
				list.Append(protoreflect.ValueOfInt32(n))
			}
			return rsp
		}
	case which.Name() == "list_services":
		out := rsp.Mutable(field(rsp, "list_services_response")).Message()
		list := out.Mutable(field(out, "service")).List()
		for _, desc := range r.srv.Services() { // sorted by name
			svc := list.NewElement().Message()
			svc.Set(field(svc, "name"), protoreflect.ValueOfString(desc.Name))
			list.Append(protoreflect.ValueOfMessage(svc))
		}
		return rsp
	default:
		err = status.Errorf(status.InvalidArgument, "reflection: unknown request %s", which.Name())
	}
	if err != nil {
		s := status.Convert(err)
		out := rsp.Mutable(field(rsp, "error_response")).Message()
		out.Set(field(out, "error_code"), protoreflect.ValueOfInt32(int32(s.Code())))
		out.Set(field(out, "error_message"), protoreflect.ValueOfString(s.Message()))
		return rsp
	}
	out := rsp.Mutable(field(rsp, "file_descriptor_response")).Message()
	list := out.Mutable(field(out, "file_descriptor_proto")).List()
	for _, b := range files {
		list.Append(protoreflect.ValueOfBytes(b))
	}
	return rsp
}

// checkName refuses an overlong name before any lookup.
func checkName(what, name string) error {
	if len(name) > maxNameLen {
		return status.Errorf(status.InvalidArgument, "reflection: %s longer than %d bytes", what, maxNameLen)
	}
	return nil
}

func notFound(what, name string) error {
	return status.Errorf(status.NotFound, "reflection: %s %q not found", what, name)
}

// findFile and findDescriptor look in the global registry, then in the
// private one of the health and reflection schemas.
func findFile(path string) (protoreflect.FileDescriptor, error) {
	if fd, err := protoregistry.GlobalFiles.FindFileByPath(path); err == nil {
		return fd, nil
	}
	return grpcapi.Files().FindFileByPath(path)
}

func findDescriptor(name protoreflect.FullName) (protoreflect.Descriptor, error) {
	if d, err := protoregistry.GlobalFiles.FindDescriptorByName(name); err == nil {
		return d, nil
	}
	return grpcapi.Files().FindDescriptorByName(name)
}

func (r *reflector) fileByFilename(name string, sent map[string]bool) ([][]byte, error) {
	if err := checkName("file name", name); err != nil {
		return nil, err
	}
	fd, err := findFile(name)
	if err != nil {
		return nil, notFound("file", name)
	}
	return withDependencies(fd, sent)
}

func (r *reflector) fileContainingSymbol(name string, sent map[string]bool) ([][]byte, error) {
	if err := checkName("symbol", name); err != nil {
		return nil, err
	}
	if !protoreflect.FullName(name).IsValid() {
		return nil, notFound("symbol", name)
	}
	d, err := findDescriptor(protoreflect.FullName(name))
	if err != nil {
		return nil, notFound("symbol", name)
	}
	return withDependencies(d.ParentFile(), sent)
}

func (r *reflector) fileContainingExtension(message string, number protoreflect.FieldNumber, sent map[string]bool) ([][]byte, error) {
	if err := checkName("type name", message); err != nil {
		return nil, err
	}
	xt, err := protoregistry.GlobalTypes.FindExtensionByNumber(protoreflect.FullName(message), number)
	if err != nil {
		return nil, status.Errorf(status.NotFound, "reflection: extension %d of %q not found", number, message)
	}
	return withDependencies(xt.TypeDescriptor().ParentFile(), sent)
}

// extensionNumbers returns the numbers of the known extensions of the
// named message, sorted.
func extensionNumbers(name string) ([]int32, error) {
	if err := checkName("type name", name); err != nil {
		return nil, err
	}
	if !protoreflect.FullName(name).IsValid() {
		return nil, notFound("message", name)
	}
	d, err := findDescriptor(protoreflect.FullName(name))
	if _, ok := d.(protoreflect.MessageDescriptor); err != nil || !ok {
		return nil, notFound("message", name)
	}
	numbers := []int32{}
	protoregistry.GlobalTypes.RangeExtensionsByMessage(protoreflect.FullName(name), func(xt protoreflect.ExtensionType) bool {
		numbers = append(numbers, int32(xt.TypeDescriptor().Number()))
		return true
	})
	sort.Slice(numbers, func(i, j int) bool { return numbers[i] < numbers[j] })
	return numbers, nil
}

// withDependencies returns fd, serialized, and then its transitive imports
// not yet sent on this stream, recording them in sent. fd itself is sent
// even if it was before: the client asked for it. Each file is visited once
// per request, however many paths import it.
func withDependencies(fd protoreflect.FileDescriptor, sent map[string]bool) ([][]byte, error) {
	if fd.IsPlaceholder() {
		return nil, notFound("file", fd.Path())
	}
	var out [][]byte
	visited := map[string]bool{fd.Path(): true}
	queue := []protoreflect.FileDescriptor{fd}
	for len(queue) > 0 {
		f := queue[0]
		queue = queue[1:]
		if f.IsPlaceholder() {
			continue
		}
		if len(out) == 0 || !sent[f.Path()] {
			b, err := proto.Marshal(protodesc.ToFileDescriptorProto(f))
			if err != nil {
				return nil, status.Errorf(status.Internal, "reflection: %s: %v", f.Path(), err)
			}
			sent[f.Path()] = true
			out = append(out, b)
		}
		imports := f.Imports()
		for i := 0; i < imports.Len(); i++ {
			if imp := imports.Get(i).FileDescriptor; !visited[imp.Path()] {
				visited[imp.Path()] = true
				queue = append(queue, imp)
			}
		}
	}
	return out, nil
}
