// Command gen writes internal/conformancepb: the Go types of the conformance
// protocol's messages (protoc-gen-go's generator) and the micro client and
// server of connectrpc.conformance.v1.ConformanceService (internal/codegen),
// without protoc.
//
// The .proto files are those of the connectrpc.com/conformance module this
// module pins, read from the module cache and compiled in-process. They carry
// no go_package option, so each is mapped to conformancepb with an M
// parameter. The runner's own Go types live in an internal package we cannot
// import; ours register the same proto names, which is harmless because the
// runner always runs as a separate process.
//
// Run it from the conformance module's root:
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
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"

	"github.com/bufbuild/protocompile"
	"github.com/protoc-gen-micro/micro/internal/codegen"
	"google.golang.org/protobuf/cmd/protoc-gen-go/internal_gengo"
	"google.golang.org/protobuf/compiler/protogen"
	"google.golang.org/protobuf/types/pluginpb"
)

const (
	// conformanceModule holds the .proto files, under protoDir.
	conformanceModule = "connectrpc.com/conformance"
	protoDir          = "proto"
	// thisModule is the module the generated files belong to; their names
	// are relative to its root.
	thisModule = "github.com/protoc-gen-micro/micro/conformance"
	goPackage  = thisModule + "/internal/conformancepb;conformancepb"
)

// protoFiles are the files the harness needs: suite.proto, which only the
// runner reads, is left out.
var protoFiles = []string{
	"connectrpc/conformance/v1/client_compat.proto",
	"connectrpc/conformance/v1/config.proto",
	"connectrpc/conformance/v1/server_compat.proto",
	"connectrpc/conformance/v1/service.proto",
}

func main() {
	root := flag.String("root", ".", "the conformance module's root directory")
	flag.Parse()
	files, err := generate(*root)
	if err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
	for _, name := range sortedKeys(files) {
		path := filepath.Join(*root, filepath.FromSlash(name))
		if old, _ := os.ReadFile(path); bytes.Equal(old, files[name]) {
			continue
		}
		if err := os.WriteFile(path, files[name], 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "gen:", err)
			os.Exit(1)
		}
		fmt.Println("wrote", path)
	}
}

// generate returns the generated files by name, relative to the module root.
func generate(root string) (map[string][]byte, error) {
	dir, err := moduleDir(root, conformanceModule)
	if err != nil {
		return nil, err
	}
	req, err := request(filepath.Join(dir, protoDir))
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

// moduleDir asks the go command where the pinned version of module is,
// downloading it if the module cache lacks it.
func moduleDir(root, module string) (string, error) {
	cmd := exec.Command("go", "list", "-mod=readonly", "-m", "-f", "{{.Dir}}", module)
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	dir := strings.TrimSpace(string(out))
	if err == nil && dir == "" {
		// Listed but not downloaded yet.
		cmd = exec.Command("go", "mod", "download", "-json", module)
		cmd.Dir = root
		cmd.Stderr = &stderr
		if err = cmd.Run(); err == nil {
			return moduleDir(root, module)
		}
	}
	if err != nil {
		return "", fmt.Errorf("finding %s: %v: %s", module, err, stderr.Bytes())
	}
	return dir, nil
}

// request compiles the files under importDir and builds the request protoc
// would send a plugin.
func request(importDir string) (*pluginpb.CodeGeneratorRequest, error) {
	c := protocompile.Compiler{
		Resolver:       protocompile.WithStandardImports(&protocompile.SourceResolver{ImportPaths: []string{importDir}}),
		SourceInfoMode: protocompile.SourceInfoStandard,
	}
	compiled, err := c.Compile(context.Background(), protoFiles...)
	if err != nil {
		return nil, err
	}
	params := []string{"module=" + thisModule}
	for _, f := range protoFiles {
		params = append(params, "M"+f+"="+goPackage)
	}
	return codegen.NewRequest(strings.Join(params, ","), compiled...), nil
}

func sortedKeys(m map[string][]byte) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
