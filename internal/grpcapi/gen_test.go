package grpcapi_test

import (
	"bytes"
	"context"
	"flag"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/bufbuild/protocompile"
	"github.com/protoc-gen-micro/micro/internal/grpcapi"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/descriptorpb"
)

var update = flag.Bool("update", false, "rewrite descriptors.binpb")

// sources are the .proto files under proto/, by import path.
var sources = []string{grpcapi.HealthFile, grpcapi.ReflectionV1File, grpcapi.ReflectionV1AlphaFile}

// TestGenerated compiles the .proto files in-process and fails if the
// embedded descriptors.binpb differs from the result. With -update it
// rewrites the file:
//
//	go test ./internal/grpcapi -run TestGenerated -update
func TestGenerated(t *testing.T) {
	got, err := compile()
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile("descriptors.binpb", got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile("descriptors.binpb")
	if err != nil {
		t.Fatalf("%v; run go test ./internal/grpcapi -run TestGenerated -update", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("descriptors.binpb is stale; run go test ./internal/grpcapi -run TestGenerated -update")
	}
}

// compile returns the FileDescriptorSet of sources, serialized
// deterministically, with source info so that reflection clients show the
// comments.
func compile() ([]byte, error) {
	c := protocompile.Compiler{
		Resolver: &protocompile.SourceResolver{
			Accessor: func(name string) (io.ReadCloser, error) {
				return os.Open(filepath.Join("proto", filepath.FromSlash(name)))
			},
		},
		SourceInfoMode: protocompile.SourceInfoStandard,
	}
	files, err := c.Compile(context.Background(), sources...)
	if err != nil {
		return nil, err
	}
	var set descriptorpb.FileDescriptorSet
	for _, f := range files {
		set.File = append(set.File, f.(interface {
			FileDescriptorProto() *descriptorpb.FileDescriptorProto
		}).FileDescriptorProto())
	}
	return proto.MarshalOptions{Deterministic: true}.Marshal(&set)
}
