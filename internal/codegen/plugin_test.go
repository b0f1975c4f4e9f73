package codegen_test

import (
	"context"
	"flag"
	"io/fs"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"

	"github.com/bufbuild/protocompile"
	"github.com/protoc-gen-micro/micro/internal/codegen"
	"google.golang.org/protobuf/cmd/protoc-gen-go/internal_gengo"
	"google.golang.org/protobuf/compiler/protogen"
	"google.golang.org/protobuf/types/pluginpb"
)

var update = flag.Bool("update", false, "rewrite the golden files and the example's generated code")

// moduleRoot is the root of this module, found from this file's path.
func moduleRoot(t testing.TB) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("cannot locate the test source")
	}
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// protoFiles lists the .proto files under dir, relative to it, with slashes.
func protoFiles(t testing.TB, dir string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(path, ".proto") {
			rel, err := filepath.Rel(dir, path)
			if err != nil {
				return err
			}
			files = append(files, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(files)
	return files
}

// newRequest compiles files, relative to importDir, in-process and returns
// the request protoc would send a plugin to generate them.
func newRequest(t testing.TB, importDir string, files []string, parameter string, compiler *pluginpb.Version) *pluginpb.CodeGeneratorRequest {
	t.Helper()
	c := protocompile.Compiler{
		Resolver:       protocompile.WithStandardImports(&protocompile.SourceResolver{ImportPaths: []string{importDir}}),
		SourceInfoMode: protocompile.SourceInfoStandard,
	}
	compiled, err := c.Compile(context.Background(), files...)
	if err != nil {
		t.Fatalf("compile %v: %v", files, err)
	}
	req := codegen.NewRequest(parameter, compiled...)
	req.CompilerVersion = compiler
	return req
}

// output is a generated file.
type output struct {
	Name         string // as in the response, e.g. "greeter.pb.micro.go"
	GoImportPath string
	Content      []byte
}

// runPlugin runs the generator on req as protoc-gen-micro does, and
// protoc-gen-go's too if withGo, returning the response and the generated
// files.
func runPlugin(t testing.TB, req *pluginpb.CodeGeneratorRequest, withGo bool) (*pluginpb.CodeGeneratorResponse, []output) {
	t.Helper()
	var flags flag.FlagSet
	gen, err := protogen.Options{ParamFunc: flags.Set}.New(req)
	if err != nil {
		t.Fatalf("protogen: %v", err)
	}
	if withGo {
		for _, f := range gen.Files {
			if f.Generate {
				internal_gengo.GenerateFile(gen, f)
			}
		}
	}
	if err := codegen.Generate(gen); err != nil {
		gen.Error(err)
	}
	resp := gen.Response()

	importPaths := map[string]protogen.GoImportPath{}
	for _, f := range gen.Files {
		if f.Generate {
			importPaths[f.GeneratedFilenamePrefix+".pb.go"] = f.GoImportPath
			importPaths[f.GeneratedFilenamePrefix+codegen.FileSuffix] = f.GoImportPath
		}
	}
	var out []output
	for _, f := range resp.File {
		out = append(out, output{Name: f.GetName(), GoImportPath: string(importPaths[f.GetName()]), Content: []byte(f.GetContent())})
	}
	return resp, out
}
