package cli

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/protoc-gen-micro/micro/internal/grpcapi"
	"github.com/protoc-gen-micro/micro/runtime/client"
	"github.com/protoc-gen-micro/micro/runtime/selector"
	"github.com/protoc-gen-micro/micro/runtime/spec"
	"github.com/protoc-gen-micro/micro/runtime/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"

	// The well-known types, linked in so that a server's files can import
	// them without sending them.
	_ "google.golang.org/protobuf/types/known/anypb"
	_ "google.golang.org/protobuf/types/known/apipb"
	_ "google.golang.org/protobuf/types/known/durationpb"
	_ "google.golang.org/protobuf/types/known/emptypb"
	_ "google.golang.org/protobuf/types/known/fieldmaskpb"
	_ "google.golang.org/protobuf/types/known/sourcecontextpb"
	_ "google.golang.org/protobuf/types/known/structpb"
	_ "google.golang.org/protobuf/types/known/timestamppb"
	_ "google.golang.org/protobuf/types/known/typepb"
	_ "google.golang.org/protobuf/types/known/wrapperspb"
)

// What micro accepts from a reflection server, which may be anyone's. One
// answer is bounded by the client's message size limit (maxRecvMsgSize).
const (
	// maxFiles bounds the files of one session, dependencies included.
	maxFiles = 1000
	// maxFileBytes bounds the encoded size of those files together.
	maxFileBytes = 16 << 20
	// maxServices bounds the services a list_services answer may name.
	maxServices = 1000
	// reflectionTimeout bounds a reflection session when -timeout does
	// not bound it sooner: a server that never answers does not hold
	// micro forever.
	reflectionTimeout = 30 * time.Second
)

// reflector asks one node's reflection service for the schemas of the
// services it serves, over one stream, and builds them into Files.
type reflector struct {
	e       *env
	service string
	address string // the node to ask; "" for one the selector picks
	ctx     context.Context
	cancel  context.CancelFunc
	method  *spec.Method // v1, or v1alpha for servers without v1
	stream  client.Stream
	set     fileSet
	started time.Time
}

// newReflector returns a reflector asking a node of service: the one at
// address, -address, or one the selector picks.
func (e *env) newReflector(ctx context.Context, service, address string) (*reflector, error) {
	if _, err := e.client(); err != nil {
		return nil, err
	}
	if address == "" {
		address = e.address
	}
	ctx, cancel := context.WithTimeout(ctx, reflectionTimeout)
	return &reflector{e: e, service: service, address: address, ctx: ctx, cancel: cancel, started: time.Now()}, nil
}

func (r *reflector) callOpts() []client.CallOption {
	if r.address != "" {
		return []client.CallOption{client.WithAddress(r.address), client.WithRetries(0)}
	}
	return nil
}

// close ends the reflection stream.
func (r *reflector) close() {
	if r.stream != nil {
		_ = r.stream.Close()
		r.stream = nil
	}
}

// done ends the session.
func (r *reflector) done() {
	r.close()
	r.cancel()
}

// reflectionOff explains a node that does not answer reflection.
const reflectionOff = "the server may have reflection off (a runtime/service serves it unless given service.WithReflection(false)), or be a gRPC server without it"

// ask sends req (a field of ServerReflectionRequest set to value) and
// returns the answer, opening the stream first; a server without the v1
// service is asked with v1alpha.
func (r *reflector) ask(field, value string) (*dynamicpb.Message, error) {
	methods := []*spec.Method{grpcapi.ReflectionInfoV1, grpcapi.ReflectionInfoV1Alpha}
	if r.method != nil {
		methods = []*spec.Method{r.method}
	}
	var err error
	for _, m := range methods {
		if r.method == nil {
			r.stream, err = r.e.cli.Stream(r.ctx, r.service, m, r.callOpts()...)
			if err != nil {
				break
			}
		}
		var rsp *dynamicpb.Message
		rsp, err = r.roundTrip(m, field, value)
		if err == nil {
			r.method = m
			return rsp, nil
		}
		if r.method != nil || status.CodeOf(err) != status.Unimplemented {
			break
		}
		r.close() // v1 is unimplemented: try v1alpha on a new stream
	}
	return nil, r.failed(err)
}

