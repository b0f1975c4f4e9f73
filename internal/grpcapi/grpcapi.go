// Package grpcapi holds the schemas of gRPC's health checking
// (grpc.health.v1) and server reflection (grpc.reflection.v1 and v1alpha)
// services, for the runtime's health and reflection servers and for the
// micro command's clients.
//
// The schemas live in a private registry (Files) and their messages are
// dynamicpb messages: nothing here is registered in protoregistry.GlobalFiles
// or GlobalTypes, so a program may also link grpc-go's
// grpc/health/grpc_health_v1 or reflection packages, which register the same
// names, without a registration conflict. The messages are proto.Messages,
// so the proto and JSON codecs carry them like generated ones; they are
// slower, which does not matter for these services.
//
// The descriptors are compiled from the .proto files under proto/ and
// embedded; regenerate them with
//
//	go test ./internal/grpcapi -run TestGenerated -update
//
// (make generate does).
package grpcapi

import (
	_ "embed"
	"fmt"
	"sync"

	"github.com/protoc-gen-micro/micro/runtime/spec"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"
)

// descriptorSet is a serialized google.protobuf.FileDescriptorSet of the
// .proto files under proto/, with source info, each file after its imports.
//
//go:embed descriptors.binpb
var descriptorSet []byte

// Files of the schemas, by path.
const (
	HealthFile            = "grpc/health/v1/health.proto"
	ReflectionV1File      = "grpc/reflection/v1/reflection.proto"
	ReflectionV1AlphaFile = "grpc/reflection/v1alpha/reflection.proto"
)

// Fully qualified service names.
const (
	HealthService            = "grpc.health.v1.Health"
	ReflectionV1Service      = "grpc.reflection.v1.ServerReflection"
	ReflectionV1AlphaService = "grpc.reflection.v1alpha.ServerReflection"
)

// The services' methods. Their request and response messages come from
// NewRequest and NewResponse.
var (
	HealthCheck = &spec.Method{Service: HealthService, Name: "Check",
		Procedure: "/" + HealthService + "/Check", StreamType: spec.Unary}
	HealthList = &spec.Method{Service: HealthService, Name: "List",
		Procedure: "/" + HealthService + "/List", StreamType: spec.Unary}
	HealthWatch = &spec.Method{Service: HealthService, Name: "Watch",
		Procedure: "/" + HealthService + "/Watch", StreamType: spec.ServerStream}
	ReflectionInfoV1 = &spec.Method{Service: ReflectionV1Service, Name: "ServerReflectionInfo",
		Procedure: "/" + ReflectionV1Service + "/ServerReflectionInfo", StreamType: spec.BidiStream}
	ReflectionInfoV1Alpha = &spec.Method{Service: ReflectionV1AlphaService, Name: "ServerReflectionInfo",
		Procedure: "/" + ReflectionV1AlphaService + "/ServerReflectionInfo", StreamType: spec.BidiStream}
)

// Health statuses: the values of grpc.health.v1.HealthCheckResponse.ServingStatus.
const (
	StatusUnknown        protoreflect.EnumNumber = 0
	StatusServing        protoreflect.EnumNumber = 1
	StatusNotServing     protoreflect.EnumNumber = 2
	StatusServiceUnknown protoreflect.EnumNumber = 3
)

var registry = sync.OnceValue(func() *protoregistry.Files {
	var set descriptorpb.FileDescriptorSet
	if err := proto.Unmarshal(descriptorSet, &set); err != nil {
		panic("grpcapi: embedded descriptors: " + err.Error())
	}
	files, err := protodesc.NewFiles(&set)
	if err != nil {
		panic("grpcapi: embedded descriptors: " + err.Error())
	}
	return files
})

// Files returns the private registry of the three files. It imports
// nothing, so it is complete; it is shared, and must not be changed.
func Files() *protoregistry.Files { return registry() }

// NewMessage returns a new, empty message of the named type, one of the
// schemas' messages (e.g. "grpc.health.v1.HealthCheckRequest"). It panics
// on any other name: the names are constants of the caller's.
func NewMessage(name protoreflect.FullName) *dynamicpb.Message {
	d, err := Files().FindDescriptorByName(name)
	if err != nil {
		panic(fmt.Sprintf("grpcapi: no message %s: %v", name, err))
	}
	md, ok := d.(protoreflect.MessageDescriptor)
	if !ok {
		panic(fmt.Sprintf("grpcapi: %s is not a message", name))
	}
	return dynamicpb.NewMessage(md)
}

// NewRequest returns a new, empty request message of m, one of the methods
// above. It panics on any other method.
func NewRequest(m *spec.Method) *dynamicpb.Message {
	return dynamicpb.NewMessage(method(m).Input())
}

// NewResponse returns a new, empty response message of m, one of the
// methods above. It panics on any other method.
func NewResponse(m *spec.Method) *dynamicpb.Message {
	return dynamicpb.NewMessage(method(m).Output())
}

func method(m *spec.Method) protoreflect.MethodDescriptor {
	d, err := Files().FindDescriptorByName(protoreflect.FullName(m.Service).Append(protoreflect.Name(m.Name)))
	if err != nil {
		panic(fmt.Sprintf("grpcapi: no method %s: %v", m.Procedure, err))
	}
	md, ok := d.(protoreflect.MethodDescriptor)
	if !ok {
		panic(fmt.Sprintf("grpcapi: %s is not a method", m.Procedure))
	}
	return md
}
