package codegen_test

import (
	"path/filepath"
	"regexp"
	"testing"
)

// protocVersionLine matches the line of a generated header that names the
// protoc version, which differs between protoc and the in-process compiler.
var protocVersionLine = regexp.MustCompile(`(?m)^// (\t|- )protoc +\S+$`)

// TestExampleUpToDate regenerates examples/greeter/greeterpb, protoc-gen-go's
// code and ours, and fails if the committed files differ.
func TestExampleUpToDate(t *testing.T) {
	example := filepath.Join(moduleRoot(t), "examples", "greeter")
	req := newRequest(t, example, []string{"greeter.proto"}, "paths=source_relative", nil)
	resp, files := runPlugin(t, req, true)
	if resp.Error != nil {
		t.Fatalf("plugin error: %s", resp.GetError())
	}
	if len(files) != 2 {
		t.Fatalf("generated %d files, want greeter.pb.go and greeter.pb.micro.go", len(files))
	}
	for _, f := range files {
		path := filepath.Join(example, "greeterpb", filepath.FromSlash(f.Name))
		compare(t, path, f.Content, func(b []byte) []byte {
			return protocVersionLine.ReplaceAll(b, []byte("// protoc"))
		})
	}
}
