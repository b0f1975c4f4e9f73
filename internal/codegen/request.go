package codegen

import (
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/pluginpb"
)

// NewRequest returns the request protoc would send a plugin, with parameter
// (unset if empty), to generate files: FileToGenerate and
// SourceFileDescriptors name files in their order, and ProtoFile holds them
// and everything they import, transitively, each file after its imports.
//
// A descriptor that carries its own FileDescriptorProto, as protocompile's
// linker.Result does, is described by it, so that json_name and source info
// are as protoc gives them; any other is converted with protodesc. It suits
// in-process generation, without protoc, from compiled or linked-in
// descriptors. Callers set CompilerVersion themselves if they need it.
func NewRequest[F protoreflect.FileDescriptor](parameter string, files ...F) *pluginpb.CodeGeneratorRequest {
	req := &pluginpb.CodeGeneratorRequest{}
	if parameter != "" {
		req.Parameter = proto.String(parameter)
	}
	described := map[string]*descriptorpb.FileDescriptorProto{}
	var add func(fd protoreflect.FileDescriptor)
	add = func(fd protoreflect.FileDescriptor) {
		if _, ok := described[fd.Path()]; ok {
			return
		}
		described[fd.Path()] = nil // visiting
		imports := fd.Imports()
		for i := 0; i < imports.Len(); i++ {
			add(imports.Get(i).FileDescriptor)
		}
		fdp := fileProto(fd)
		described[fd.Path()] = fdp
		req.ProtoFile = append(req.ProtoFile, fdp)
	}
	for _, fd := range files {
		add(fd)
	}
	for _, fd := range files {
		req.FileToGenerate = append(req.FileToGenerate, fd.Path())
		req.SourceFileDescriptors = append(req.SourceFileDescriptors, described[fd.Path()])
	}
	return req
}

// fileProto describes fd as protoc would.
func fileProto(fd protoreflect.FileDescriptor) *descriptorpb.FileDescriptorProto {
	if r, ok := fd.(interface {
		FileDescriptorProto() *descriptorpb.FileDescriptorProto
	}); ok {
		return r.FileDescriptorProto()
	}
	return protodesc.ToFileDescriptorProto(fd)
}
