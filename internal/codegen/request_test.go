package codegen_test

import (
	"context"
	"slices"
	"testing"

	"github.com/bufbuild/protocompile"
	"github.com/protoc-gen-micro/micro/internal/codegen"
	"google.golang.org/protobuf/types/known/timestamppb"
)

func TestNewRequest(t *testing.T) {
	c := protocompile.Compiler{
		Resolver: protocompile.WithStandardImports(&protocompile.SourceResolver{
			Accessor: protocompile.SourceAccessorFromMap(map[string]string{
				"a.proto": `syntax = "proto3"; import "b.proto"; import "c.proto";
					// A is a message.
					message A { B b = 1; C c = 2; }`,
				"b.proto": `syntax = "proto3"; import "c.proto"; message B { C c = 1; }`,
				"c.proto": `syntax = "proto3"; import "google/protobuf/timestamp.proto";
					message C { google.protobuf.Timestamp some_time = 1; }`,
			}),
		}),
		SourceInfoMode: protocompile.SourceInfoStandard,
	}
	compiled, err := c.Compile(context.Background(), "a.proto", "b.proto")
	if err != nil {
		t.Fatal(err)
	}

	req := codegen.NewRequest("paths=source_relative", compiled...)
	if got := req.GetParameter(); got != "paths=source_relative" {
		t.Errorf("parameter %q", got)
	}
	if want := []string{"a.proto", "b.proto"}; !slices.Equal(req.GetFileToGenerate(), want) {
		t.Errorf("files to generate %v, want %v", req.GetFileToGenerate(), want)
	}
	var names []string
	for _, fdp := range req.GetProtoFile() {
		names = append(names, fdp.GetName())
	}
	// Each file after its imports, each once.
	if want := []string{"google/protobuf/timestamp.proto", "c.proto", "b.proto", "a.proto"}; !slices.Equal(names, want) {
		t.Errorf("proto files %v, want %v", names, want)
	}
	sfd := req.GetSourceFileDescriptors()
	if len(sfd) != 2 || sfd[0] != req.GetProtoFile()[3] || sfd[1] != req.GetProtoFile()[2] {
		t.Errorf("source file descriptors are not a.proto's and b.proto's in ProtoFile")
	}
	// protocompile's descriptors keep source info and json_name, as protoc's.
	a := req.GetProtoFile()[3]
	if len(a.GetSourceCodeInfo().GetLocation()) == 0 {
		t.Error("a.proto lost its source info")
	}
	if got := req.GetProtoFile()[1].GetMessageType()[0].GetField()[0].GetJsonName(); got != "someTime" {
		t.Errorf("json_name %q, want someTime", got)
	}

	// A linked-in descriptor is converted; no parameter leaves it unset.
	req = codegen.NewRequest("", timestamppb.File_google_protobuf_timestamp_proto)
	if req.Parameter != nil {
		t.Errorf("parameter %q, want unset", req.GetParameter())
	}
	if len(req.GetProtoFile()) != 1 || req.GetProtoFile()[0].GetName() != "google/protobuf/timestamp.proto" {
		t.Fatalf("proto files %v", req.GetProtoFile())
	}
	if got := req.GetProtoFile()[0].GetMessageType()[0].GetName(); got != "Timestamp" {
		t.Errorf("message %q, want Timestamp", got)
	}
	if sfd := req.GetSourceFileDescriptors(); len(sfd) != 1 || sfd[0] != req.GetProtoFile()[0] {
		t.Error("source file descriptors are not timestamp.proto's")
	}
}
