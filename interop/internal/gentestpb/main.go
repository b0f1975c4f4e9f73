// Command gentestpb generates testpb/test.pb.micro.go, the micro client and
// server of grpc.testing.TestService, with internal/codegen.
//
// Its input is the descriptor of grpc/testing/test.proto that grpc-go compiled
// into google.golang.org/grpc/interop/grpc_testing, not a .proto file: the
// generated code then speaks exactly the services grpc-go's interop client
// and server speak. test.proto is mapped to the testpb package while the
// messages stay in grpc_testing, so both sides share grpc-go's message types.
//
// Run it with go generate in testpb; TestUpToDate fails when the committed
// file differs from what it would write.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"reflect"
	"strings"

	"github.com/protoc-gen-micro/micro/internal/codegen"
	"google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/protobuf/compiler/protogen"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/pluginpb"
)

// goPackage is where the generated service code lives.
const goPackage = "github.com/protoc-gen-micro/micro/interop/testpb;testpb"

func main() {
	out := flag.String("out", "test.pb.micro.go", "file to write")
	flag.Parse()
	content, err := generate()
	if err != nil {
		fmt.Fprintln(os.Stderr, "gentestpb:", err)
		os.Exit(1)
	}
	if err := os.WriteFile(*out, content, 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "gentestpb:", err)
		os.Exit(1)
	}
}

// generate runs the generator over test.proto and returns the one file it
// writes.
func generate() ([]byte, error) {
	test := grpc_testing.File_grpc_testing_test_proto
	req, err := request(test)
	if err != nil {
		return nil, err
	}
	gen, err := protogen.Options{}.New(req)
	if err != nil {
		return nil, err
	}
	if err := codegen.Generate(gen); err != nil {
		return nil, err
	}
	resp := gen.Response()
	if resp.Error != nil {
		return nil, errors.New(resp.GetError())
	}
	var content []byte
	for _, f := range resp.File {
		if !strings.HasSuffix(f.GetName(), codegen.FileSuffix) {
			return nil, fmt.Errorf("unexpected output %s", f.GetName())
		}
		if content != nil {
			return nil, fmt.Errorf("more than one output file (%s)", f.GetName())
		}
		content = []byte(f.GetContent())
	}
	if content == nil {
		return nil, errors.New("the generator wrote nothing")
	}
	return content, nil
}

// request asks for code of file alone, giving it the Go package goPackage.
// grpc-go's test protos have no go_package option, so every import is
// mapped, with an M parameter, to the Go package its types were compiled
// into.
func request(file protoreflect.FileDescriptor) (*pluginpb.CodeGeneratorRequest, error) {
	req := codegen.NewRequest("", file)
	params := []string{"paths=source_relative", "M" + file.Path() + "=" + goPackage}
	files := req.GetProtoFile() // file's imports, then file
	for _, fdp := range files[:len(files)-1] {
		f, err := protoregistry.GlobalFiles.FindFileByPath(fdp.GetName())
		if err != nil {
			return nil, fmt.Errorf("%s: %w", fdp.GetName(), err)
		}
		pkg, err := goImportPath(f)
		if err != nil {
			return nil, err
		}
		params = append(params, "M"+f.Path()+"="+pkg)
	}
	req.Parameter = proto.String(strings.Join(params, ","))
	return req, nil
}

// goImportPath returns the Go package that a linked-in file's types were
// compiled into, found through one of its messages or enums.
func goImportPath(f protoreflect.FileDescriptor) (string, error) {
	if f.Messages().Len() > 0 {
		mt, err := protoregistry.GlobalTypes.FindMessageByName(f.Messages().Get(0).FullName())
		if err != nil {
			return "", fmt.Errorf("%s: %w", f.Path(), err)
		}
		return reflect.TypeOf(mt.Zero().Interface()).Elem().PkgPath(), nil
	}
	if f.Enums().Len() > 0 {
		et, err := protoregistry.GlobalTypes.FindEnumByName(f.Enums().Get(0).FullName())
		if err != nil {
			return "", fmt.Errorf("%s: %w", f.Path(), err)
		}
		return reflect.TypeOf(et.New(0)).PkgPath(), nil
	}
	return "", fmt.Errorf("%s declares no types to find its Go package by", f.Path())
}
