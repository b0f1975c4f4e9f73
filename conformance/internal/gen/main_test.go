package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// TestUpToDate fails when the committed code in internal/conformancepb is not
// what the pinned conformance protos and the current generators produce.
func TestUpToDate(t *testing.T) {
	root := filepath.Join("..", "..")
	files, err := generate(root)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != len(protoFiles)+1 {
		t.Errorf("generated %d files, want a .pb.go per proto and one .pb.micro.go", len(files))
	}
	for name, content := range files {
		path := filepath.Join(root, filepath.FromSlash(name))
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v; run go run ./internal/gen in conformance/", err)
		}
		if !bytes.Equal(got, content) {
			t.Errorf("%s is stale; run go run ./internal/gen in conformance/", path)
		}
	}
}
