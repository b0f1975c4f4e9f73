package brokerpb_test

import (
	"bytes"
	"context"
	"flag"
	"io"
	"os"
	"path"
	"testing"

	"github.com/bufbuild/protocompile"
	"github.com/protoc-gen-micro/micro/internal/codegen"
	"google.golang.org/protobuf/cmd/protoc-gen-go/internal_gengo"
	"google.golang.org/protobuf/compiler/protogen"
)

var update = flag.Bool("update", false, "rewrite the generated files")

// importPath is the .proto file's name as other files would import it; the
// file itself sits beside this test.
const importPath = "micro/broker/v1/broker.proto"

// TestGenerated regenerates broker.pb.go and broker.pb.micro.go from
// broker.proto, in-process with protoc-gen-go's generator and ours, and
// fails if the committed files differ. With -update it rewrites them:
//
//	go test ./runtime/broker/internal/brokerpb -run TestGenerated -update
func TestGenerated(t *testing.T) {
	c := protocompile.Compiler{
		Resolver: protocompile.WithStandardImports(&protocompile.SourceResolver{
			Accessor: func(name string) (io.ReadCloser, error) {
				if name != importPath {
					return nil, os.ErrNotExist
				}
				return os.Open("broker.proto")
			},
		}),
		SourceInfoMode: protocompile.SourceInfoStandard,
	}
	compiled, err := c.Compile(context.Background(), importPath)
	if err != nil {
		t.Fatal(err)
	}
	gen, err := protogen.Options{}.New(codegen.NewRequest("paths=source_relative", compiled...))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range gen.Files {
		if f.Generate {
			internal_gengo.GenerateFile(gen, f)
		}
	}
	if err := codegen.Generate(gen); err != nil {
		t.Fatal(err)
	}
	resp := gen.Response()
	if resp.Error != nil {
		t.Fatal(resp.GetError())
	}
	if len(resp.File) != 2 {
		t.Fatalf("generated %d files, want broker.pb.go and broker.pb.micro.go", len(resp.File))
	}
	for _, f := range resp.File {
		name := path.Base(f.GetName())
		content := []byte(f.GetContent())
		if *update {
			if err := os.WriteFile(name, content, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(name)
		if err != nil {
			t.Fatalf("%v; run go test ./runtime/broker/internal/brokerpb -run TestGenerated -update", err)
		}
		if !bytes.Equal(got, content) {
			t.Errorf("%s is stale; run go test ./runtime/broker/internal/brokerpb -run TestGenerated -update", name)
		}
	}
}