func (r *reflector) roundTrip(m *spec.Method, field, value string) (*dynamicpb.Message, error) {
	req := grpcapi.NewRequest(m)
	req.Set(req.Descriptor().Fields().ByName(protoreflect.Name(field)), protoreflect.ValueOfString(value))
	if err := r.stream.SendMsg(req); err != nil {
		// The call's status comes with RecvMsg.
		if rerr := r.stream.RecvMsg(grpcapi.NewResponse(m)); rerr != nil {
			return nil, rerr
		}
		return nil, err
	}
	rsp := grpcapi.NewResponse(m)
	if err := r.stream.RecvMsg(rsp); err != nil {
		return nil, err
	}
	return rsp, nil
}

// failed explains err, an error of the reflection stream.
func (r *reflector) failed(err error) error {
	if errors.Is(err, selector.ErrNoneAvailable) {
		return r.e.notFound(r.service, time.Since(r.started), err)
	}
	st := status.Convert(err)
	where := r.service
	if r.address != "" {
		where = r.address
	}
	switch st.Code() {
	case status.Unimplemented:
		return fmt.Errorf("server reflection is not available on %s (Unimplemented: %s): %s", where, printable(st.Message()), reflectionOff)
	case status.Unavailable, status.DeadlineExceeded, status.Canceled:
		return fmt.Errorf("server reflection on %s failed: %s: %s", where, st.Code(), printable(st.Message()))
	}
	return fmt.Errorf("server reflection on %s failed: %s: %s; %s", where, st.Code(), printable(st.Message()), reflectionOff)
}

// answer is what micro takes from a ServerReflectionResponse.
type answer struct {
	files    [][]byte
	services []string
	err      error // the server's error_response
}

func readAnswer(rsp *dynamicpb.Message) answer {
	d := rsp.Descriptor()
	which := rsp.WhichOneof(d.Oneofs().ByName("message_response"))
	if which == nil {
		return answer{err: errors.New("the reflection answer holds nothing")}
	}
	v := rsp.Get(which).Message()
	switch which.Name() {
	case "file_descriptor_response":
		list := v.Get(v.Descriptor().Fields().ByName("file_descriptor_proto")).List()
		var a answer
		for i := range list.Len() {
			a.files = append(a.files, list.Get(i).Bytes())
		}
		return a
	case "list_services_response":
		list := v.Get(v.Descriptor().Fields().ByName("service")).List()
		var a answer
		for i := range list.Len() {
			s := list.Get(i).Message()
			a.services = append(a.services, s.Get(s.Descriptor().Fields().ByName("name")).String())
		}
		return a
	case "error_response":
		code := status.Code(v.Get(v.Descriptor().Fields().ByName("error_code")).Int())
		msg := v.Get(v.Descriptor().Fields().ByName("error_message")).String()
		return answer{err: status.New(code, printable(msg))}
	}
	return answer{err: fmt.Errorf("unexpected reflection answer %s", which.Name())}
}

// listServices returns the names of the proto services the node serves.
func (r *reflector) listServices() ([]string, error) {
	rsp, err := r.ask("list_services", "*")
	if err != nil {
		return nil, err
	}
	a := readAnswer(rsp)
	if a.err != nil {
		return nil, fmt.Errorf("server reflection on %s: listing services: %w", r.service, a.err)
	}
	if len(a.services) > maxServices {
		return nil, fmt.Errorf("server reflection on %s lists %d services, more than micro accepts (%d)", r.service, len(a.services), maxServices)
	}
	slices.Sort(a.services)
	return slices.Compact(a.services), nil
}

// fetchSymbol adds the file defining the fully qualified symbol, and the
// files it imports, to r's set.
func (r *reflector) fetchSymbol(symbol string) error {
	rsp, err := r.ask("file_containing_symbol", symbol)
	if err != nil {
		return err
	}
	if err := r.add(rsp, "symbol "+symbol); err != nil {
		return err
	}
	// Servers send the imports they have not sent on this stream; ask for
	// those still missing by name. Each round must bring a new file, and
	// there are at most maxFiles.
	for {
		missing := r.set.missing()
		if len(missing) == 0 {
			return nil
		}
		rsp, err := r.ask("file_by_filename", missing[0])
		if err != nil {
			return err
		}
		if err := r.add(rsp, "file "+missing[0]); err != nil {
			return err
		}
		if !r.set.has(missing[0]) {
			return fmt.Errorf("server reflection on %s: asked for file %s, got others", r.service, missing[0])
		}
	}
}

