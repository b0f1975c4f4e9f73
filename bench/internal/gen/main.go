// Command gen regenerates the Go code of bench/proto without protoc: it
// compiles the .proto files in-process, then runs protoc-gen-go's generator
// and ours (internal/codegen) on the result, as protoc would run the plugins.
//
// Run it from the bench module's root:
//
//	go run ./internal/gen
//
// TestUpToDate fails when the committed files differ from what it writes.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/bufbuild/protocompile"
	"github.com/protoc-gen-micro/micro/internal/codegen"
	"google.golang.org/protobuf/cmd/protoc-gen-go/internal_gengo"
	"google.golang.org/protobuf/compiler/protogen"
	"google.golang.org/protobuf/types/pluginpb"
)

// protoDir holds the .proto files, relative to the bench module's root; it
// is also their import path, and the generated files land beside them.
const protoDir = "proto"

func main() {
	root := flag.String("root", ".", "the bench module's root directory")
	check := flag.Bool("check", false, "only report whether the generated files are up to date")
	flag.Parse()
	files, err := generate(*root)
	if err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
	stale := false
	for _, name := range sortedKeys(files) {
		path := filepath.Join(*root, protoDir, filepath.FromSlash(name))
		old, _ := os.ReadFile(path)
		if bytes.Equal(old, files[name]) {
			continue
		}
		if *check {
			fmt.Fprintln(os.Stderr, "gen: stale:", path)
			stale = true
			continue
		}
		if err := os.WriteFile(path, files[name], 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "gen:", err)
			os.Exit(1)
		}
		fmt.Println("wrote", path)
	}
	if stale {
		os.Exit(1)
	}
}

// generate returns the generated files by name, relative to protoDir.
func generate(root string) (map[string][]byte, error) {
	dir := filepath.Join(root, protoDir)
	names, err := protoFiles(dir)
	if err != nil {
		return nil, err
	}
	req, err := request(dir, names)
	if err != nil {
		return nil, err
	}
	gen, err := protogen.Options{}.New(req)
	if err != nil {
		return nil, err
	}
	for _, f := range gen.Files {
		if f.Generate {
			internal_gengo.GenerateFile(gen, f)
		}
	}
	if err := codegen.Generate(gen); err != nil {
		return nil, err
	}
	resp := gen.Response()
	if resp.Error != nil {
		return nil, fmt.Errorf("generator: %s", resp.GetError())
	}
	out := map[string][]byte{}
	for _, f := range resp.File {
		out[f.GetName()] = []byte(f.GetContent())
	}
	return out, nil
}

// protoFiles lists the .proto files under dir, relative to it, with slashes.
func protoFiles(dir string) ([]string, error) {
	var files []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".proto") {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		files = append(files, filepath.ToSlash(rel))
		return err
	})
	sort.Strings(files)
	return files, err
}

// request compiles files and builds the request protoc would send a plugin.
func request(importDir string, files []string) (*pluginpb.CodeGeneratorRequest, error) {
	c := protocompile.Compiler{
		Resolver:       protocompile.WithStandardImports(&protocompile.SourceResolver{ImportPaths: []string{importDir}}),
		SourceInfoMode: protocompile.SourceInfoStandard,
	}
	compiled, err := c.Compile(context.Background(), files...)
	if err != nil {
		return nil, err
	}
	return codegen.NewRequest("paths=source_relative", compiled...), nil
}

func sortedKeys(m map[string][]byte) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
