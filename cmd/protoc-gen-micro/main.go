// Command protoc-gen-micro is a protoc plugin that generates Go clients and
// servers of protobuf services for the micro runtime. Run it beside
// protoc-gen-go, which generates the messages:
//
//	protoc --go_out=. --go_opt=paths=source_relative \
//		--micro_out=. --micro_opt=paths=source_relative greeter.proto
//
// It writes greeter.pb.micro.go next to greeter.pb.go, in the same Go
// package. It takes protoc-gen-go's parameters (paths, module, M<file>=<Go
// import path>); internal/codegen documents what it generates.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/protoc-gen-micro/micro/internal/codegen"
	"google.golang.org/protobuf/compiler/protogen"
)

func main() {
	if len(os.Args) == 2 && os.Args[1] == "--version" {
		fmt.Println(codegen.PluginName, codegen.Version)
		return
	}
	if len(os.Args) == 2 && (os.Args[1] == "-h" || os.Args[1] == "--help") {
		fmt.Println("Usage: protoc --micro_out=DIR [--micro_opt=paths=source_relative] FILE.proto")
		return
	}
	if len(os.Args) != 1 {
		fmt.Fprintf(os.Stderr, "%s: unexpected arguments %q; run it from protoc, or with --version\n", codegen.PluginName, os.Args[1:])
		os.Exit(1)
	}
	// The plugin has no parameters of its own; protogen handles the standard
	// ones and reports any other as unknown.
	var flags flag.FlagSet
	protogen.Options{ParamFunc: flags.Set}.Run(codegen.Generate)
}