func (r *reflector) add(rsp *dynamicpb.Message, what string) error {
	a := readAnswer(rsp)
	if a.err != nil {
		return fmt.Errorf("server reflection on %s: %s: %w", r.service, what, a.err)
	}
	for _, b := range a.files {
		if err := r.set.add(b); err != nil {
			return fmt.Errorf("server reflection on %s: %s: %w", r.service, what, err)
		}
	}
	return nil
}

// fileSet collects the file descriptors a reflection server sends, within
// the limits above, and builds them into Files. Peer bytes are decoded
// only by proto.Unmarshal and checked by protodesc.
type fileSet struct {
	files map[string]*descriptorpb.FileDescriptorProto
	size  int
}

func (s *fileSet) has(name string) bool { _, ok := s.files[name]; return ok }

// add decodes one FileDescriptorProto; a file already held is ignored.
func (s *fileSet) add(b []byte) error {
	if s.size+len(b) > maxFileBytes {
		return fmt.Errorf("the file descriptors come to more than %d bytes, which micro does not accept", maxFileBytes)
	}
	fd := new(descriptorpb.FileDescriptorProto)
	if err := proto.Unmarshal(b, fd); err != nil {
		return fmt.Errorf("decoding a file descriptor: %w", err)
	}
	if fd.GetName() == "" {
		return errors.New("a file descriptor has no name")
	}
	if s.has(fd.GetName()) {
		return nil
	}
	if len(s.files) >= maxFiles {
		return fmt.Errorf("more than %d file descriptors, which micro does not accept", maxFiles)
	}
	if s.files == nil {
		s.files = map[string]*descriptorpb.FileDescriptorProto{}
	}
	s.files[fd.GetName()] = fd
	s.size += len(b)
	return nil
}

// missing returns, sorted, the files imported by the set's files that it
// does not hold and micro does not know (the well-known types are built
// into micro).
func (s *fileSet) missing() []string {
	var out []string
	for _, fd := range s.files {
		for _, dep := range fd.GetDependency() {
			if s.has(dep) {
				continue
			}
			if _, err := protoregistry.GlobalFiles.FindFileByPath(dep); err == nil {
				continue
			}
			out = append(out, dep)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// build checks the set's files and links them, taking imports the server
// did not send from micro's own well-known types.
func (s *fileSet) build() (*protoregistry.Files, error) {
	set := &descriptorpb.FileDescriptorSet{}
	for _, fd := range s.files {
		set.File = append(set.File, fd)
	}
	seen := map[string]bool{}
	for i := 0; i < len(set.File); i++ {
		for _, dep := range set.File[i].GetDependency() {
			if s.has(dep) || seen[dep] {
				continue
			}
			seen[dep] = true
			g, err := protoregistry.GlobalFiles.FindFileByPath(dep)
			if err != nil {
				return nil, fmt.Errorf("file %s imports %s, which the server did not send", set.File[i].GetName(), dep)
			}
			set.File = append(set.File, protodesc.ToFileDescriptorProto(g))
		}
	}
	slices.SortFunc(set.File, func(a, b *descriptorpb.FileDescriptorProto) int { return strings.Compare(a.GetName(), b.GetName()) })
	files, err := protodesc.NewFiles(set)
	if err != nil {
		return nil, fmt.Errorf("the server's file descriptors do not build: %w", err)
	}
	return files, nil
}

// schema is what reflection told about a node: its proto services and the
// files defining them.
type schema struct {
	services []string
	files    *protoregistry.Files
}

// fetchSchema lists the services a node of service serves and fetches the
// files defining them (and, with extra, the fully qualified symbols in
// extra, such as a message type), over one reflection stream.
func (e *env) fetchSchema(ctx context.Context, service string, extra ...string) (*schema, error) {
	r, err := e.newReflector(ctx, service, "")
	if err != nil {
		return nil, err
	}
	defer r.done()
	names, err := r.listServices()
	if err != nil {
		return nil, err
	}
	for _, sym := range append(names, extra...) {
		if err := r.fetchSymbol(sym); err != nil {
			return nil, err
		}
	}
	files, err := r.set.build()
	if err != nil {
		return nil, fmt.Errorf("server reflection on %s: %w", service, err)
	}
	return &schema{services: names, files: files}, nil
}
