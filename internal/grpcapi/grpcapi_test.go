package grpcapi_test

import (
	"testing"

	"github.com/protoc-gen-micro/micro/internal/grpcapi"
	"github.com/protoc-gen-micro/micro/runtime/codec"
	"github.com/protoc-gen-micro/micro/runtime/spec"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
)

var methods = []*spec.Method{grpcapi.HealthCheck, grpcapi.HealthList, grpcapi.HealthWatch,
	grpcapi.ReflectionInfoV1, grpcapi.ReflectionInfoV1Alpha}

// TestMethods checks each spec.Method against its descriptor: the path,
// the stream type and that its messages can be made.
func TestMethods(t *testing.T) {
	for _, m := range methods {
		d, err := grpcapi.Files().FindDescriptorByName(protoreflect.FullName(m.Service + "." + m.Name))
		if err != nil {
			t.Fatalf("%s: %v", m.Procedure, err)
		}
		md := d.(protoreflect.MethodDescriptor)
		if want := "/" + string(md.Parent().FullName()) + "/" + string(md.Name()); m.Procedure != want {
			t.Errorf("%s: procedure, want %s", m.Procedure, want)
		}
		var st spec.StreamType
		switch {
		case md.IsStreamingClient() && md.IsStreamingServer():
			st = spec.BidiStream
		case md.IsStreamingClient():
			st = spec.ClientStream
		case md.IsStreamingServer():
			st = spec.ServerStream
		}
		if m.StreamType != st {
			t.Errorf("%s: stream type %v, the schema says %v", m.Procedure, m.StreamType, st)
		}
		if got := grpcapi.NewRequest(m).Descriptor().FullName(); got != md.Input().FullName() {
			t.Errorf("%s: request %s", m.Procedure, got)
		}
		if got := grpcapi.NewResponse(m).Descriptor().FullName(); got != md.Output().FullName() {
			t.Errorf("%s: response %s", m.Procedure, got)
		}
	}
}

// TestNotGlobal checks that nothing is registered globally, so that
// grpc-go's packages for the same files can be linked in too.
func TestNotGlobal(t *testing.T) {
	for _, path := range sources {
		if _, err := grpcapi.Files().FindFileByPath(path); err != nil {
			t.Errorf("private registry: %v", err)
		}
		if _, err := protoregistry.GlobalFiles.FindFileByPath(path); err == nil {
			t.Errorf("%s is in protoregistry.GlobalFiles", path)
		}
	}
	for _, name := range []protoreflect.FullName{"grpc.health.v1.HealthCheckRequest", "grpc.reflection.v1.ServerReflectionRequest"} {
		if _, err := protoregistry.GlobalTypes.FindMessageByName(name); err == nil {
			t.Errorf("%s is in protoregistry.GlobalTypes", name)
		}
	}
}

// TestCodecs carries a dynamic message through the proto and JSON codecs.
func TestCodecs(t *testing.T) {
	for _, name := range []string{"proto", "json"} {
		c, ok := codec.Get(name)
		if !ok {
			t.Fatalf("no codec %s", name)
		}
		rsp := grpcapi.NewResponse(grpcapi.HealthList)
		statuses := rsp.Mutable(rsp.Descriptor().Fields().ByName("statuses")).Map()
		entry := grpcapi.NewMessage("grpc.health.v1.HealthCheckResponse")
		entry.Set(entry.Descriptor().Fields().ByName("status"), protoreflect.ValueOfEnum(grpcapi.StatusNotServing))
		statuses.Set(protoreflect.ValueOfString("greeter.v1.Greeter").MapKey(), protoreflect.ValueOfMessage(entry))
		b, err := c.MarshalAppend(nil, rsp)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		got := grpcapi.NewResponse(grpcapi.HealthList)
		if err := c.Unmarshal(b, got); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !proto.Equal(got, rsp) {
			t.Errorf("%s: got %v, want %v", name, got, rsp)
		}
	}
}

func TestNewMessagePanicsOnUnknownName(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("NewMessage of an unknown name did not panic")
		}
	}()
	grpcapi.NewMessage("grpc.health.v1.NoSuchMessage")
}
